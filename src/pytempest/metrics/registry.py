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

Function gauges (``registry.gauge(name, func)``) read engine state that only the event
loop may touch, so :meth:`Registry.sample_gauges` calls them on the loop (the flusher does
it before each flush) and targets, which run in worker threads, read ``gauge.value``.

Timers are histograms with fixed bucket bounds in milliseconds (``DEFAULT_BUCKETS_MS``,
``Registry(buckets_ms=...)``, or per timer name with :meth:`Registry.set_buckets`); each
bucket also keeps the sum of its observations so a backend can summarise an interval
exactly (count and sum) and closely (quantiles).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

log = logging.getLogger("pytempest.metrics")

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
    """A histogram of durations in milliseconds, with count, sum and max.

    ``buckets[i]`` counts observations ``<= bounds[i]`` (and above ``bounds[i-1]``); the
    last bucket holds those above every bound. ``bucket_sums[i]`` is their sum in ms.
    ``count`` and ``sum_ms`` are computed from them when read, so :meth:`observe` (on
    the hot path) updates only the bucket it falls in and the max.
    """

    __slots__ = ("bounds", "bucket_sums", "buckets", "max_ms")
    kind: Kind = "timer"

    def __init__(self, name: str, labels: Labels, bounds: tuple[float, ...] = DEFAULT_BUCKETS_MS):
        super().__init__(name, labels)
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.bucket_sums = [0.0] * (len(bounds) + 1)
        self.max_ms = 0.0

    def rebucket(self, bounds: tuple[float, ...]) -> None:
        """Use other bounds; only for a timer without observations (they would be lost)."""
        if self.count:
            raise ValueError(f"timer {self.key!r} has observations; its buckets cannot change")
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.bucket_sums = [0.0] * (len(bounds) + 1)

    def observe(self, ms: float, n: int = 1) -> None:
        """Record ``n`` observations of ``ms`` milliseconds each."""
        i = bisect_left(self.bounds, ms)
        self.buckets[i] += n
        self.bucket_sums[i] += ms * n
        if ms > self.max_ms:
            self.max_ms = ms

    @property
    def count(self) -> int:
        """How many observations."""
        return sum(self.buckets)

    @property
    def sum_ms(self) -> float:
        """The sum of every observation, in ms."""
        return sum(self.bucket_sums)

    def quantile(self, q: float) -> float:
        """An upper bound of the ``q`` quantile (the bucket bound it falls in)."""
        buckets = list(self.buckets)
        count = sum(buckets)
        if count == 0:
            return 0.0
        rank = q * count
        seen = 0
        for i, n in enumerate(buckets):
            seen += n
            if seen >= rank and n:
                return min(self.bounds[i], self.max_ms) if i < len(self.bounds) else self.max_ms
        return self.max_ms


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def check_buckets(buckets_ms: Sequence[float], where: str = "buckets_ms") -> tuple[float, ...]:
    """Return ``buckets_ms`` as a tuple if it is a non-empty, strictly increasing list of
    positive numbers; else raise ``ConfigError``."""
    from pytempest.errors import ConfigError

    if not isinstance(buckets_ms, list | tuple):
        raise ConfigError(
            f"{where} must be a list of positive milliseconds (e.g. [1, 5, 25, 100]); got {buckets_ms!r}"
        )
    bounds = tuple(buckets_ms)
    ok = bool(bounds) and all(
        isinstance(b, int | float) and not isinstance(b, bool) and 0 < b < math.inf for b in bounds
    )
    if not ok or any(a >= b for a, b in itertools.pairwise(bounds)):
        raise ConfigError(
            f"{where} must be a non-empty, strictly increasing list of positive, finite milliseconds "
            f"(e.g. [1, 5, 25, 100]); got {list(bounds)!r}"
        )
    return tuple(float(b) for b in bounds)


class Registry:
    """Holds every metric of one topology process, by (name, labels).

    Args:
        buckets_ms: bucket bounds (ms) of every timer made without its own.
    """

    def __init__(self, buckets_ms: Sequence[float] = DEFAULT_BUCKETS_MS) -> None:
        self._metrics: dict[tuple[str, Labels], Metric] = {}
        self._lock = threading.Lock()
        self.buckets_ms = check_buckets(buckets_ms)
        self._buckets_by_name: dict[str, tuple[float, ...]] = {}
        self._gauge_errors: set[str] = set()

    def _get(
        self,
        cls: type[Metric],
        name: str,
        labels: Mapping[str, str],
        make: Callable[[], Metric] | None = None,
    ) -> Metric:
        key = (name, _labels(labels))
        metric = self._metrics.get(key)
        if metric is None:
            with self._lock:
                metric = self._metrics.get(key)
                if metric is None:
                    metric = make() if make is not None else cls(name, key[1])
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

    def use_buckets(self, buckets_ms: Sequence[float]) -> None:
        """Use these bucket bounds (ms) for every timer without bounds of its own
        (:meth:`set_buckets`): those made from now on, and those made already that have
        no observations yet (an observer may make its timers before the engine applies
        the topology's ``metric_buckets_ms``). A timer with observations keeps its bounds."""
        bounds = check_buckets(buckets_ms)
        old, self.buckets_ms = self.buckets_ms, bounds
        for m in self:
            if isinstance(m, Timer) and m.bounds == old and m.name not in self._buckets_by_name:
                if m.count:
                    log.warning("timer %s has observations already; it keeps its buckets %s", m.key, old)
                else:
                    m.rebucket(bounds)

    def set_buckets(self, name: str, buckets_ms: Sequence[float]) -> None:
        """Use these bucket bounds (ms) for timers named ``name`` made from now on."""
        self._buckets_by_name[name] = check_buckets(buckets_ms, f"buckets of timer {name!r}")

    def timer(self, name: str, **labels: str) -> Timer:
        """The timer ``name`` with these labels (made on first use, with the bounds of
        :meth:`set_buckets` or the registry's)."""
        bounds = self._buckets_by_name.get(name, self.buckets_ms)
        metric = self._get(Timer, name, labels, lambda: Timer(name, _labels(labels), bounds))
        assert isinstance(metric, Timer)
        return metric

    def __iter__(self) -> Iterator[Metric]:
        with self._lock:
            return iter(list(self._metrics.values()))

    def __len__(self) -> int:
        return len(self._metrics)

    def sample_gauges(self) -> None:
        """Read every function gauge into ``gauge.value``. Call it on the thread that owns
        the state the functions read (the engine's loop); a function that raises keeps
        its last value and is logged once."""
        for m in self:
            if isinstance(m, Gauge) and m.func is not None:
                try:
                    m.value = m.func()
                except Exception as exc:
                    if m.key not in self._gauge_errors:
                        self._gauge_errors.add(m.key)
                        log.warning("gauge %s could not be read: %r", m.key, exc)

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
                out[m.key + ".p50_ms"] = round(m.quantile(0.5), 3)
                out[m.key + ".p99_ms"] = round(m.quantile(0.99), 3)
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
