"""The metric registry: counters, gauges and timers with labels, cheap on the hot path.

A metric has a dotted ``name`` (``task.msg.handle``) and labels (``topology``, ``task``,
``status``, ...). Its flat ``key``, used by :meth:`Registry.snapshot`, by ``TestRun`` and
by the dotted backends, is ``<topology>[.<task>].<name>[.<status>]`` with any other label
appended as ``{k=v,...}``: ``wordcount.count.task.msg.handle``.

Values are cumulative since the registry was made; backends that want deltas (statsd)
compute them. Counters and gauges are plain attributes (``counter.value += n``) so the
engine pays one attribute update per event; the engine updates them from its event loop
thread only. User metrics (``TaskMetrics``) may be updated from worker threads and take a
lock.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Literal

Kind = Literal["counter", "gauge", "timer"]
Labels = tuple[tuple[str, str], ...]

DEFAULT_BUCKETS_MS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
)  # fmt: skip


def flat_key(name: str, labels: Labels) -> str:
    """``<topology>[.<task>].<name>[.<status>]`` plus any other labels as ``{k=v}``."""
    d = dict(labels)
    parts = [p for p in (d.pop("topology", None), d.pop("task", None), name) if p]
    status = d.pop("status", None)
    if status:
        parts.append(status)
    key = ".".join(parts)
    if d:
        key += "{" + ",".join(f"{k}={v}" for k, v in sorted(d.items())) + "}"
    return key


class Metric:
    """Common part of every metric: name, labels and flat key."""

    __slots__ = ("key", "labels", "name")
    kind: Kind

    def __init__(self, name: str, labels: Labels) -> None:
        self.name = name
        self.labels = labels
        self.key = flat_key(name, labels)

    def label(self, key: str, default: str = "") -> str:
        """The value of one label."""
        for k, v in self.labels:
            if k == key:
                return v
        return default


class Counter(Metric):
    """A count that only goes up: ``counter.value += n`` or ``counter.inc(n)``."""

    __slots__ = ("value",)
    kind: Kind = "counter"

    def __init__(self, name: str, labels: Labels) -> None:
        super().__init__(name, labels)
        self.value = 0

    def inc(self, n: int = 1) -> None:
        """Add ``n``."""
        self.value += n


class Gauge(Metric):
    """A value that is set; or read from a function at each snapshot."""

    __slots__ = ("func", "value")
    kind: Kind = "gauge"

    def __init__(self, name: str, labels: Labels, func: Callable[[], float] | None = None) -> None:
        super().__init__(name, labels)
        self.value: float = 0
        self.func = func

    def set(self, value: float) -> None:
        """Set the value."""
        self.value = value

    def read(self) -> float:
        """The current value (calls the function of a function gauge)."""
        if self.func is not None:
            self.value = self.func()
        return self.value


class Timer(Metric):
    """A histogram of durations in milliseconds, with count, sum and max."""

    __slots__ = ("bounds", "buckets", "count", "max_ms", "sum_ms")
    kind: Kind = "timer"

    def __init__(self, name: str, labels: Labels, bounds: tuple[float, ...] = DEFAULT_BUCKETS_MS):
        super().__init__(name, labels)
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum_ms = 0.0
        self.max_ms = 0.0

    def observe(self, ms: float, n: int = 1) -> None:
        """Record ``n`` observations of ``ms`` milliseconds each."""
        self.buckets[bisect.bisect_left(self.bounds, ms)] += n
        self.count += n
        self.sum_ms += ms * n
        if ms > self.max_ms:
            self.max_ms = ms

    def quantile(self, q: float) -> float:
        """An upper bound of the ``q`` quantile (the bucket bound it falls in)."""
        if self.count == 0:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.buckets):
            seen += n
            if seen >= rank and n:
                return min(self.bounds[i], self.max_ms) if i < len(self.bounds) else self.max_ms
        return self.max_ms


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


class Registry:
    """Holds every metric of one topology process, by (name, labels)."""

    def __init__(self) -> None:
        self._metrics: dict[tuple[str, Labels], Metric] = {}
        self._lock = threading.Lock()

    def _get(self, cls: type[Metric], name: str, labels: Mapping[str, str]) -> Metric:
        key = (name, _labels(labels))
        metric = self._metrics.get(key)
        if metric is None:
            with self._lock:
                metric = self._metrics.get(key)
                if metric is None:
                    metric = cls(name, key[1])
                    self._metrics[key] = metric
        if not isinstance(metric, cls):
            raise TypeError(f"metric {metric.key!r} is a {metric.kind}, not a {cls.kind}")
        return metric

    def counter(self, name: str, **labels: str) -> Counter:
        """The counter ``name`` with these labels (made on first use)."""
        metric = self._get(Counter, name, labels)
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, name: str, func: Callable[[], float] | None = None, **labels: str) -> Gauge:
        """The gauge ``name`` with these labels; ``func`` makes it read its value at snapshot."""
        metric = self._get(Gauge, name, labels)
        assert isinstance(metric, Gauge)
        if func is not None:
            metric.func = func
        return metric

    def timer(self, name: str, **labels: str) -> Timer:
        """The timer ``name`` with these labels (made on first use)."""
        metric = self._get(Timer, name, labels)
        assert isinstance(metric, Timer)
        return metric

    def __iter__(self) -> Iterator[Metric]:
        return iter(list(self._metrics.values()))

    def snapshot(self) -> dict[str, float]:
        """Every metric as a flat dict: counters and gauges by key; a timer as
        ``<key>.count``, ``<key>.sum_ms``, ``<key>.p50_ms``, ``<key>.p99_ms``, ``<key>.max_ms``."""
        out: dict[str, float] = {}
        for m in self:
            if isinstance(m, Counter):
                out[m.key] = m.value
            elif isinstance(m, Gauge):
                out[m.key] = m.read()
            elif isinstance(m, Timer):
                out[m.key + ".count"] = m.count
                out[m.key + ".sum_ms"] = round(m.sum_ms, 3)
                out[m.key + ".p50_ms"] = m.quantile(0.5)
                out[m.key + ".p99_ms"] = m.quantile(0.99)
                out[m.key + ".max_ms"] = round(m.max_ms, 3)
        return out


class ScopedMetrics:
    """User metrics under fixed labels, safe to call from any thread.

    ``incr(name, n)``, ``gauge(name, value)`` and ``timing(name, ms)``; the name is
    prefixed with ``prefix`` (``"source."`` for a source's own metrics).
    """

    def __init__(self, registry: Registry, prefix: str = "", **labels: str) -> None:
        self._registry = registry
        self._prefix = prefix
        self._labels = labels
        self._lock = threading.Lock()

    def incr(self, name: str, n: int = 1, **labels: str) -> None:
        """Add ``n`` to the counter ``name``."""
        c = self._registry.counter(self._prefix + name, **self._labels, **labels)
        with self._lock:
            c.value += n

    def gauge(self, name: str, value: float, **labels: str) -> None:
        """Set the gauge ``name``."""
        self._registry.gauge(self._prefix + name, None, **self._labels, **labels).set(value)

    def timing(self, name: str, ms: float, **labels: str) -> None:
        """Record a duration in milliseconds."""
        t = self._registry.timer(self._prefix + name, **self._labels, **labels)
        with self._lock:
            t.observe(ms)


TaskMetrics = ScopedMetrics
"""What ``Task.metrics`` is: metrics labelled with the topology and the task."""

SourceMetrics = ScopedMetrics
"""What ``Source.metrics`` is: metrics named ``<topology>.source.<name>``."""
