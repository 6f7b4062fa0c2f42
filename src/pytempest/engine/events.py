"""Lifecycle events of the engine and the observers that turn them into metrics and logs.

The engine emits a few events (read, task done, completed, failed, retried, dropped,
dead-lettered, released, acked, poll error); metrics, logs and the dashboard feed
subscribe by subclassing :class:`EngineObserver`. An observer that raises is logged and
never stops the engine.
"""

from __future__ import annotations

import collections
import logging
import operator
import time
from collections.abc import Sequence

from pytempest.deadletters.base import DeadLetterRecord
from pytempest.engine.completion import MessageState
from pytempest.engine.executor import BatchResult, TaskFailure, TaskTally
from pytempest.metrics.registry import Counter, Registry, Timer
from pytempest.model.message import SourceMsg
from pytempest.model.pipeline import Graph

log = logging.getLogger("pytempest.engine")
_READ_AT = operator.attrgetter("read_at")


class EngineObserver:
    """Receives engine events; override what you need (all are no-ops here)."""

    def read(self, msgs: Sequence[SourceMsg]) -> None:
        """Messages were read from the source."""

    def polled(self, ok: bool, error: BaseException | None = None) -> None:
        """A poll returned (``ok``) or raised ``error``."""

    def task_done(self, result: BatchResult, stale: bool) -> None:
        """A batch of task messages was handled (``stale``: its attempt had ended)."""

    def completed(self, state: MessageState, now_ms: int) -> None:
        """Every task of the message is complete; it is queued for acking."""

    def completed_many(self, msgs: Sequence[SourceMsg], now_ms: int) -> None:
        """Messages of a cohort are done (the fast path; see ``runtimes/cohort.py``).

        The engine takes the fast path only while no extra observer implements
        ``task_done`` or ``completed``; observers that need those see every message.
        """

    def cohort_tallies(self, tallies: Sequence[TaskTally]) -> None:
        """What every task did for one cohort (the fast path's ``task_done``)."""

    def failed(self, state: MessageState, reason: str, task: str | None, failure: TaskFailure | None) -> None:
        """An attempt failed (``reason`` is ``error`` or ``timeout``)."""

    def retried(self, msg: SourceMsg, delay_ms: int) -> None:
        """A failed message will run again after ``delay_ms``."""

    def dropped(self, state: MessageState, reason: str) -> None:
        """Retries are exhausted and there is no dead letter: acked with an error."""

    def dead_lettered(self, records: Sequence[DeadLetterRecord], ok: bool) -> None:
        """Records were written to the dead letter (``ok``) or the write failed."""

    def released(self, msgs: Sequence[SourceMsg], reason: str) -> None:
        """Messages were handed back to the source unacked."""

    def acked(self, count: int, ok: bool) -> None:
        """``count`` ids were acked at the source (or the ack failed)."""

    def duplicate(self, msg: SourceMsg) -> None:
        """The source delivered a message that is already in flight; it was skipped."""


