"""The console target: a compact table of every metric on standard output at each flush."""

from __future__ import annotations

import sys
import time
from typing import ClassVar, TextIO

from pytempest.metrics.registry import Counter, Gauge, Registry, Timer
from pytempest.metrics.target import Deltas, MetricTarget, check_prefix, dotted_key, fmt_num


class ConsoleTarget(MetricTarget):
    """``kind = "console"``: a compact table on standard output at each flush.

    One row per metric, sorted by name: a counter shows its total and ``+n``, what it
    gained since the previous table; a gauge its value; a timer its count and the p50,
    p99 and max in milliseconds. The table is written in one piece, so tables of several
    flushes never interleave.

    Keys:
        prefix: put in front of every name (default none).
        show_zero: also list counters still at 0 and timers with no observation
            (default false).
        stream: where to write (code only; default standard output).
    """

    kind: ClassVar[str] = "console"

    def __init__(self, prefix: str = "", show_zero: bool = False, stream: TextIO | None = None) -> None:
        self.prefix = check_prefix(prefix, self.kind)
        self.show_zero = bool(show_zero)
        self.stream = stream
        self._deltas = Deltas()

    def render(self, registry: Registry) -> str:
        """The table for the current values (and counter changes since the last call)."""
        rows: list[tuple[str, str, str, str]] = []
        for m in sorted(registry, key=lambda m: m.key):
            name = dotted_key(m, self.prefix)
            if isinstance(m, Counter):
                delta = self._deltas.counter(m)
                if m.value or self.show_zero:
                    rows.append((name, "counter", fmt_num(m.value), f"+{delta}"))
            elif isinstance(m, Gauge):
                rows.append((name, "gauge", fmt_num(m.value), ""))
            elif isinstance(m, Timer) and (m.count or self.show_zero):
                detail = f"p50 {fmt_num(m.quantile(0.5))} p99 {fmt_num(m.quantile(0.99))} max {fmt_num(m.max_ms)} ms"
                rows.append((name, "timer", fmt_num(m.count), detail))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if not rows:
            return f"-- pytempest metrics {stamp}: none yet\n"
        width = max(len(r[0]) for r in rows)
        vwidth = max(len(r[2]) for r in rows)
        lines = [f"-- pytempest metrics {stamp} " + "-" * max(0, width + vwidth - 14)]
        lines += [f"{n:<{width}}  {k:<7}  {v:>{vwidth}}  {d}".rstrip() for n, k, v, d in rows]
        return "\n".join(lines) + "\n"

    def flush(self, registry: Registry) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(self.render(registry))
        stream.flush()
