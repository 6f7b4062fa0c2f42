"""The Redis bus executor: the topology process sends task messages to worker processes.

Each batch the engine submits gets a number (``ref``) and waits in :attr:`outstanding`.
Batches submitted in one burst (one engine tick) are packed per task into a few stream
entries and written with one pipelined round trip to ``{pt:<topology>}:task:<task>``.
Workers answer on this instance's result stream, which a reader loop follows with a
blocking ``XREAD`` (and trims behind itself); each result is mapped back to its batch by
``ref`` and handed to the engine. A result whose batch is no longer outstanding (a
redelivered entry handled twice, or an attempt that already failed) is dropped and
counted (``<topology>.bus.result.dropped``). A heartbeat loop keeps this instance's
heartbeat and result stream alive, counts live workers per task, warns about a task
with none, and publishes the metric snapshot for ``pytempest status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from pytempest.engine.completion import MessageState
from pytempest.engine.executor import (
    BatchResult,
    CohortOutcome,
    Executor,
    OnResult,
    TaskBatch,
    TaskFailure,
)
from pytempest.errors import WireError
from pytempest.metrics.registry import Registry
from pytempest.model.message import now_ms
from pytempest.model.pipeline import Graph
from pytempest.model.policy import Backoff
from pytempest.redis import keyspace
from pytempest.redis.connection import check_url, connect, connection_error, connection_problem, is_busygroup
from pytempest.runtimes.redis_bus import cohorts, wire
from pytempest.runtimes.redis_bus.heartbeat import (
    base_fields,
    cpu_ms,
    make_name,
    queue_beat,
    queue_goodbye,
)
from pytempest.runtimes.redis_bus.presence import Census, prune_status, publish_status
from pytempest.runtimes.redis_bus.settings import BusSettings

log = logging.getLogger("pytempest.bus")

READ_COUNT = 256


class RedisBusExecutor(Executor):
    """Runs every task in worker processes reached through Redis streams.

    Args:
        topology: the topology name (keys live under its hash tag).
        url: the Redis every process of this topology uses.
        settings: heartbeat, batching and size limits (default :class:`BusSettings`).
        registry: where the bus counters go; pass the engine's registry so they show
            with the engine's metrics and in ``pytempest status``.
        instance: this topology instance's name (default ``<host>-<pid>-<4 hex>``).
    """

    def __init__(
        self,
        topology: str,
        url: str,
        *,
        settings: BusSettings | None = None,
        registry: Registry | None = None,
        instance: str | None = None,
    ) -> None:
        self.topology = topology
        self.url = check_url(url, f"topology {topology}: distributed runtime")
        self.settings = settings or BusSettings()
        self.registry = registry if registry is not None else Registry()
        self.instance = instance or make_name()
        self.results_key = keyspace.result_stream(topology, self.instance)
        self.started_ms = now_ms()
        self.outstanding: dict[int, TaskBatch] = {}
        self._next_ref = 1
        self._buffers: list[list[int]] = []
        self._cohort_entries: list[tuple[str, bytes, bytes, int]] = []
        self._cohorts: cohorts.CohortSender | None = None
        self._local: list[BatchResult] = []
        self._names: tuple[str, ...] = ()
        self._streams: list[str] = []
        self._on_result: OnResult = lambda r: None
        self._client: Any = None
        self._reader: Any = None
        self._last_id = b"0-0"
        self._wake = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._stopping = False
        self._stopped = False
        self._running = False
        self._run_done = asyncio.Event()
        self._cancelled = 0
        self.worker_counts: dict[str, int] = {}
        self._census = Census(topology, [], self.settings.no_worker_warn_ms)
        r, t = self.registry, topology
        self.sent_entries = r.counter("bus.entry.sent", topology=t)
        self.sent_msgs = r.counter("bus.msg.sent", topology=t)
        self.results = r.counter("bus.result.received", topology=t)
        self.dropped = r.counter("bus.result.dropped", topology=t)
        self.malformed = r.counter("bus.result.malformed", topology=t)
        self.too_large = r.counter("bus.msg.too_large", topology=t)
        self.redis_errors = r.counter("bus.redis.error", topology=t)
        r.gauge("bus.outstanding", lambda: float(self.outstanding_count()), topology=t)

    # -- Executor -------------------------------------------------------------------------
    async def start(self, graph: Graph, on_result: OnResult) -> None:
        self._names = graph.names
        self._streams = [keyspace.task_stream(self.topology, n) for n in graph.names]
        self._buffers = [[] for _ in graph.names]
        self._on_result = on_result
        if all(not t.is_async() and not t.threaded for t in graph.tasks):
            s = self.settings
            self._cohorts = cohorts.CohortSender(
                graph, self.instance, s.entry_max_bytes, s.max_message_bytes,
                self._send_cohort_entry, self._take_ref, self._cohort_too_large,
                whole_graph=bool(s.whole_graph),
            )  # fmt: skip
        self.worker_counts = dict.fromkeys(graph.names, 0)
        self._census = Census(self.topology, list(graph.names), self.settings.no_worker_warn_ms)
        for name in graph.names:
            self.registry.gauge(
                "bus.workers",
                (lambda n=name: float(self.worker_counts.get(n, 0))),  # type: ignore[misc]
                topology=self.topology,
                task=name,
            )
            self.registry.gauge(
                "task.stream.lag",
                (lambda n=name: float(self._census.backlog.get(n, 0))),  # type: ignore[misc]
                topology=self.topology,
                task=name,
            )
        s = self.settings
        self._client = connect(self.url)
        self._reader = connect(self.url, socket_timeout_s=s.block_ms / 1000 + 10)
        try:
            await self._prepare()
        except Exception as exc:
            await self._close_clients()
            if connection_problem(exc):
                raise connection_error(
                    self.url, exc, f"topology {self.topology}: distributed runtime"
                ) from exc
            raise

    async def _prepare(self) -> None:
        client = self._client
        for stream in self._streams:
            try:
                await client.xgroup_create(stream, keyspace.TASK_GROUP, id="0", mkstream=True)
            except Exception as exc:
                if not is_busygroup(exc):
                    raise
        await self._open_results()
        await self._beat()
        await client.sadd(keyspace.TOPOLOGIES, self.topology)
        await prune_status(client, self.topology)
        log.info(
            "topology %s: instance %s sends task messages through Redis; results on %s",
            self.topology, self.instance, self.results_key,
        )  # fmt: skip

    async def _open_results(self) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.xadd(self.results_key, {wire.MARKER_FIELD: self.instance.encode()})
        pipe.pexpire(self.results_key, self.settings.result_ttl_ms)
        marker, _ = await pipe.execute()
        if self._last_id == b"0-0":
            self._last_id = marker

    def supports_async_cohorts(self) -> bool:
        return self._cohorts is not None

    async def run_cohort_async(self, bodies: list[bytes]) -> CohortOutcome:
        assert self._cohorts is not None
        if self._stopping:
            raise asyncio.CancelledError
        return await self._cohorts.run(bodies)

    def outstanding_count(self) -> int:
        """Batches and cohort entries sent and not answered yet."""
        return len(self.outstanding) + (len(self._cohorts.waiting) if self._cohorts is not None else 0)

    def _take_ref(self) -> int:
        ref = self._next_ref
        self._next_ref = ref + 1
        return ref

    def _send_cohort_entry(self, task: int, field: bytes, data: bytes, bodies: int) -> None:
        self._cohort_entries.append((self._streams[task], field, data, bodies))
        if not self._wake.is_set():
            self._wake.set()

    def _cohort_too_large(self, task: int, size: int) -> TaskFailure:
        self.too_large.value += 1
        return TaskFailure(
            "MessageTooLarge",
            f"task messages for task {self._names[task]!r} of a source message are {size} bytes; the "
            f"distributed runtime's limit is {self.settings.max_message_bytes} bytes (raise "
            "max_message_bytes / PYTEMPEST_BUS_MAX_MESSAGE_BYTES, or emit smaller bodies)",
            expected=True,
        )

    def submit(self, batch: TaskBatch) -> None:
        ref = self._next_ref
        self._next_ref = ref + 1
        self.outstanding[ref] = batch
        self._buffers[batch.task].append(ref)
        if not self._wake.is_set():
            self._wake.set()

    def cancel(self, state: MessageState) -> None:
        # Entries of dead attempts are skipped when written and swept from
        # ``outstanding`` by the heartbeat loop (one pass for many cancels).
        self._cancelled += 1

    def queue_depths(self) -> dict[int, int]:
        depths: dict[int, int] = {}
        for batch in self.outstanding.values():
            depths[batch.task] = depths.get(batch.task, 0) + len(batch.bodies)
        return depths

    async def run(self) -> None:
        self._running = True
        loops: list[tuple[str, Coroutine[Any, Any, None]]] = [
            ("result reader", self._read_loop()),
            ("task writer", self._write_loop()),
            ("heartbeat", self._heartbeat_loop()),
        ]
        tasks = [asyncio.create_task(coro, name=f"pytempest-bus-{n}") for n, coro in loops]
        stop = asyncio.create_task(self._stop_event.wait())
        everything: list[asyncio.Task[Any]] = [stop, *tasks]
        try:
            done, _ = await asyncio.wait(everything, return_when=asyncio.FIRST_COMPLETED)
            for (name, _), task in zip(loops, tasks, strict=True):
                error = task.exception() if task in done and not task.cancelled() else None
                if error is not None:
                    log.critical("topology %s: the distributed runtime's %s loop died: %r",
                                 self.topology, name, error)  # fmt: skip
                    raise error
        finally:
            for task in everything:
                task.cancel()
            await asyncio.gather(*everything, return_exceptions=True)
            self._run_done.set()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._run_done.wait(), 10)
        if self._client is not None:
            try:
                pipe = self._client.pipeline(transaction=True)
                queue_goodbye(pipe, self.topology, "topology", self.instance)
                pipe.delete(self.results_key)
                await pipe.execute()
            except Exception as exc:
                log.warning("topology %s: could not remove its heartbeat: %r", self.topology, exc)
        await self._close_clients()
        self.outstanding.clear()
        if self._cohorts is not None:
            self._cohorts.cancel_all()

    async def _close_clients(self) -> None:
        for client in (self._client, self._reader):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self._client = self._reader = None

    # -- writing task messages --------------------------------------------------------------
    async def _write_loop(self) -> None:
        backoff = Backoff(50, 5000)
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            entries = self._take_entries()
            if self._local:
                local, self._local = self._local, []
                for result in local:
                    self._on_result(result)
            while entries and not self._stopping:
                try:
                    await self._send(entries)
                    backoff.reset()
                    break
                except Exception as exc:
                    if not connection_problem(exc):
                        raise
                    self.redis_errors.value += 1
                    wait = backoff.miss()
                    log.warning(
                        "topology %s: writing %d task stream entries failed (%s); retrying in %d ms",
                        self.topology, len(entries), exc, wait,
                    )  # fmt: skip
                    await asyncio.sleep(wait / 1000)

    def _take_entries(self) -> list[tuple[str, bytes, bytes, int]]:
        """Pack the buffered batches into stream entries: ``(stream, field, data, messages)``."""
        s = self.settings
        entries, self._cohort_entries = self._cohort_entries, []
        outstanding = self.outstanding
        sent_ms = now_ms()
        for t, refs in enumerate(self._buffers):
            if not refs:
                continue
            self._buffers[t] = []
            items: list[wire.TaskItem] = []
            size = bodies_n = 0
            for ref in refs:
                batch = outstanding.get(ref)
                if batch is None:
                    continue
                if not batch.state.alive:
                    del outstanding[ref]
                    continue
                bodies = batch.bodies
                n = wire.item_bytes(bodies)
                if n > s.max_message_bytes:
                    del outstanding[ref]
                    self._local.append(self._too_large(batch, n))
                    continue
                if items and (len(items) >= s.entry_max_batches or size + n > s.entry_max_bytes):
                    data = wire.encode_tasks(self.instance, sent_ms, items)
                    entries.append((self._streams[t], wire.FIELD, data, bodies_n))
                    items, size, bodies_n = [], 0, 0
                msg = batch.state.msg
                items.append([ref, msg.id, batch.state.attempt, t, batch.seq, bodies])
                size += n
                bodies_n += len(bodies)
            if items:
                data = wire.encode_tasks(self.instance, sent_ms, items)
                entries.append((self._streams[t], wire.FIELD, data, bodies_n))
        if self._local and not self._wake.is_set():
            self._wake.set()
        return entries

    def _too_large(self, batch: TaskBatch, size: int) -> BatchResult:
        self.too_large.value += 1
        name = self._names[batch.task]
        return BatchResult(
            batch,
            failure=TaskFailure(
                "MessageTooLarge",
                f"task messages for task {name!r} of source message {batch.state.msg.id} are {size} "
                f"bytes; the distributed runtime's limit is {self.settings.max_message_bytes} bytes "
                "(raise max_message_bytes / PYTEMPEST_BUS_MAX_MESSAGE_BYTES, or emit smaller bodies)",
                expected=True,
            ),
        )

    async def _send(self, entries: list[tuple[str, bytes, bytes, int]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for stream, name, data, _ in entries:
            pipe.execute_command("XADD", stream, "*", name, data)
        await pipe.execute()
        self.sent_entries.value += len(entries)
        self.sent_msgs.value += sum(e[3] for e in entries)

    # -- reading results --------------------------------------------------------------------
    async def _read_loop(self) -> None:
        backoff = Backoff(50, 5000)
        key = self.results_key
        block = self.settings.block_ms
        trim_to: bytes | None = None
        while not self._stopping:
            try:
                pipe = self._reader.pipeline(transaction=False)
                if trim_to is not None:
                    pipe.xtrim(key, minid=trim_to, approximate=False)
                pipe.xread({key: self._last_id}, count=READ_COUNT, block=block)
                replies = await pipe.execute()
                backoff.reset()
            except Exception as exc:
                if not connection_problem(exc):
                    raise
                self.redis_errors.value += 1
                wait = backoff.miss()
                log.warning(
                    "topology %s: reading results failed (%s); retrying in %d ms", self.topology, exc, wait
                )
                await asyncio.sleep(wait / 1000)
                continue
            trim_to = None
            reply = replies[-1]
            if not reply:
                continue
            for entry_id, fields in reply[0][1]:
                self._last_id = entry_id
                if wire.FIELD in fields:
                    self._apply(entry_id, fields)
                elif cohorts.FIELD in fields or cohorts.GRAPH_FIELD in fields:
                    self._apply_cohort(entry_id, fields)
            trim_to = self._last_id

    def _apply(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            _worker, items = wire.decode_results(fields, f"{self.results_key} entry {entry_id!r}")
        except WireError as exc:
            self.malformed.value += 1
            log.error("topology %s: dropped a result entry: %s", self.topology, exc)
            return
        outstanding = self.outstanding
        on_result = self._on_result
        self.results.value += len(items)
        for ref, outputs, handled, skipped, elapsed, failure in items:
            batch = outstanding.pop(ref, None)
            if batch is None:
                self.dropped.value += 1
                continue
            fail = wire.failure_from_wire(failure) if failure is not None else None
            on_result(BatchResult(batch, outputs, handled, skipped, elapsed, fail))

    def _apply_cohort(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        if self._cohorts is None:  # this instance sends no cohorts: not an answer to it
            self.malformed.value += 1
            return
        try:
            taken = self._cohorts.apply(fields, f"{self.results_key} entry {entry_id!r}")
        except WireError as exc:
            self.malformed.value += 1
            log.error("topology %s: dropped a result entry: %s", self.topology, exc)
            return
        self.results.value += 1
        if not taken:
            self.dropped.value += 1

    # -- heartbeat, worker census, status --------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        s = self.settings
        next_census = self.started_ms + s.status_interval_ms
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), s.heartbeat_interval_ms / 1000)
            if self._stopping:
                return
            if self._cancelled:
                self._cancelled = 0
                self.outstanding = {r: b for r, b in self.outstanding.items() if b.state.alive}
            try:
                await self._beat()
                if now_ms() >= next_census:
                    next_census = now_ms() + s.status_interval_ms
                    self.worker_counts = await self._census.take(self._client)
                    await self.publish_status()
            except Exception as exc:
                if not connection_problem(exc):
                    raise
                self.redis_errors.value += 1
                log.warning("topology %s: heartbeat failed: %s", self.topology, exc)

    async def _beat(self) -> None:
        s = self.settings
        fields = base_fields(self.topology, list(self._names), self.started_ms)
        fields.update(self.counts())
        pipe = self._client.pipeline(transaction=True)
        queue_beat(pipe, self.topology, "topology", self.instance, fields, s.heartbeat_ttl_ms, now_ms())
        pipe.pexpire(self.results_key, s.result_ttl_ms)
        replies = await pipe.execute()
        if not replies[-1]:
            log.warning("topology %s: result stream %s was gone (Redis restarted?); recreated it",
                        self.topology, self.results_key)  # fmt: skip
            await self._open_results()

    def counts(self) -> dict[str, str | int]:
        """The counters this instance reports in its heartbeat."""
        r, t = self.registry, self.topology
        return {
            "read": r.counter("source.msg.read", topology=t).value,
            "acked": r.counter("source.msg.acked", topology=t, status="success").value,
            "outstanding": self.outstanding_count(),
            "sent": self.sent_msgs.value,
            "results": self.results.value,
            "dropped": self.dropped.value,
            "cpu_ms": cpu_ms(),
        }

    async def publish_status(self, client: Any = None, final: bool = False) -> None:
        """Write this instance's metric snapshot to ``{pt:<topology>}:status``."""
        await publish_status(client or self._client, self.topology, self.instance, self.registry, final)
