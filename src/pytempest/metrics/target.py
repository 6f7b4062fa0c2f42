"""The metric target interface: where the registry is flushed (console, statsd, ...).

Targets are called from worker threads, never on the engine's event loop, so a slow or
dead backend cannot slow message handling: ``open`` once, then ``flush`` every
``flush_interval_ms`` and a last time at shutdown, then ``close``. Every call for one
target runs on the same dedicated thread, one at a time, so a target needs no lock of
its own. Values in the registry are cumulative; a target that needs deltas (statsd)
keeps the last values it sent (:class:`Deltas`).

A target's constructor takes keyword arguments named like the keys of its table in
``[metric] targets = [{kind = "statsd", host = "127.0.0.1:8125"}]`` of ``Topology.toml``,
and ``kind`` is the string that selects it there.
"""

from __future__ import annotations

import abc
import logging
from typing import ClassVar

from pytempest.errors import ConfigError
from pytempest.metrics.registry import Counter, Gauge, Metric, Registry, Timer

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class MetricTarget(abc.ABC):
    """Base class of every metric target."""

    kind: ClassVar[str] = "target"

    def open(self, registry: Registry) -> None:  # noqa: B027 - optional hook
        """Start servers, open files or sockets. Called once, in the target's thread."""

    @abc.abstractmethod
    def flush(self, registry: Registry) -> None:
        """Send the current values. Called in the target's thread; may block."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop servers, close files. Called once, last, in the target's thread."""

    def describe(self) -> str:
        """A one-line description without secrets."""
        return self.kind


def dotted_key(metric: Metric, prefix: str = "") -> str:
    """The dotted name of ``metric`` for console, log and file targets:
    ``[<prefix>.]<topology>[.<task>].<name>[.<status>]`` (the ``TestRun`` key)."""
    return f"{prefix}.{metric.key}" if prefix else metric.key


def timer_summary(timer: Timer) -> dict[str, float]:
    """``count``, ``sum_ms``, ``p50_ms``, ``p99_ms`` and ``max_ms`` of a timer since start."""
    return {
        "count": timer.count,
        "sum_ms": round(timer.sum_ms, 3),
        "p50_ms": round(timer.quantile(0.5), 3),
        "p99_ms": round(timer.quantile(0.99), 3),
        "max_ms": round(timer.max_ms, 3),
    }


class Deltas:
    """What changed since the last call, per metric: counter increments and, per timer
    bucket, the count and sum of the observations of the interval."""

    def __init__(self) -> None:
        self._counters: dict[int, int] = {}
        self._timers: dict[int, tuple[list[int], list[float]]] = {}

    def counter(self, c: Counter) -> int:
        """``c.value`` minus what it was at the previous call (its whole value the first time)."""
        value = c.value
        last = self._counters.get(id(c), 0)
        self._counters[id(c)] = value
        return value - last

    def timer(self, t: Timer) -> list[tuple[int, float]]:
        """``(count, sum_ms)`` of the interval's observations for every bucket of ``t``."""
        counts = list(t.buckets)
        sums = list(t.bucket_sums)
        last_counts, last_sums = self._timers.get(id(t), ([0] * len(counts), [0.0] * len(sums)))
        self._timers[id(t)] = (counts, sums)
        return [(c - lc, s - ls) for c, lc, s, ls in zip(counts, last_counts, sums, last_sums, strict=True)]


def check_prefix(prefix: object, kind: str) -> str:
    """A metric name prefix: empty, or dotted words of letters, digits, ``_`` and ``-``."""
    if not isinstance(prefix, str) or (
        prefix and not all(p and p.replace("_", "").replace("-", "").isalnum() for p in prefix.split("."))
    ):
        raise ConfigError(
            f"metric target {kind!r}: prefix must be dotted words of letters, digits, '_' or '-' "
            f"(e.g. 'pt' or 'prod.pt'); got {prefix!r}"
        )
    return prefix


def check_level(level: object, kind: str) -> int:
    """A logging level from a name (``info``) or a number."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level.lower() in LEVELS:
        return LEVELS[level.lower()]
    raise ConfigError(f"metric target {kind!r}: level must be one of {', '.join(LEVELS)}; got {level!r}")


def flat_values(registry: Registry, prefix: str = "", show_zero: bool = True) -> dict[str, float]:
    """Every metric by dotted key, like :meth:`Registry.snapshot` but with gauges as last
    sampled (safe off the loop); counters at 0 and empty timers are left out unless
    ``show_zero``."""
    out: dict[str, float] = {}
    for m in registry:
        key = dotted_key(m, prefix)
        if isinstance(m, Counter):
            if m.value or show_zero:
                out[key] = m.value
        elif isinstance(m, Timer):
            if m.count or show_zero:
                for k, v in timer_summary(m).items():
                    out[f"{key}.{k}"] = v
        elif isinstance(m, Gauge):
            out[key] = m.value
    return out


def fmt_num(value: float) -> str:
    """A number for humans: integers as such, others with at most 3 decimals."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")
