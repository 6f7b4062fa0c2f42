"""The engine: polls the source, tracks every message to completion, acks, fails, retries.

One engine runs one topology on one asyncio event loop. Its background loops (poller,
timer, acker, finisher, monitor, the executor's own loop, metric flushing) belong to one
``asyncio.TaskGroup``: if one dies, the run stops and :meth:`Engine.run` raises an
:class:`EngineError` naming the loop. Nothing here reads ``sys.argv``, installs signal
handlers or exits the process: the CLI calls :meth:`Engine.request_stop` on a signal.

Outcomes of a source message (DESIGN.md section 3): acked after it was done, or failed
(a task raised, or it was not done ``msg_timeout_ms`` after it was read) and then, by the
failure policy, released unacked (``none``), acked (``best_effort``), run again after a
growing delay (``retry``), and once retries are exhausted dead-lettered then acked, or
acked with an ERROR line when there is no dead letter. A failure is handled once per
attempt: the first error wins and late results of that attempt are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import operator
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal

from pytempest import failpoints
from pytempest.deadletters.base import DeadLetterRecord, truncate_error
from pytempest.engine.acker import Acker
from pytempest.engine.completion import DONE, IGNORED, CompletionTracker, MessageState
from pytempest.engine.events import EngineObserver, LogObserver, MetricsObserver, NoMetrics
from pytempest.engine.executor import BatchResult, Executor, TaskBatch, TaskFailure
from pytempest.engine.timers import DeadlineWheel
from pytempest.errors import PytempestError, SourceConnectionError
from pytempest.metrics.flusher import MetricsFlusher
from pytempest.metrics.registry import Registry, ScopedMetrics
from pytempest.model.message import SourceMsg, now_ms
from pytempest.model.policy import Backoff
from pytempest.topology import Topology

log = logging.getLogger("pytempest.engine")
_DELIVERIES = operator.attrgetter("deliveries")

StopReason = Literal["requested", "idle", "duration", "aborted", "error"]

MONITOR_LOG_QUIET_S = 10.0
"""A source setup or monitor that keeps failing is logged at most once per this many seconds."""

MAX_DELIVERIES = 5
"""A source message delivered more than ``max(MAX_DELIVERIES, retries + 1)`` times is
failed (reason ``max_deliveries``) without being run: a message that kills its process
would otherwise crash every restart. See ``docs/guarantees.md``."""


class EngineError(PytempestError):
    """A background loop of the engine died; the message names it."""


@dataclasses.dataclass(slots=True)
class _Finish:
    """Async work left after a failure: release to the source or write a dead letter."""

    kind: Literal["release", "dead_letter"]
    state: MessageState
    record: DeadLetterRecord | None = None


class Engine:
    """Runs one topology.

    Args:
        topology: what to run.
        executor: where tasks run (default: in process).
        registry: where metrics go (default: a new one; see :attr:`registry`).
        observers: extra lifecycle observers (metrics and logs are always there).
        clock: epoch milliseconds; timeouts and retry delays use it.
        wait_for_source: keep retrying a source whose ``setup`` cannot connect
            (``SourceConnectionError``) instead of failing at once.
        metrics: count the engine's own metrics (default). False leaves them out (to
            measure their cost); task and source metrics and targets still work.
        cohorts: let an executor whose tasks are all inline run each poll as one cohort
            (``runtimes/cohort.py``; the distributed runtime's cohorts too); off while an
            extra observer implements ``task_done`` or ``completed``, which it would miss.
    """

    def __init__(
        self,
        topology: Topology,
        executor: Executor | None = None,
        registry: Registry | None = None,
        observers: Sequence[EngineObserver] = (),
        clock: Callable[[], int] = now_ms,
        wait_for_source: bool = True,
        metrics: bool = True,
        cohorts: bool = True,
    ) -> None:
        if executor is None:
            from pytempest.runtimes.inprocess import InProcessExecutor

            executor = InProcessExecutor()
        self.topology = topology
        self.graph = topology.graph
        self.source = topology.source
        self.executor = executor
        self.registry = registry if registry is not None else Registry()
        if topology.metric_buckets_ms is not None:
            self.registry.use_buckets(topology.metric_buckets_ms)
        self.clock = clock
        self.wait_for_source = wait_for_source
        self.policy = topology.failure_policy
        retries = self.policy.retries if self.policy.kind == "retry" else 0
        self.max_deliveries = max(MAX_DELIVERIES, retries + 1)
        """A message the source delivered more often than this is failed without running."""
        self.metrics: MetricsObserver = (
            MetricsObserver(self.registry, topology.name, self.graph)
            if metrics
            else NoMetrics(topology.name, self.graph)
        )
        from pytempest.tracing import auto_observer

        tracer = auto_observer(topology)
        if tracer is not None:
            observers = (*observers, tracer)
        self.observers: list[EngineObserver] = [
            *([self.metrics] if metrics else []),
            LogObserver(topology.name),
            *observers,
        ]
        # task_done runs once per batch: call the metrics observer directly and only the
        # other observers that implement it.
        self._task_observers = [ob for ob in observers if type(ob).task_done is not EngineObserver.task_done]
        # The cohort paths emit no per-batch or per-message events (task_done, completed):
        # they stay off while an extra observer implements one of those.
        self._extra = any(
            type(ob).task_done is not EngineObserver.task_done
            or type(ob).completed is not EngineObserver.completed
            for ob in observers
        )
        self.cohorts = cohorts
        self._cohorts = False
        self._async_cohorts = False
        self._cohort_tasks: dict[asyncio.Task[None], list[SourceMsg]] = {}
        self._cohort_ids: set[str] = set()
        self._cohort_load = 0
        self.tracker = CompletionTracker(self.graph, self._dispatch)
        self.wheel = DeadlineWheel()
        self.inflight: dict[str, MessageState] = {}
        self.retry_wait: dict[str, SourceMsg] = {}
        self._retry_heap: list[tuple[int, int, SourceMsg, int, str | None]] = []
        self._retry_seq = 0
        self._finishing: list[_Finish] = []
        self._finishing_count = 0
        self._finish_wake = asyncio.Event()
        self._room = asyncio.Event()
        self._poll_wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._drained = asyncio.Event()
        self._stopping = False
        self._closing = False
        self._aborted = False
        self.stop_reason: StopReason | None = None
        self._until_idle = False
        self._cancel_on_close: list[asyncio.Task[None]] = []
        self._last_poll_empty = False
        self.acker = Acker(self.source, self.source.ack_policy, self._acked)
        registry_ = self.registry
        registry_.gauge("pipeline.inflight", lambda: len(self.inflight), topology=topology.name)
        registry_.gauge("pipeline.retry.waiting", lambda: len(self.retry_wait), topology=topology.name)
        self._backoff_gauge = registry_.gauge("source.backoff", topology=topology.name)
        for i, t in enumerate(self.graph.tasks):
            t.metrics = ScopedMetrics(registry_, topology=topology.name, task=t.name)
            registry_.gauge(
                "task.queue.depth",
                (lambda i=i: float(self.executor.queue_depths().get(i, 0))),  # type: ignore[misc]
                topology=topology.name,
                task=t.name,
            )
        self.source.metrics = ScopedMetrics(registry_, "source.", topology=topology.name)
        if topology.dead_letter is not None and getattr(self.source, "dead_letter", False) is None:
            # a source's own dead-letter handling (Redis pending handlers) uses the topology's
            self.source.dead_letter = topology.dead_letter  # type: ignore[attr-defined]
        self.flusher: MetricsFlusher | None = None
        if topology.metric_targets:
            self.flusher = MetricsFlusher(
                registry_, topology.metric_targets, topology.metric_flush_interval_ms
            )

    # -- control ------------------------------------------------------------------------
    def request_stop(self, reason: StopReason = "requested") -> None:
        """Stop polling and finish what is in flight (up to ``graceful_shutdown_ms``).

        A second call stops at once: what did not finish stays unacked at the source.
        """
        if self._stop.is_set():
            self.abort()
            return
        self.stop_reason = reason
        if reason == "requested":
            log.info(
                "topology %s: stopping: no new messages; waiting up to %d ms for %d in flight "
                "(stop again to stop at once)",
                self.topology.name, self.topology.graceful_shutdown_ms, len(self.inflight),
            )  # fmt: skip
        self._stop.set()
        self._room.set()
        self._poll_wake.set()

    def abort(self) -> None:
        """Stop at once; in-flight messages stay unacked at the source."""
        self._aborted = True
        self.stop_reason = "aborted"
        self._stop.set()
        self._drained.set()
        self._room.set()
        self._poll_wake.set()

    @property
    def load(self) -> int:
        """Source messages the topology holds: running, waiting for a retry, finishing,
        done and not acked yet (each holds a ``max_pending`` slot until it is acked)."""
        return (
            len(self.inflight)
            + len(self.retry_wait)
            + self._finishing_count
            + self.acker.unacked
            + self._cohort_load
        )

    def healthy(self) -> bool:
        """Whether the source reports healthy."""
        return self.source.healthy()

    # -- run ----------------------------------------------------------------------------
    async def run(self, *, until_idle: bool = False, duration_ms: int | None = None) -> StopReason:
        """Run until stopped (or idle, or ``duration_ms``); return why it stopped."""
        self._until_idle = until_idle
        await self._setup_source()
        dead_letter = self.topology.dead_letter
        try:
            if dead_letter is not None:
                await dead_letter.setup()
            try:
                await self.executor.start(self.graph, self._on_result)
                # The cohort fast path skips per-batch events: only with no extra observer.
                self._cohorts = self.cohorts and not self._extra and self.executor.supports_cohorts()
                self._async_cohorts = (
                    self.cohorts
                    and not self._extra
                    and not self._cohorts
                    and self.executor.supports_async_cohorts()
                )
                await self._run_loops(duration_ms)
            finally:
                await self.executor.stop()
        finally:
            await self._close_all()
        return self.stop_reason or "requested"

    async def _setup_source(self) -> None:
        backoff = Backoff(100, max(1000, self.source.max_backoff_ms))
        attempts, last_log = 0, -MONITOR_LOG_QUIET_S
        while True:
            try:
                await self.source.setup()
                if attempts:
                    log.info("topology %s: source %s reachable after %d failed attempts",
                             self.topology.name, self.source.describe(), attempts)  # fmt: skip
                return
            except SourceConnectionError as exc:
                if not self.wait_for_source or self._stop.is_set():
                    raise
                attempts += 1
                wait = backoff.miss()
                if time.monotonic() - last_log >= MONITOR_LOG_QUIET_S:  # one line per 10 s, not per try
                    last_log = time.monotonic()
                    log.warning(
                        "topology %s: source %s not reachable (%d attempts so far: %s); retrying every %d ms",
                        self.topology.name, self.source.describe(), attempts, exc, wait,
                    )  # fmt: skip
                try:
                    await asyncio.wait_for(self._stop.wait(), wait / 1000)
                except TimeoutError:
                    continue
                raise

    async def _close_all(self) -> None:
        for name, closer in (
            ("source", self.source.close),
            ("dead letter", self._close_dead_letter),
        ):
            try:
                await closer()
            except Exception:
                log.exception("topology %s: closing the %s failed", self.topology.name, name)

    async def _close_dead_letter(self) -> None:
        if self.topology.dead_letter is not None:
            await self.topology.dead_letter.close()

    async def _run_loops(self, duration_ms: int | None) -> None:
        if self.flusher is not None:
            await self.flusher.open()  # before any loop coroutine exists: a failure leaks none
        loops: list[tuple[str, Coroutine[Any, Any, None]]] = [
            ("poller", self._poll_loop()),
            ("executor", self.executor.run()),
            ("timer", self._timer_loop()),
            ("acker", self.acker.run()),
            ("finisher", self._finish_loop()),
            ("lifecycle", self._lifecycle(duration_ms)),
        ]
        if self.source.monitor_interval_ms > 0:
            loops.append(("monitor", self._monitor_loop()))
        if self.flusher is not None:
            loops.append(("metrics", self.flusher.run()))
        try:
            async with asyncio.TaskGroup() as group:
                for name, coro in loops:
                    task = group.create_task(self._guard(name, coro), name=f"pytempest-{name}")
                    if name in ("poller", "monitor", "timer"):
                        self._cancel_on_close.append(task)
        except BaseExceptionGroup as group_error:
            errors = [e for e in group_error.exceptions if isinstance(e, EngineError)]
            if errors:
                raise errors[0] from None
            raise
        finally:
            if self.flusher is not None:
                # The last flush, once every other loop stopped: the counts are final.
                await self.flusher.close()

    async def _guard(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.critical("topology %s: the %s loop died: %r", self.topology.name, name, exc, exc_info=True)
            self.stop_reason = "error"
            raise EngineError(
                f"topology {self.topology.name}: the {name} loop died: {type(exc).__name__}: {exc}"
            ) from exc

    async def _lifecycle(self, duration_ms: int | None) -> None:
        """Wait for a stop, drain in-flight work, then close every loop."""
        if duration_ms is not None:
            try:
                await asyncio.wait_for(self._stop.wait(), duration_ms / 1000)
            except TimeoutError:
                self.request_stop("duration")
        await self._stop.wait()
        self._stopping = True
        self._room.set()
        deadline = time.monotonic() + self.topology.graceful_shutdown_ms / 1000
        while not self._aborted and (self.inflight or self._finishing_count or self._cohort_load):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), min(left, 0.1))
        await self._abandon()
        self._closing = True
        self._room.set()
        self._finish_wake.set()
        for task in self._cancel_on_close:
            task.cancel()
        self.acker.close()
        if self.flusher is not None:
            self.flusher.stop()
        await self.executor.stop()

    async def _abandon(self) -> None:
        """Hand every unfinished message back to the source, unacked."""
        msgs = [s.msg for s in self.inflight.values()] + list(self.retry_wait.values())
        msgs += [m for cohort in self._cohort_tasks.values() for m in cohort]
        await self._cancel_cohorts()
        for state in self.inflight.values():
            state.alive = False
            self.wheel.remove(state)
        self.inflight.clear()
        self.retry_wait.clear()
        self._retry_heap.clear()
        if msgs:
            log.warning(
                "topology %s: %d message(s) did not finish before shutdown; left unacked at the source",
                self.topology.name, len(msgs),
            )  # fmt: skip
            await self._release(msgs, "shutdown")

    # -- polling ------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        source = self.source
        backoff = Backoff(source.poll_interval_ms, max(source.poll_interval_ms, source.max_backoff_ms))
        max_pending = self.topology.max_pending
        read_size = source.read_count or max_pending
        while not self._stopping:
            room = max_pending - self.load
            if room <= 0:
                self._room.clear()
                self.acker.urgent()  # done messages wait for their ack: send it now
                await self._room.wait()
                continue
            try:
                msgs = await source.poll(room)
            except Exception as exc:
                self._emit("polled", False, exc)
                wait = backoff.miss()
                self._backoff_gauge.set(wait)
                await self._pause(wait)
                continue
            self._emit("polled", True, None)
            if msgs:
                self._last_poll_empty = False
                backoff.reset()
                if self._backoff_gauge.value:
                    self._backoff_gauge.set(0)
                self._admit(msgs)
                if len(msgs) < min(room, read_size) and self.acker.urgent_waiting():
                    # A short read (the source is drained) whose messages are all done and
                    # nothing else runs: ack before the next, blocking, read, as a hand-written
                    # loop would. With a backlog the acker task acks alongside the reads.
                    await self.acker.flush_now()
                if source.poll_interval_ms:
                    await self._pause(source.poll_interval_ms)
                else:
                    await asyncio.sleep(0)
            else:
                self._last_poll_empty = True
                if self._check_idle():
                    return
                wait = backoff.miss()
                self._backoff_gauge.set(wait)
                await self._pause(wait)

    async def _pause(self, ms: int) -> None:
        """Sleep ``ms``, waking early on a stop or when the topology becomes empty."""
        if ms <= 0:
            await asyncio.sleep(0)
            return
        self._poll_wake.clear()
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poll_wake.wait(), ms / 1000)

    def _check_idle(self) -> bool:
        if self._until_idle and self._last_poll_empty:
            load = self.load
            if load == 0:
                self.request_stop("idle")
                return True
            if load == self.acker.unacked:
                self.acker.urgent()  # only acks are left: send them now, not after their interval
        return False

    def _admit(self, msgs: list[SourceMsg]) -> None:
        self._emit("read", msgs)
        limit = self.max_deliveries
        if max(map(_DELIVERIES, msgs)) > limit:
            msgs = self._refuse_redelivered(msgs)
            if not msgs:
                return
        if self._cohorts:
            self._run_cohort(msgs)
            return
        if self._async_cohorts:
            self._start_cohort(msgs)
            return
        timeout = self.topology.msg_timeout_ms
        for msg in msgs:
            if msg.id in self.inflight or msg.id in self.retry_wait:
                self._emit("duplicate", msg)
                continue
            self._start(msg, timeout)

    def _refuse_redelivered(self, msgs: list[SourceMsg]) -> list[SourceMsg]:
        """Fail, without running them, messages the source delivered more than
        :attr:`max_deliveries` times: each delivery was an attempt that never reported (a
        message that kills the process running it would otherwise crash it forever)."""
        limit = self.max_deliveries
        keep = []
        for msg in msgs:
            if msg.deliveries <= limit or msg.id in self.inflight or msg.id in self.retry_wait:
                keep.append(msg)
                continue
            failure = TaskFailure(
                "MaxDeliveriesExceeded",
                f"delivered {msg.deliveries} times (limit {limit}) and never finished: the process "
                "that ran it may have died while running it; not run again",
                expected=True,
                reason="max_deliveries",
            )
            self._fail(self.tracker.new_state(msg), "max_deliveries", None, failure)
        return keep

    def _run_cohort(self, msgs: list[SourceMsg]) -> None:
        """The fast path: run the whole poll through an inline pipeline at once."""
        ids = [m.id for m in msgs]
        fresh = msgs
        if self.inflight or self.retry_wait or len(set(ids)) != len(ids):
            fresh = []
            seen: set[str] = set()
            for msg in msgs:
                if msg.id in seen or msg.id in self.inflight or msg.id in self.retry_wait:
                    self._emit("duplicate", msg)
                    continue
                seen.add(msg.id)
                fresh.append(msg)
            ids = [m.id for m in fresh]
        outcome = self.executor.run_cohort([m.body for m in fresh])
        self.metrics.cohort_tallies(outcome.tallies)
        failed = outcome.failed
        if failed:
            ids = [msg_id for i, msg_id in enumerate(ids) if i not in failed]
        if ids:
            self._emit(
                "completed_many",
                [m for i, m in enumerate(fresh) if i not in failed] if failed else fresh,
                self.clock(),
            )
            self.acker.add_many(ids)
            if not self.inflight and not self._finishing_count:
                self.acker.urgent()  # nothing else runs: ack now rather than after the interval
        for i, (task, failure) in failed.items():
            self._fail(self.tracker.new_state(fresh[i]), "error", self.graph.names[task], failure)

    # -- cohorts run by the executor elsewhere (the distributed runtime) ------------------
    def _start_cohort(self, msgs: list[SourceMsg]) -> None:
        """Hand the whole poll to the executor as one cohort (:meth:`_cohort`); its
        messages count in :attr:`load` until the cohort ends."""
        fresh: list[SourceMsg] = []
        held = self._cohort_ids
        for msg in msgs:
            if msg.id in held or msg.id in self.inflight or msg.id in self.retry_wait:
                self._emit("duplicate", msg)
                continue
            held.add(msg.id)
            fresh.append(msg)
        if fresh:
            self._cohort_load += len(fresh)
            task = asyncio.get_running_loop().create_task(self._cohort(fresh), name="pytempest-cohort")
            self._cohort_tasks[task] = fresh
            task.add_done_callback(self._cohort_tasks.pop)

    async def _cohort(self, msgs: list[SourceMsg]) -> None:
        """Ack the cohort's done messages and fail the others by the failure policy; a
        cohort not done ``msg_timeout_ms`` after its first message was read fails whole."""
        timeout = self.topology.msg_timeout_ms
        try:
            running = self.executor.run_cohort_async([m.body for m in msgs])
            try:
                if timeout:
                    left_ms = min(m.read_at for m in msgs) + timeout - self.clock()
                    outcome = await asyncio.wait_for(running, max(left_ms, 0) / 1000)
                else:
                    outcome = await running
            except TimeoutError:
                for msg in msgs:
                    self._fail(self.tracker.new_state(msg), "timeout", None, None)
                return
            except Exception as exc:  # the executor broke, not a task: fail the cohort
                log.error(
                    "topology %s: a cohort of %d messages failed: %r", self.topology.name, len(msgs), exc
                )
                failure = TaskFailure(type(exc).__name__, str(exc))
                for msg in msgs:
                    self._fail(self.tracker.new_state(msg), "error", None, failure)
                return
            self.metrics.cohort_tallies(outcome.tallies)
            failed = outcome.failed
            done = [m for i, m in enumerate(msgs) if i not in failed] if failed else msgs
            if done:
                self._emit("completed_many", done, self.clock())
                add = self.acker.add
                for msg in done:
                    add(msg.id)
            for i, (task, failure) in failed.items():
                self._fail(self.tracker.new_state(msgs[i]), "error", self.graph.names[task], failure)
        finally:
            self._cohort_ids.difference_update(m.id for m in msgs)
            self._cohort_load -= len(msgs)
            self._freed()

    async def _cancel_cohorts(self) -> None:
        """Stop waiting for the cohorts in flight (shutdown): their messages stay unacked."""
        tasks = list(self._cohort_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, msg: SourceMsg, timeout: int) -> None:
        state = self.tracker.start(msg)
        self.inflight[msg.id] = state
        if timeout:
            self.wheel.add(state, msg.read_at + timeout)

    def _dispatch(self, state: MessageState, task: int, seq: int, bodies: list[bytes]) -> None:
        self.executor.submit(TaskBatch(state, task, seq, bodies))
        if failpoints.ARMED:
            failpoints.hit("engine.after_dispatch")

    # -- results ------------------------------------------------------------------------
    def _on_result(self, result: BatchResult) -> None:
        batch = result.batch
        state = batch.state
        stale = not state.alive
        self.metrics.task_done(result, stale)
        for ob in self._task_observers:
            try:
                ob.task_done(result, stale)
            except Exception:
                log.exception("observer %r failed on task_done", ob)
        if stale:
            return
        if result.failure is not None:
            self._fail(state, "error", self.graph.names[batch.task], result.failure)
            return
        status = self.tracker.handled(state, batch.task, batch.seq, len(batch.bodies), result.outputs)
        if status == DONE:
            self._finished(state)
        elif status == IGNORED:
            self.metrics.stale_results.value += 1

    def _finished(self, state: MessageState) -> None:
        msg = state.msg
        del self.inflight[msg.id]
        self.wheel.remove(state)
        self._emit("completed", state, self.clock())
        self.acker.add(msg.id)
        self._freed()

    def _freed(self) -> None:
        """A message left the topology: make room for the poller, note a drain."""
        if not self._room.is_set():
            self._room.set()
        if not self.inflight and not self._finishing_count and not self._cohort_load:
            self._drained.set()
            self.acker.urgent()  # nothing else runs: ack now rather than after the interval
            if self._last_poll_empty and not self.retry_wait:
                self._poll_wake.set()

    def _fail(self, state: MessageState, reason: str, task: str | None, failure: TaskFailure | None) -> None:
        if not state.alive:
            return
        state.alive = False
        msg = state.msg
        self.inflight.pop(msg.id, None)
        self.wheel.remove(state)
        self.executor.cancel(state)
        now = self.clock()
        state.failed_task = task
        if not state.first_failure_ms:
            state.first_failure_ms = now
        self._emit("failed", state, reason, task, failure)
        error = str(failure) if failure is not None else f"timed out after {self.topology.msg_timeout_ms} ms"
        if failure is not None and failure.reason:
            reason = failure.reason  # a PayloadError or too many deliveries: retrying cannot help
        policy = self.policy
        if policy.kind == "none":
            self._queue_finish(_Finish("release", state))
        elif policy.kind == "best_effort":
            self.acker.add(msg.id)
            self._freed()
        elif not (failure is not None and failure.reason) and policy.may_retry(msg.deliveries):
            delay = policy.delay_for(msg.deliveries)
            self.retry_wait[msg.id] = msg
            self._retry_seq += 1
            heapq.heappush(
                self._retry_heap, (now + delay, self._retry_seq, msg, state.first_failure_ms, task)
            )
            self._emit("retried", msg, delay)
        elif self.topology.dead_letter is not None:
            record = DeadLetterRecord(
                topology=self.topology.name,
                source=self.source.describe(),
                source_id=msg.id,
                body=msg.body,
                task=task,
                error=truncate_error(error),
                reason=reason,
                attempts=msg.deliveries,
                first_failure_ms=state.first_failure_ms,
                last_failure_ms=now,
            )
            self._queue_finish(_Finish("dead_letter", state, record))
        else:
            self._emit("dropped", state, error)
            self.acker.add(msg.id)
            self._freed()

    # -- timers: timeouts and retries ------------------------------------------------------
    async def _timer_loop(self) -> None:
        while not self._closing:
            now = self.clock()
            for state in list(self.wheel.expired(now)):
                self._fail(state, "timeout", None, None)
            heap = self._retry_heap
            while heap and heap[0][0] <= now and not self._stopping:
                _, _, msg, first_failure, _task = heapq.heappop(heap)
                if self.retry_wait.pop(msg.id, None) is None:
                    continue
                again = dataclasses.replace(msg, read_at=now, deliveries=msg.deliveries + 1)
                self._start(again, self.topology.msg_timeout_ms)
                self.inflight[again.id].first_failure_ms = first_failure
            due = [d for d in (self.wheel.next_due_ms(), heap[0][0] if heap else None) if d is not None]
            wait = max(0.001, min(0.05, (min(due) - now) / 1000)) if due else 0.05
            await asyncio.sleep(wait)

    # -- after a failure: release or dead-letter (async work) ---------------------------
    def _queue_finish(self, item: _Finish) -> None:
        self._finishing.append(item)
        self._finishing_count += 1
        self._finish_wake.set()

    async def _finish_loop(self) -> None:
        while True:
            if not self._finishing:
                if self._closing:
                    return
                self._finish_wake.clear()
                await self._finish_wake.wait()
                continue
            items, self._finishing = self._finishing, []
            releases = [i.state.msg for i in items if i.kind == "release"]
            letters = [i for i in items if i.kind == "dead_letter"]
            if releases:
                await self._release(releases, "failure_policy_none")
            if letters:
                await self._dead_letter(letters)
            self._finishing_count -= len(items)
            self._freed()

    async def _dead_letter(self, items: list[_Finish]) -> None:
        dead_letter = self.topology.dead_letter
        assert dead_letter is not None
        records = [i.record for i in items if i.record is not None]
        try:
            await dead_letter.put(records)
        except Exception as exc:
            log.error(
                "topology %s: dead letter %s failed: %r",
                self.topology.name,
                dead_letter.describe(),
                exc,
            )
            self._emit("dead_lettered", records, False)
            await self._release([i.state.msg for i in items], "dead_letter_failed")
            return
        self._emit("dead_lettered", records, True)
        if failpoints.ARMED:
            failpoints.hit("engine.after_dead_letter")
        for item in items:
            self.acker.add(item.state.msg.id)

    async def _release(self, msgs: list[SourceMsg], reason: str) -> None:
        self._emit("released", msgs, reason)
        try:
            await self.source.release(msgs)
        except Exception:
            log.exception(
                "topology %s: releasing %d message(s) to the source failed",
                self.topology.name,
                len(msgs),
            )

    # -- monitor -------------------------------------------------------------------------
    async def _monitor_loop(self) -> None:
        interval = self.source.monitor_interval_ms / 1000
        failures, last_log = 0, -MONITOR_LOG_QUIET_S
        while not self._closing:
            try:
                await asyncio.wait_for(self._stop.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                await self.source.monitor()
            except Exception as exc:
                failures += 1
                if time.monotonic() - last_log >= MONITOR_LOG_QUIET_S:  # no log storm during an outage
                    last_log = time.monotonic()
                    log.warning("topology %s: source monitor failed (%d in a row): %r", self.topology.name,
                                failures, exc)  # fmt: skip
                continue
            if failures:
                log.info("topology %s: source monitor succeeds again after %d failures", self.topology.name,
                         failures)  # fmt: skip
                failures, last_log = 0, -MONITOR_LOG_QUIET_S

    # -- events -----------------------------------------------------------------------------
    def _acked(self, count: int, ok: bool) -> None:
        self._emit("acked", count, ok)
        self._freed()

    def _emit(self, event: str, *args: Any) -> None:
        for ob in self.observers:
            try:
                getattr(ob, event)(*args)
            except Exception:
                log.exception("observer %r failed on %s", ob, event)

    def snapshot(self) -> dict[str, float]:
        """Every metric as a flat dict (see :meth:`Registry.snapshot`)."""
        return self.registry.snapshot()
