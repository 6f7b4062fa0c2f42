"""The worker process: reads task stream entries, runs the tasks, answers the topology.

A worker serves some tasks of one topology. It reads their streams through the consumer
group ``workers`` (``XREADGROUP``; it holds at most ``prefetch`` entries per task it
serves and reads no more while it holds that many), runs every task message with the
same functions as the in-process runtime (inline, in a thread pool for ``threaded``
tasks, concurrently for ``async`` ones), then writes the
results to the result stream of the topology instance that sent the entry and ``XACK``s
and ``XDEL``s the entry, all in one ``MULTI``. Entries that another consumer left
pending longer than ``claim_idle_ms`` (it died) are claimed with ``XAUTOCLAIM``; an entry
delivered more than ``max_deliveries`` times is answered with an error for each of its
messages instead of being run again (no poison loop). Entries sent by a topology instance
that is gone (no heartbeat) are acked without running them. A heartbeat thread (see
:mod:`~pytempest.runtimes.redis_bus.lease`) keeps this worker visible and its entries
leased while a long ``handle`` holds the event loop.

:meth:`Worker.request_stop` (SIGTERM): stop reading, finish the entries in hand, ack
them, return. :meth:`Worker.abort`: return at once; what was in hand stays pending and
another worker claims it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pytempest.engine.executor import CohortOutcome
from pytempest.errors import ConfigError, TaskSetupError, WireError
from pytempest.metrics.flusher import MetricsFlusher
from pytempest.metrics.registry import Registry, ScopedMetrics
from pytempest.model.message import now_ms
from pytempest.model.policy import Backoff
from pytempest.redis import keyspace
from pytempest.redis.connection import (
    check_url,
    connect,
    connection_error,
    connection_problem,
    is_busygroup,
    is_nogroup,
)
from pytempest.runtimes.cohort import run_cohort
from pytempest.runtimes.inprocess import maybe_await
from pytempest.runtimes.redis_bus import cohorts, wire
from pytempest.runtimes.redis_bus.heartbeat import heartbeat_key, make_name
from pytempest.runtimes.redis_bus.lease import HeartbeatThread, WorkerCounts
from pytempest.runtimes.redis_bus.runner import TaskRunner
from pytempest.runtimes.redis_bus.settings import BusSettings
from pytempest.topology import Topology

log = logging.getLogger("pytempest.worker")

GROUP = keyspace.TASK_GROUP
INSTANCE_CHECK_S = 1.0
ANSWER_SLICE_S = 0.005


@dataclass(slots=True)
class _Entry:
    stream: int
    entry_id: bytes
    fields: dict[bytes, bytes]
    deliveries: int


@dataclass(slots=True)
class _Done:
    stream: int
    entry_id: bytes
    reply_to: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    field: bytes = wire.FIELD


class Worker:
    """Runs ``tasks`` (names; empty or None: every task) of ``topology`` for any instance
    of it that writes to the Redis at ``url``."""

    def __init__(
        self,
        topology: Topology,
        tasks: Sequence[str] | None,
        url: str,
        *,
        settings: BusSettings | None = None,
        name: str | None = None,
        registry: Registry | None = None,
        max_threads: int = 8,
    ) -> None:
        graph = topology.graph
        names = list(dict.fromkeys(tasks)) if tasks else list(graph.names)
        unknown = [n for n in names if n not in graph.names]
        if unknown:
            raise ConfigError(
                f"topology {topology.name!r} has no task {', '.join(map(repr, unknown))}; "
                f"its tasks: {', '.join(graph.names)}"
            )
        self.topology = topology
        self.url = check_url(url, f"worker of topology {topology.name}")
        self.settings = settings or BusSettings()
        self.name = name or make_name()
        self.registry = registry if registry is not None else Registry()
        if topology.metric_buckets_ms is not None:
            self.registry.use_buckets(topology.metric_buckets_ms)
        self._claimed = [
            self.registry.counter("task.entry.claimed", topology=topology.name, task=n) for n in names
        ]
        self.task_names = names
        self.tasks = [graph.tasks[graph.index(n)] for n in names]
        self.keys = [keyspace.task_stream(topology.name, n) for n in names]
        self._index = {k.encode(): i for i, k in enumerate(self.keys)}
        self._pool = (
            ThreadPoolExecutor(max_threads, "pytempest-task") if any(t.threaded for t in self.tasks) else None
        )
        self.counts = WorkerCounts()
        self._runners = [
            TaskRunner(t, topology.name, self.registry, self.settings, self.counts, self._pool)
            for t in self.tasks
        ]
        # A worker serving every task, all sync and inline, runs whole-graph cohorts.
        self._whole_graph = set(names) == set(graph.names) and all(
            not t.is_async() and not t.threaded for t in graph.tasks
        )
        self._filters = [t.has_filter() for t in graph.tasks]
        self._graph_runners = (
            [self._runners[names.index(n)] for n in graph.names] if self._whole_graph else []
        )
        self.held: list[dict[bytes, float]] = [{} for _ in names]
        self._queue: asyncio.Queue[_Entry | None] = asyncio.Queue()
        self._done: list[_Done] = []
        self._write_wake = asyncio.Event()
        self._room = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._handler_done = False
        self._alive: dict[str, tuple[bool, float]] = {}
        self._client: Any = None
        self._blocking: Any = None
        self._main: asyncio.Task[Any] | None = None
        self._started_tasks: list[Any] = []
        self._heartbeat: HeartbeatThread | None = None
        self._flusher: MetricsFlusher | None = None

    # -- control --------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop reading; finish and ack the entries in hand; then :meth:`run` returns."""
        if self._stopping:
            self.abort()
            return
        log.info("worker %s: stopping: finishing %d entries in hand", self.name, self.in_hand)
        self._stopping = True
        self._stop.set()
        self._room.set()

    def abort(self) -> None:
        """Return from :meth:`run` at once (entries in hand stay pending for others)."""
        self._stopping = True
        self._stop.set()
        if self._main is not None:
            self._main.cancel()

    @property
    def in_hand(self) -> int:
        """Entries read or claimed and not yet acked."""
        return sum(len(h) for h in self.held)

    # -- run ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until :meth:`request_stop`; raises when a loop dies."""
        self._main = asyncio.current_task()
        try:
            await self._start()
            await self._serve()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            log.warning("worker %s: aborted with %d entries in hand (others will claim them)",
                        self.name, self.in_hand)  # fmt: skip
        finally:
            await self._finish()

    async def _start(self) -> None:
        self._client = connect(self.url)
        self._blocking = connect(self.url, socket_timeout_s=self.settings.block_ms / 1000 + 10)
        try:
            await self._create_groups()
        except Exception as exc:
            if connection_problem(exc):
                raise connection_error(self.url, exc, f"worker {self.name}") from exc
            raise
        for task in self.tasks:
            task.metrics = ScopedMetrics(self.registry, topology=self.topology.name, task=task.name)
        for task in self.tasks:
            try:
                await maybe_await(task.setup())
            except Exception as exc:
                raise TaskSetupError(
                    f"worker {self.name}: setup() of task {task.name!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
            self._started_tasks.append(task)
        self._flusher = await self._open_flusher()
        self._heartbeat = HeartbeatThread(self)
        self._heartbeat.start()
        log.info("worker %s: serving tasks %s of topology %s", self.name, ", ".join(self.task_names),
                 self.topology.name)  # fmt: skip

    async def _open_flusher(self) -> MetricsFlusher | None:
        top = self.topology
        if not top.metric_targets:
            return None
        flusher = MetricsFlusher(self.registry, top.metric_targets, top.metric_flush_interval_ms)
        try:
            await flusher.open()
        except Exception as exc:
            # E.g. a Prometheus port the topology process on this machine already serves.
            log.warning("worker %s: its metrics go to no target: opening them failed: %r", self.name, exc)
            return None
        return flusher

    async def _create_groups(self) -> None:
        for key in self.keys:
            try:
                await self._client.xgroup_create(key, GROUP, id="0", mkstream=True)
            except Exception as exc:
                if not is_busygroup(exc):
                    raise

    async def _serve(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                producers = [group.create_task(self._read_loop()), group.create_task(self._claim_loop())]
                handler = group.create_task(self._handle_loop())
                writer = group.create_task(self._write_loop())
                if self._flusher is not None:
                    group.create_task(self._flusher.run())
                await asyncio.gather(*producers)
                self._queue.put_nowait(None)
                await handler
                self._handler_done = True
                self._write_wake.set()
                await writer
                if self._flusher is not None:
                    self._flusher.stop()
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None

    async def _finish(self) -> None:
        for task in reversed(self._started_tasks):
            try:
                await maybe_await(task.teardown())
            except Exception:
                log.exception("worker %s: teardown of task %r failed", self.name, task.name)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._flusher is not None:
            await self._flusher.close()
        if self._heartbeat is not None:
            self._heartbeat.stop(goodbye=True)
        if self._client is not None and self.in_hand == 0:
            with contextlib.suppress(Exception):
                await self._forget_consumer()
        for client in (self._client, self._blocking):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        c = self.counts
        log.info(
            "worker %s: stopped; handled %d task messages in %d entries, %d errors, %d entries claimed "
            "(%d messages run again), %d orphaned entries skipped, %d over max_deliveries",
            self.name, c.handled, c.entries, c.errors, c.claimed, c.redelivered, c.orphaned, c.poison,
        )  # fmt: skip

    async def _forget_consumer(self) -> None:
        """Remove this consumer from the groups once it holds nothing (keeps XINFO tidy)."""
        for key in self.keys:
            pending = await self._client.xpending_range(key, GROUP, "-", "+", 1, consumername=self.name)
            if not pending:
                await self._client.xgroup_delconsumer(key, GROUP, self.name)

    # -- reading and claiming -------------------------------------------------------------
    def _hold(self, entry: _Entry) -> None:
        self.held[entry.stream][entry.entry_id] = asyncio.get_running_loop().time()
        self._queue.put_nowait(entry)

    async def _redis_trouble(self, exc: Exception, what: str, backoff: Backoff) -> None:
        if is_nogroup(exc):
            log.warning("worker %s: consumer group missing (Redis restarted?); recreating it", self.name)
            try:
                await self._create_groups()
                return
            except Exception as again:
                exc = again
        if not connection_problem(exc):
            raise exc
        self.counts.redis_errors += 1
        wait = backoff.miss()
        log.warning("worker %s: %s failed (%s); retrying in %d ms", self.name, what, exc, wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), wait / 1000)

    @property
    def room(self) -> int:
        """How many more entries this worker may hold: ``prefetch`` per task it serves."""
        return self.settings.prefetch * len(self.keys) - self.in_hand

    async def _read_loop(self) -> None:
        # One blocking read covers every stream this worker serves, so an entry that
        # arrives in any of them wakes it (a read leaving some stream out could sleep a
        # whole block_ms while that stream fills up). COUNT applies per stream.
        streams = dict.fromkeys(self.keys, ">")
        prefetch = self.settings.prefetch
        backoff = Backoff(50, 5000)
        while not self._stopping:
            room = self.room
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            count = max(1, min(prefetch, room // len(self.keys)))
            try:
                reply = await self._blocking.xreadgroup(
                    GROUP, self.name, streams, count=count, block=self.settings.block_ms
                )
                backoff.reset()
            except Exception as exc:
                await self._redis_trouble(exc, "reading task streams", backoff)
                continue
            for key, entries in reply or ():
                i = self._index[key]
                for entry_id, fields in entries:
                    self._hold(_Entry(i, entry_id, fields, 1))

    async def _claim_loop(self) -> None:
        s = self.settings
        backoff = Backoff(50, 5000)
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), s.claim_interval_ms / 1000)
            for i, key in enumerate(self.keys):
                room = min(s.prefetch, self.room)
                if self._stopping or room <= 0:
                    continue
                try:
                    await self._claim(i, key, room)
                except Exception as exc:
                    await self._redis_trouble(exc, "claiming idle entries", backoff)

    async def _claim(self, i: int, key: str, room: int) -> None:
        reply = await self._client.xautoclaim(
            key, GROUP, self.name, self.settings.claim_idle_ms, "0-0", count=room
        )
        claimed = [(eid, f) for eid, f in reply[1] if f and eid not in self.held[i]]
        if not claimed:
            return
        ids = [eid for eid, _ in claimed]
        pending = await self._client.xpending_range(key, GROUP, min(ids), max(ids), len(ids) * 2, self.name)
        times = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        self.counts.claimed += len(claimed)
        self._claimed[i].value += len(claimed)
        log.info("worker %s: claimed %d idle entries of %s (their worker died or stalled)",
                 self.name, len(claimed), key)  # fmt: skip
        for eid, fields in claimed:
            self._hold(_Entry(i, eid, fields, times.get(eid, 2)))

    # -- handling --------------------------------------------------------------------------
    async def _handle_loop(self) -> None:
        loop = asyncio.get_running_loop()
        slice_end = loop.time() + ANSWER_SLICE_S
        while True:
            entry = await self._queue.get()
            if entry is None:
                return
            done = await self._handle(entry)
            self._done.append(done)
            if not self._write_wake.is_set():
                self._write_wake.set()
            # A queue that is not empty never suspends ``get`` and inline tasks never
            # suspend: yield so the writer answers what is done, at least every slice
            # (answers of the entries handled within one slice share one MULTI).
            if self._queue.empty() or loop.time() >= slice_end:
                await asyncio.sleep(0)
                slice_end = loop.time() + ANSWER_SLICE_S

    async def _handle(self, entry: _Entry) -> _Done:
        done = _Done(entry.stream, entry.entry_id)
        where = f"{self.keys[entry.stream]} entry {entry.entry_id.decode()}"
        if cohorts.FIELD in entry.fields or cohorts.GRAPH_FIELD in entry.fields:
            return await self._handle_cohort(entry, done, where)
        try:
            instance, _sent_ms, items = wire.decode_tasks(entry.fields, where)
        except WireError as exc:
            self.counts.malformed += 1
            log.error("worker %s: dropped an entry it cannot read: %s", self.name, exc)
            return done
        if not await self._instance_alive(instance):
            self.counts.orphaned += 1
            return done
        done.reply_to = keyspace.result_stream(self.topology.name, instance)
        runner = self._runners[entry.stream]
        if entry.deliveries > self.settings.max_deliveries:
            self.counts.poison += 1
            outcomes = runner.poison(items, entry.deliveries)
        else:
            outcomes = await runner.run(items)
            if entry.deliveries > 1:
                self.counts.redelivered += sum(len(item[5]) for item in items)
        done.chunks = runner.encode(self.name, items, outcomes)
        self.counts.entries += 1
        return done

    async def _handle_cohort(self, entry: _Entry, done: _Done, where: str) -> _Done:
        """A cohort entry: one task over the flat bodies of many source messages, or (a
        ``g`` entry, when this worker serves every task) the whole pipeline over them."""
        whole = cohorts.GRAPH_FIELD in entry.fields
        try:
            instance, ref, counts, bodies = cohorts.decode_task(
                entry.fields, where, cohorts.GRAPH_FIELD if whole else cohorts.FIELD
            )
        except WireError as exc:
            self.counts.malformed += 1
            log.error("worker %s: dropped an entry it cannot read: %s", self.name, exc)
            return done
        if not await self._instance_alive(instance):
            self.counts.orphaned += 1
            return done
        done.reply_to = keyspace.result_stream(self.topology.name, instance)
        runner = self._runners[entry.stream]
        if entry.deliveries > self.settings.max_deliveries:
            self.counts.poison += 1
            out = cohorts.poisoned(counts, runner.poison_failure(entry.deliveries))
        else:
            if runner.task.is_async() or runner.task.threaded:
                log.error("worker %s: a cohort entry for task %r, which is not a sync inline task: "
                          "the topology runs another version of it", self.name, runner.task.name)  # fmt: skip
                self.counts.malformed += 1
                return done
            if entry.deliveries > 1:
                self.counts.redelivered += len(bodies)
            if whole and self._whole_graph:  # decode_task checked: one body per message
                outcome = run_cohort(self.topology.graph, self._filters, bodies)
                done.chunks = [cohorts.encode_graph_answer(self.name, ref, outcome)]
                done.field = cohorts.GRAPH_FIELD
                self._count_graph(outcome)
                self.counts.entries += 1
                return done
            out = cohorts.run_chunk(runner.task, runner.has_filter, counts, bodies)
        done.chunks = runner.encode_cohort(self.name, ref, out)
        done.field = cohorts.FIELD
        self.counts.entries += 1
        return done

    def _count_graph(self, outcome: CohortOutcome) -> None:
        """Count what every task did in a whole-graph cohort, as its runner would."""
        for t, tally in enumerate(outcome.tallies):
            runner = self._graph_runners[t]
            runner.handled.value += tally.handled
            runner.skipped.value += tally.skipped
            runner.outflow.value += tally.outflow
            runner.errors.value += tally.errors
            self.counts.handled += tally.handled + tally.skipped
            self.counts.errors += tally.errors

    async def _instance_alive(self, instance: str) -> bool:
        now = asyncio.get_running_loop().time()
        cached = self._alive.get(instance)
        if cached is not None and now - cached[1] < INSTANCE_CHECK_S:
            return cached[0]
        try:
            alive = bool(await self._client.exists(heartbeat_key(self.topology.name, "topology", instance)))
        except Exception as exc:
            if not connection_problem(exc):
                raise
            alive = True
        if len(self._alive) > 1000:
            self._alive.clear()
        self._alive[instance] = (alive, now)
        return alive

    # -- answering -------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        backoff = Backoff(50, 5000)
        while True:
            if not self._done:
                if self._handler_done:
                    return
                self._write_wake.clear()
                await self._write_wake.wait()
                continue
            batch, self._done = self._done, []
            while True:
                try:
                    await self._answer(batch)
                    backoff.reset()
                    break
                except Exception as exc:
                    await self._redis_trouble(exc, "writing results", backoff)
            for d in batch:
                self.held[d.stream].pop(d.entry_id, None)
            self._room.set()

    async def _answer(self, batch: list[_Done]) -> None:
        pipe = self._client.pipeline(transaction=True)
        by_stream: dict[int, list[bytes]] = {}
        for d in batch:
            for chunk in d.chunks:
                pipe.execute_command("XADD", d.reply_to, "NOMKSTREAM", "*", d.field, chunk)
            by_stream.setdefault(d.stream, []).append(d.entry_id)
        for i, ids in by_stream.items():
            pipe.xack(self.keys[i], GROUP, *ids)
            pipe.xdel(self.keys[i], *ids)
        replies = await pipe.execute()
        adds = sum(len(d.chunks) for d in batch)
        self.counts.orphaned_results += sum(1 for r in replies[:adds] if r is None)
        self.counts.last_answer_ms = now_ms()
