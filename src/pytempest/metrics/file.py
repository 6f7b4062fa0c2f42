"""The file target: JSON lines, one object per flush, rotated by size."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any, ClassVar

from pytempest.errors import ConfigError
from pytempest.metrics.registry import Counter, Gauge, Registry, Timer
from pytempest.metrics.target import MetricTarget, check_prefix, dotted_key, timer_summary

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def _whole(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"metric target 'file': {name} must be a whole number >= {minimum}; got {value!r}")
    return value


class FileTarget(MetricTarget):
    """``kind = "file"``: JSON lines, one object per flush.

    Each line is ``{"ts_ms": ..., "counters": {key: total}, "gauges": {key: value},
    "timers": {key: {"count", "sum_ms", "p50_ms", "p99_ms", "max_ms"}}}`` with every
    metric by its dotted key; counters are totals since the start (subtract two lines
    for a rate). The file is flushed after every line.

    Keys:
        path: the file (its folder is created).
        clobber: empty the file at start (default false: append).
        max_bytes: when a line would make the file larger, it is renamed ``<path>.1``
            (older ones shift to ``.2`` ...) and a new file started (default 64 MiB;
            0 never rotates).
        backups: how many rotated files to keep (default 3).
        prefix: put in front of every name (default none).
    """

    kind: ClassVar[str] = "file"

    def __init__(
        self,
        path: str | os.PathLike[str],
        clobber: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = 3,
        prefix: str = "",
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not str(path):
            raise ConfigError(f"metric target 'file': path must be a file path; got {path!r}")
        self.path = Path(path)
        self.clobber = bool(clobber)
        self.max_bytes = _whole("max_bytes", max_bytes, 0)
        self.backups = _whole("backups", backups, 0)
        self.prefix = check_prefix(prefix, self.kind)
        self._file: IO[str] | None = None
        self._size = 0

    def open(self, registry: Registry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w" if self.clobber else "a", encoding="utf-8")
        self._size = self._file.tell()

    def record(self, registry: Registry) -> dict[str, Any]:
        """The object one flush writes."""
        counters: dict[str, int] = {}
        gauges: dict[str, float] = {}
        timers: dict[str, dict[str, float]] = {}
        for m in sorted(registry, key=lambda m: m.key):
            key = dotted_key(m, self.prefix)
            if isinstance(m, Counter):
                counters[key] = m.value
            elif isinstance(m, Gauge):
                gauges[key] = m.value
            elif isinstance(m, Timer):
                timers[key] = timer_summary(m)
        return {"ts_ms": int(time.time() * 1000), "counters": counters, "gauges": gauges, "timers": timers}

    def flush(self, registry: Registry) -> None:
        if self._file is None:
            raise RuntimeError(f"{self.describe()}: flush() before open() or after close()")
        line = json.dumps(self.record(registry), separators=(",", ":")) + "\n"
        size = len(line.encode("utf-8"))
        if self.max_bytes and self._size and self._size + size > self.max_bytes:
            self._rotate()
        assert self._file is not None
        self._file.write(line)
        self._file.flush()
        self._size += size

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        if self.backups:
            for i in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("w", encoding="utf-8")
        self._size = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def describe(self) -> str:
        return f"file({self.path})"
