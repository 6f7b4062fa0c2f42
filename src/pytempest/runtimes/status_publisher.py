"""The status snapshot: what a running topology instance tells dashboards about itself.

A :class:`StatusPublisher` is an engine observer (it keeps the last errors with their
tracebacks, per task) and a periodic snapshot writer: every ``interval_ms`` it reads the
instance's metric registry on the engine's event loop and builds one plain, JSON-ready
dict (:data:`SNAPSHOT_VERSION`):

* who: ``topology``, ``instance``, ``mode`` (``in_process`` or ``distributed``), host,
  pid, start time, when it was written, ``final`` (the last one, written at exit);
* what: the graph (tasks and edges), the settings (``max_pending``, ``msg_timeout_ms``,
  failure policy), the source and the dead letter (described without secrets);
* how it goes: cumulative ``totals`` (read, acked, failed, dead-lettered, in flight,
  source lag and pending), ``rates`` and message ``latency`` quantiles over the last
  ``window_points`` intervals, one row per task (rates, p50/p99 handle time, errors,
  queue depth, workers), a ``history`` of per-interval rates and latencies for charts,
  the last ``errors_kept`` errors per task with their traceback text, and every metric
  (``metrics``, as :meth:`Registry.snapshot` gives them).

In the distributed runtime the topology process writes it to
``{pt:<topology>}:snapshot:<instance>`` (:func:`pytempest.redis.keyspace.snapshot`) with
a TTL (:class:`RedisSnapshotSink`), where ``pytempest director`` reads it;
``pytempest run --dashboard`` serves :attr:`StatusPublisher.latest` from memory.
Dashboards read nothing else of the engine. Publishing never stops the topology: a
failed write is logged (at most once a minute) and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pytempest.deadletters.base import DeadLetter
from pytempest.engine.completion import MessageState
from pytempest.engine.events import EngineObserver
from pytempest.engine.executor import TaskFailure
from pytempest.metrics.registry import Registry, Timer
from pytempest.model.message import now_ms
from pytempest.redis import keyspace
from pytempest.redis.connection import connect, mask_url
from pytempest.topology import Topology

log = logging.getLogger("pytempest.status")

SNAPSHOT_VERSION = 1
HISTORY_FIELDS = ("ms", "read", "acked", "failed", "deadlettered", "latency_p50_ms", "latency_p99_ms")
"""The columns of ``snapshot["history"]["points"]``: rates are per second over one interval."""
TRACEBACK_LIMIT = 2000
"""Traceback texts are cut to their last this many characters (the innermost frames)."""
FINAL_TTL_MS = 3_600_000
"""The final snapshot of a stopped instance stays this long."""

Mode = Literal["in_process", "distributed"]


class SnapshotSink(Protocol):
    """Where snapshots go (besides :attr:`StatusPublisher.latest`)."""

    async def write(self, snapshot: dict[str, Any]) -> None:
        """Store one snapshot; may raise (the publisher logs and goes on)."""

    async def close(self) -> None:
        """Release connections; called once, last."""


@dataclass(slots=True)
class _Sample:
    """Cumulative counts at one moment, to compute what changed over an interval."""

    ms: int
    totals: dict[str, float]
    latency: list[tuple[int, float]]
    tasks: list[dict[str, float]]
    task_times: list[list[tuple[int, float]]]


def _buckets(timer: Timer) -> list[tuple[int, float]]:
    return list(zip(timer.buckets, timer.bucket_sums, strict=True))


def _minus(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(n1 - n0, s1 - s0) for (n1, s1), (n0, s0) in zip(a, b, strict=True)]


def _plus(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(n1 + n0, s1 + s0) for (n1, s1), (n0, s0) in zip(a, b, strict=True)]


def bucket_quantile(buckets: Sequence[tuple[int, float]], q: float) -> float | None:
    """The ``q`` quantile of a histogram given as ``(count, sum_ms)`` per bucket: the mean
    of the observations in the bucket it falls in (None without observations)."""
    total = sum(n for n, _ in buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for n, s in buckets:
        seen += n
        if n > 0 and seen >= rank:
            return round(s / n, 3)
    n, s = next((n, s) for n, s in reversed(buckets) if n > 0)
    return round(s / n, 3)


class StatusPublisher(EngineObserver):
    """Builds the status snapshot of one topology instance (see the module docstring).

    Args:
        topology: the topology that runs.
        registry: the engine's metric registry (read on the engine's loop only).
        instance: this instance's name (the distributed runtime's instance name).
        mode: ``in_process`` or ``distributed``.
        interval_ms: how often :meth:`run` takes a snapshot.
        history_points: how many intervals the chart history keeps (default 5 minutes at 1 s).
        window_points: rates and quantiles are computed over this many intervals.
        errors_kept: the last errors kept per task (timeouts count under no task).
        clock: epoch milliseconds (tests pass their own).
    """

    def __init__(
        self,
        topology: Topology,
        registry: Registry,
        *,
        instance: str,
        mode: Mode,
        interval_ms: int = 1000,
        history_points: int = 300,
        window_points: int = 10,
        errors_kept: int = 10,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.topology = topology
        self.registry = registry
        self.instance = instance
        self.mode: Mode = mode
        self.interval_ms = max(50, int(interval_ms))
        self.clock = clock
        self.started_ms = clock()
        self.latest: dict[str, Any] | None = None
        self.history: deque[list[Any]] = deque(maxlen=max(2, history_points))
        self._window: deque[_Sample] = deque(maxlen=max(1, window_points) + 1)
        self._errors: dict[str, deque[dict[str, Any]]] = {}
        self._errors_kept = max(1, errors_kept)
        self._prev: _Sample | None = None
        t = topology.name
        r = registry
        self._timer_latency = r.timer("topology.source.msg.latency", topology=t)
        self._timer_tasks = [r.timer("task.handle", topology=t, task=n) for n in topology.graph.names]
        self._static = self._describe()

    # -- observer -----------------------------------------------------------------------
    def failed(self, state: MessageState, reason: str, task: str | None, failure: TaskFailure | None) -> None:
        msg = state.msg
        entry: dict[str, Any] = {
            "ms": self.clock(),
            "task": task,
            "source_id": msg.id,
            "attempt": msg.deliveries,
            "reason": reason,
            "error_type": failure.error_type if failure is not None else "Timeout",
            "message": (failure.message if failure is not None
                        else f"not done {self.topology.msg_timeout_ms} ms after it was read"),
            "traceback": failure.traceback[-TRACEBACK_LIMIT:] if failure is not None else "",
        }  # fmt: skip
        kept = self._errors.get(task or "")
        if kept is None:
            kept = self._errors[task or ""] = deque(maxlen=self._errors_kept)
        kept.append(entry)

    # -- snapshots ----------------------------------------------------------------------
    def _describe(self) -> dict[str, Any]:
        top = self.topology
        graph = top.graph
        tasks = []
        for t in graph.tasks:
            kind = "async" if t.is_async() else ("threaded" if t.threaded else "inline")
            tasks.append({"name": t.name, "kind": kind, "concurrency": t.concurrency, "batch": t.batch})
        return {
            "version": SNAPSHOT_VERSION,
            "topology": top.name,
            "instance": self.instance,
            "mode": self.mode,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_ms": self.started_ms,
            "interval_ms": self.interval_ms,
            "settings": {
                "max_pending": top.max_pending,
                "msg_timeout_ms": top.msg_timeout_ms,
                "graceful_shutdown_ms": top.graceful_shutdown_ms,
                "failure_policy": str(top.failure_policy),
            },
            "source": {"name": top.source.describe(), "ack_policy": str(top.source.ack_policy)},
            "dead_letter": describe_dead_letter(top.dead_letter),
            "graph": {"tasks": tasks, "edges": [list(e) for e in graph.edges()], "release": graph.release},
        }

    def _sample(self, metrics: dict[str, float], ms: int) -> _Sample:
        t = self.topology.name

        def m(key: str) -> float:
            return metrics.get(f"{t}.{key}", 0)

        totals = {
            "read": m("source.msg.read"),
            "acked": m("source.msg.acked.success"),
            "completed": m("topology.source.msg.ack"),
            "errors": m("topology.source.msg.error"),
            "timeouts": m("topology.source.msg.timeout"),
            "deadlettered": m("topology.source.msg.deadletter"),
            "dropped": m("topology.source.msg.retry.dropped"),
            "retried": m("topology.source.msg.retry.queued"),
        }
        totals["failed"] = totals["errors"] + totals["timeouts"]
        tasks = []
        for name in self.topology.graph.names:
            tasks.append(
                {k: m(f"{name}.task.msg.{k}") for k in ("inflow", "handle", "outflow", "skipped", "error")}
            )
        return _Sample(ms, totals, _buckets(self._timer_latency), tasks,
                       [_buckets(timer) for timer in self._timer_tasks])  # fmt: skip

    def take(self, final: bool = False) -> dict[str, Any]:
        """Build a snapshot now (call it on the engine's loop) and keep it in :attr:`latest`."""
        ms = self.clock()
        metrics = self.registry.snapshot()
        sample = self._sample(metrics, ms)
        prev = self._prev
        if prev is not None and ms > prev.ms:
            dt = (ms - prev.ms) / 1000
            lat = _minus(sample.latency, prev.latency)
            self.history.append([
                ms,
                *(round((sample.totals[k] - prev.totals[k]) / dt, 2) for k in HISTORY_FIELDS[1:5]),
                bucket_quantile(lat, 0.5), bucket_quantile(lat, 0.99),
            ])  # fmt: skip
        self._prev = sample
        self._window.append(sample)
        snapshot = dict(self._static)
        snapshot.update(self._dynamic(sample, metrics))
        snapshot["written_ms"] = ms
        snapshot["final"] = final
        snapshot["history"] = {"fields": list(HISTORY_FIELDS), "points": list(self.history)}
        snapshot["errors"] = self._recent_errors()
        snapshot["metrics"] = metrics
        self.latest = snapshot
        return snapshot

    def _dynamic(self, sample: _Sample, metrics: dict[str, float]) -> dict[str, Any]:
        t = self.topology.name
        first = self._window[0]
        dt = max(0.001, (sample.ms - first.ms) / 1000)
        has_window = sample is not first

        def rate(now: float, then: float) -> float:
            return round((now - then) / dt, 2) if has_window else 0.0

        totals: dict[str, Any] = {k: int(v) for k, v in sample.totals.items()}
        totals["inflight"] = int(metrics.get(f"{t}.pipeline.inflight", 0))
        totals["retry_waiting"] = int(metrics.get(f"{t}.pipeline.retry.waiting", 0))
        for key in ("lag", "pending"):
            value = metrics.get(f"{t}.source.{key}")
            totals[f"source_{key}"] = None if value is None else int(value)
        totals["source_backoff_ms"] = int(metrics.get(f"{t}.source.backoff", 0))
        rates = {
            k: rate(sample.totals[k], first.totals[k]) for k in ("read", "acked", "failed", "deadlettered")
        }
        lat = _minus(sample.latency, first.latency)
        latency = {"p50_ms": bucket_quantile(lat, 0.5), "p99_ms": bucket_quantile(lat, 0.99)}
        rows = []
        for i, static in enumerate(self._static["graph"]["tasks"]):
            name = static["name"]
            now, then = sample.tasks[i], first.tasks[i]
            times = _minus(sample.task_times[i], first.task_times[i])
            handled = now["handle"] - then["handle"]
            errors = now["error"] - then["error"]
            workers = metrics.get(f"{t}.{name}.bus.workers")
            if workers is None and self.mode == "in_process":
                workers = {"inline": 1, "async": static["concurrency"]}.get(static["kind"])
            rows.append({
                "name": name,
                "handled": int(now["handle"]), "skipped": int(now["skipped"]), "errors": int(now["error"]),
                "inflow": int(now["inflow"]), "outflow": int(now["outflow"]),
                "rate": rate(now["handle"], then["handle"]),
                "outflow_rate": rate(now["outflow"], then["outflow"]),
                "error_rate": round(errors / (handled + errors), 4) if handled + errors else 0.0,
                "p50_ms": bucket_quantile(times, 0.5), "p99_ms": bucket_quantile(times, 0.99),
                "queue_depth": int(metrics.get(f"{t}.{name}.task.queue.depth", 0)),
                "workers": None if workers is None else int(workers),
            })  # fmt: skip
        return {
            "healthy": self.topology.source.healthy(),
            "totals": totals,
            "rates": rates,
            "window_ms": sample.ms - first.ms,
            "latency": latency,
            "tasks": rows,
        }

    def _recent_errors(self) -> list[dict[str, Any]]:
        out = [e for kept in self._errors.values() for e in kept]
        out.sort(key=lambda e: e["ms"], reverse=True)
        return out

    # -- the loop -----------------------------------------------------------------------
    async def run(self, sink: SnapshotSink | None = None, stop: asyncio.Event | None = None) -> None:
        """Take a snapshot every ``interval_ms`` (and hand it to ``sink``) until ``stop``
        is set or the task is cancelled. Never raises because of a snapshot or a write."""
        stop = stop or asyncio.Event()
        last_warning = 0.0
        while not stop.is_set():
            try:
                snapshot = self.take()
                if sink is not None:
                    await sink.write(snapshot)
            except Exception as exc:
                if time.monotonic() - last_warning >= 60:
                    last_warning = time.monotonic()
                    log.warning("topology %s: publishing the status snapshot failed: %r",
                                self.topology.name, exc)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_ms / 1000)

    @contextlib.asynccontextmanager
    async def publishing(self, sink: SnapshotSink | None = None) -> AsyncIterator[StatusPublisher]:
        """Run :meth:`run` in the background for the body of the ``async with``; then
        write a last snapshot marked ``final`` and close ``sink``."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(sink, stop), name="pytempest-status-publisher")
        try:
            yield self
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await task
            try:
                final = self.take(final=True)
                if sink is not None:
                    await sink.write(final)
            except Exception as exc:
                log.warning("topology %s: could not publish the final status snapshot: %r",
                            self.topology.name, exc)  # fmt: skip
            if sink is not None:
                with contextlib.suppress(Exception):
                    await sink.close()


def describe_dead_letter(dead_letter: DeadLetter | None) -> dict[str, Any] | None:
    """What a dashboard needs to find a dead letter, without secrets: its kind, key (or
    path) and masked URL."""
    if dead_letter is None:
        return None
    out: dict[str, Any] = {"name": dead_letter.describe(), "kind": dead_letter.kind}
    key = getattr(dead_letter, "key", None)
    url = getattr(dead_letter, "url", None)
    path = getattr(dead_letter, "path", None)
    if isinstance(key, str):
        out["key"] = key
    if isinstance(url, str):
        out["url"] = mask_url(url)
    if path is not None:
        out["path"] = str(path)
    return out


class RedisSnapshotSink:
    """Writes each snapshot as JSON to ``{pt:<topology>}:snapshot:<instance>`` with a TTL
    (``ttl_ms``; the final one with :data:`FINAL_TTL_MS`)."""

    def __init__(self, url: str, topology: str, instance: str, ttl_ms: int) -> None:
        self.url = url
        self.key = keyspace.snapshot(topology, instance)
        self.ttl_ms = ttl_ms
        self._client: Any = None

    async def write(self, snapshot: dict[str, Any]) -> None:
        """``SET key json PX ttl``."""
        if self._client is None:
            self._client = connect(self.url)
        ttl = FINAL_TTL_MS if snapshot.get("final") else self.ttl_ms
        await self._client.set(self.key, json.dumps(snapshot, separators=(",", ":")), px=ttl)

    async def close(self) -> None:
        """Close the client."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