class MetricsObserver(EngineObserver):
    """Counts every event into the registry under the names of the original Tempest."""

    def __init__(self, registry: Registry, topology: str, graph: Graph) -> None:
        r = registry
        t = topology
        self.read_count = r.counter("source.msg.read", topology=t)
        self.poll_ok = r.counter("source.poll", topology=t, status="success")
        self.poll_error = r.counter("source.poll", topology=t, status="error")
        self.acked_ok = r.counter("source.msg.acked", topology=t, status="success")
        self.acked_error = r.counter("source.msg.acked", topology=t, status="error")
        self.completed_count = r.counter("topology.source.msg.ack", topology=t)
        self.error_count = r.counter("topology.source.msg.error", topology=t)
        self.timeout_count = r.counter("topology.source.msg.timeout", topology=t)
        self.retry_queued = r.counter("topology.source.msg.retry.queued", topology=t)
        self.retry_dropped = r.counter("topology.source.msg.retry.dropped", topology=t)
        self.deadletter_count = r.counter("topology.source.msg.deadletter", topology=t)
        self.deadletter_error = r.counter("topology.deadletter.error", topology=t)
        self.released_count = r.counter("topology.source.msg.released", topology=t)
        self.policy_none = r.counter(
            "topology.source.msg.ack.dropped", topology=t, reason="failure_policy_none"
        )
        self.duplicate_count = r.counter("topology.source.msg.duplicate", topology=t)
        self.stale_results = r.counter("topology.task.result.stale", topology=t)
        self.latency: Timer = r.timer("topology.source.msg.latency", topology=t)
        self.inflow: list[Counter] = []
        self.handle: list[Counter] = []
        self.outflow: list[Counter] = []
        self.skipped: list[Counter] = []
        self.errors: list[Counter] = []
        self.handle_time: list[Timer] = []
        for name in graph.names:
            self.inflow.append(r.counter("task.msg.inflow", topology=t, task=name))
            self.handle.append(r.counter("task.msg.handle", topology=t, task=name))
            self.outflow.append(r.counter("task.msg.outflow", topology=t, task=name))
            self.skipped.append(r.counter("task.msg.skipped", topology=t, task=name))
            self.errors.append(r.counter("task.msg.error", topology=t, task=name))
            self.handle_time.append(r.timer("task.handle", topology=t, task=name))

    def read(self, msgs: Sequence[SourceMsg]) -> None:
        self.read_count.value += len(msgs)

    def polled(self, ok: bool, error: BaseException | None = None) -> None:
        if ok:
            self.poll_ok.value += 1
        else:
            self.poll_error.value += 1

    def task_done(self, result: BatchResult, stale: bool) -> None:
        # Once per batch on the engine's loop: only the counters that change are touched.
        t = result.batch.task
        handled = result.handled
        done = handled + result.skipped
        if done:
            self.inflow[t].value += done
            self.handle_time[t].observe(result.elapsed_ms / done, done)
            if handled:
                self.handle[t].value += handled
            if handled != done:
                self.skipped[t].value += done - handled
        if result.outputs:
            self.outflow[t].value += len(result.outputs)
        if result.failure is not None:
            self.errors[t].value += 1
        if stale:
            self.stale_results.value += 1

    def completed(self, state: MessageState, now_ms: int) -> None:
        self.completed_count.value += 1
        self.latency.observe(now_ms - state.msg.read_at)

    def completed_many(self, msgs: Sequence[SourceMsg], now_ms: int) -> None:
        self.completed_count.value += len(msgs)
        # messages of one poll mostly share read_at: one observation per distinct value
        for read_at, n in collections.Counter(map(_READ_AT, msgs)).items():
            self.latency.observe(now_ms - read_at, n)

    def cohort_tallies(self, tallies: Sequence[TaskTally]) -> None:
        for t, tally in enumerate(tallies):
            done = tally.handled + tally.skipped
            if not done:
                continue
            self.inflow[t].value += done
            self.handle[t].value += tally.handled
            if tally.skipped:
                self.skipped[t].value += tally.skipped
            if tally.outflow:
                self.outflow[t].value += tally.outflow
            if tally.errors:
                self.errors[t].value += tally.errors
            self.handle_time[t].observe(tally.elapsed_ms / done, done)

    def failed(self, state: MessageState, reason: str, task: str | None, failure: TaskFailure | None) -> None:
        if reason == "timeout":
            self.timeout_count.value += 1
        else:
            self.error_count.value += 1

    def retried(self, msg: SourceMsg, delay_ms: int) -> None:
        self.retry_queued.value += 1

    def dropped(self, state: MessageState, reason: str) -> None:
        self.retry_dropped.value += 1

    def dead_lettered(self, records: Sequence[DeadLetterRecord], ok: bool) -> None:
        if ok:
            self.deadletter_count.value += len(records)
        else:
            self.deadletter_error.value += len(records)

    def released(self, msgs: Sequence[SourceMsg], reason: str) -> None:
        self.released_count.value += len(msgs)
        if reason == "failure_policy_none":
            self.policy_none.value += len(msgs)

    def acked(self, count: int, ok: bool) -> None:
        if ok:
            self.acked_ok.value += count
        else:
            self.acked_error.value += count

    def duplicate(self, msg: SourceMsg) -> None:
        self.duplicate_count.value += 1


class NoMetrics(MetricsObserver):
    """Counts nothing: what ``Engine(metrics=False)`` uses instead of :class:`MetricsObserver`.

    Its counters live in a private registry (the engine may still touch one directly);
    the engine leaves it out of its observers, so no event reaches it.
    """

    def __init__(self, topology: str, graph: Graph) -> None:
        super().__init__(Registry(), topology, graph)

    def read(self, msgs: Sequence[SourceMsg]) -> None:
        return None

    def polled(self, ok: bool, error: BaseException | None = None) -> None:
        return None

    def task_done(self, result: BatchResult, stale: bool) -> None:
        return None

    def completed(self, state: MessageState, now_ms: int) -> None:
        return None

    def completed_many(self, msgs: Sequence[SourceMsg], now_ms: int) -> None:
        return None

    def cohort_tallies(self, tallies: Sequence[TaskTally]) -> None:
        return None

    def failed(self, state: MessageState, reason: str, task: str | None, failure: TaskFailure | None) -> None:
        return None

    def retried(self, msg: SourceMsg, delay_ms: int) -> None:
        return None

    def dropped(self, state: MessageState, reason: str) -> None:
        return None

    def dead_lettered(self, records: Sequence[DeadLetterRecord], ok: bool) -> None:
        return None

    def released(self, msgs: Sequence[SourceMsg], reason: str) -> None:
        return None

    def acked(self, count: int, ok: bool) -> None:
        return None

    def duplicate(self, msg: SourceMsg) -> None:
        return None


class LogObserver(EngineObserver):
    """Logs failures and losses with the topology, source id, task and attempt.

    WARNING: an attempt failed or timed out; a message was dead-lettered. ERROR: a message
    was given up without a dead letter, or the dead letter refused it. DEBUG (when the
    ``pytempest.engine`` logger is at DEBUG): every message read, done and retried. Each
    of those lines carries ``extra`` ``topology``, ``task``, ``source_id`` and
    ``attempt`` (see :mod:`pytempest.logs`). Repeated poll errors are logged at most once
    per ``quiet_s`` seconds, with a count.
    """

    def __init__(self, topology: str, quiet_s: float = 10.0) -> None:
        self.topology = topology
        self.quiet_s = quiet_s
        self._last_poll_log = 0.0
        self._poll_errors = 0
        self._last_ack_log = -quiet_s
        self._ack_errors = 0
        self._debug = log.isEnabledFor(logging.DEBUG)

    def _extra(self, msg: SourceMsg, task: str | None) -> dict[str, object]:
        return {
            "topology": self.topology,
            "source_id": msg.id,
            "task": task,
            "attempt": msg.deliveries,
        }

    def read(self, msgs: Sequence[SourceMsg]) -> None:
        # Checked once per poll so the per-message DEBUG lines cost nothing when off.
        self._debug = log.isEnabledFor(logging.DEBUG)
        if self._debug:
            for msg in msgs:
                log.debug(
                    "topology %s: read message %s (attempt %d)",
                    self.topology, msg.id, msg.deliveries, extra=self._extra(msg, None),
                )  # fmt: skip

    def completed(self, state: MessageState, now_ms: int) -> None:
        if self._debug:
            self.completed_many([state.msg], now_ms)

    def completed_many(self, msgs: Sequence[SourceMsg], now_ms: int) -> None:
        if self._debug:
            for msg in msgs:
                log.debug(
                    "topology %s: message %s done in %d ms (attempt %d)",
                    self.topology, msg.id, now_ms - msg.read_at, msg.deliveries, extra=self._extra(msg, None),
                )  # fmt: skip

    def retried(self, msg: SourceMsg, delay_ms: int) -> None:
        if self._debug:
            log.debug(
                "topology %s: message %s will run again in %d ms (attempt %d failed)",
                self.topology, msg.id, delay_ms, msg.deliveries, extra=self._extra(msg, None),
            )  # fmt: skip

    def polled(self, ok: bool, error: BaseException | None = None) -> None:
        if ok:
            if self._poll_errors:
                log.info("topology %s: source polls succeed again", self.topology)
                self._poll_errors = 0
            return
        self._poll_errors += 1
        now = time.monotonic()
        if now - self._last_poll_log >= self.quiet_s:
            self._last_poll_log = now
            log.warning(
                "topology %s: source poll failed (%d in a row): %s: %s",
                self.topology, self._poll_errors, type(error).__name__, error,
            )  # fmt: skip

    def failed(self, state: MessageState, reason: str, task: str | None, failure: TaskFailure | None) -> None:
        msg = state.msg
        if reason == "timeout":
            log.warning(
                "topology %s: message %s timed out (attempt %d)",
                self.topology, msg.id, msg.deliveries, extra=self._extra(msg, task),
            )  # fmt: skip
            return
        detail = str(failure) if failure else "error"
        if failure is not None and failure.traceback and not failure.expected:
            detail += "\n" + failure.traceback.rstrip()
        log.warning(
            "topology %s: message %s failed in task %s (attempt %d): %s",
            self.topology, msg.id, task, msg.deliveries, detail, extra=self._extra(msg, task),
        )  # fmt: skip

    def dropped(self, state: MessageState, reason: str) -> None:
        msg = state.msg
        log.error(
            "topology %s: message %s gave up after %d attempts (last failure in task %s: %s); "
            "acked without a dead letter: set one so failed messages are kept",
            self.topology, msg.id, msg.deliveries, state.failed_task, reason,
            extra=self._extra(msg, state.failed_task),
        )  # fmt: skip

    def dead_lettered(self, records: Sequence[DeadLetterRecord], ok: bool) -> None:
        if not ok:
            first = records[0] if records else None
            log.error(
                "topology %s: dead letter refused %d record(s) (first: message %s); "
                "they stay unacked at the source",
                self.topology, len(records), first.source_id if first else "?",
                extra=self._record_extra(first) if first else None,
            )  # fmt: skip
            return
        for record in records:
            log.warning(
                "topology %s: message %s dead-lettered after %d attempt(s) (task %s, %s: %s)",
                self.topology, record.source_id, record.attempts, record.task, record.reason,
                record.error.splitlines()[0] if record.error else "", extra=self._record_extra(record),
            )  # fmt: skip

    def _record_extra(self, record: DeadLetterRecord) -> dict[str, object]:
        return {
            "topology": self.topology,
            "source_id": record.source_id,
            "task": record.task,
            "attempt": record.attempts,
        }

    def acked(self, count: int, ok: bool) -> None:
        if ok:
            if self._ack_errors:
                log.info("topology %s: acks succeed again after %d failures", self.topology, self._ack_errors)
                self._ack_errors = 0
                self._last_ack_log = -self.quiet_s
            return
        self._ack_errors += 1
        now = time.monotonic()
        if now - self._last_ack_log >= self.quiet_s:  # at most one line per quiet_s in an outage
            self._last_ack_log = now
            log.warning("topology %s: acking %d message(s) failed (%d in a row); will retry",
                        self.topology, count, self._ack_errors)  # fmt: skip
