"""Every built-in metric: its dotted name, kind, unit, labels, help and Prometheus name.

This is the one list: the Prometheus target names and documents metrics from it, and
``docs/metrics.md`` is generated from it (``python -m pytempest.metrics.catalog``; a test
checks the committed page is up to date). An entry says who emits it: the engine, a
source (through ``Source.metrics``), or the distributed runtime.

Dotted names are what the registry holds (``task.msg.handle``); the console, log, file
and statsd targets show them as ``[<prefix>.]<topology>[.<task>].<name>[.<status>]``.
Prometheus names follow its conventions: ``pytempest_`` first, base units (durations in
seconds), counters ending in ``_total``, and labels for what the dotted name spells out.
"""

from __future__ import annotations

import dataclasses
import re

from pytempest.metrics.registry import Kind, Metric

ENGINE = "engine"
REDIS = "Redis sources (`Source.metrics`)"
REDIS_STREAM = "Redis stream source (`Source.metrics`)"
DISTRIBUTED = "distributed runtime (Redis bus executor and workers)"


@dataclasses.dataclass(frozen=True, slots=True)
class MetricSpec:
    """One built-in metric.

    ``prometheus`` is the exposition name (counters with ``_total``); ``prom_labels``
    are constant labels added there (``topology.source.msg.timeout`` is
    ``pytempest_messages_failed_total{reason="timeout"}``). A ``unit`` of ``ms`` is
    exposed to Prometheus in seconds.
    """

    name: str
    kind: Kind
    unit: str
    labels: tuple[str, ...]
    help: str
    prometheus: str
    emitter: str = ENGINE
    section: str = ""
    prom_labels: tuple[tuple[str, str], ...] = ()

    @property
    def family(self) -> str:
        """The Prometheus family name (without ``_total``)."""
        return self.prometheus.removesuffix("_total")


T = ("topology",)
TS = ("topology", "status")
TT = ("topology", "task")


def _m(section: str, name: str, kind: Kind, unit: str, labels: tuple[str, ...], prom: str, help: str,
       emitter: str = ENGINE, prom_labels: tuple[tuple[str, str], ...] = ()) -> MetricSpec:  # fmt: skip
    return MetricSpec(name, kind, unit, labels, help, prom, emitter, section, prom_labels)


SOURCE, TOPOLOGY, TASK, DIST = "Source", "Topology", "Task", "Distributed runtime"

CATALOG: tuple[MetricSpec, ...] = (
    _m(SOURCE, "source.msg.read", "counter", "messages", T, "pytempest_source_messages_read_total",
       "Messages read from the source (each delivery counts)."),
    _m(SOURCE, "source.msg.acked", "counter", "messages", TS, "pytempest_source_messages_acked_total",
       "Message ids acked at the source; `status` is `success`, or `error` when the ack call failed."),
    _m(SOURCE, "source.poll", "counter", "polls", TS, "pytempest_source_polls_total",
       "Polls of the source; `status` is `success` (even when empty) or `error` (it raised)."),
    _m(SOURCE, "source.backoff", "gauge", "ms", T, "pytempest_source_backoff_seconds",
       "Current wait before the next poll: 0 while data flows, growing after empty or failed polls."),
    _m(SOURCE, "source.pending", "gauge", "messages", T, "pytempest_source_pending_messages",
       "Messages delivered and not acked yet (stream: `XPENDING` count; list: entries in the processing "
       "list; sorted set: leased members); set by `monitor`.", REDIS),
    _m(SOURCE, "source.lag", "gauge", "messages", T, "pytempest_source_lag_messages",
       "Messages waiting to be read (stream: the group's `XINFO GROUPS` lag, where Redis reports it; "
       "list: entries queued; sorted set: due members); set by `monitor`.", REDIS),
    _m(SOURCE, "source.errors", "counter", "errors", ("topology", "op"), "pytempest_source_errors_total",
       "Redis errors other than a lost connection, by operation (`op`: poll, ack, claim, monitor, ...).",
       REDIS),
    _m(SOURCE, "source.reconnects", "counter", "reconnects", T, "pytempest_source_reconnects_total",
       "Times the source reached Redis again after losing it.", REDIS),
    _m(SOURCE, "source.msg.claimed", "counter", "messages", T, "pytempest_source_messages_claimed_total",
       "Stale pending messages taken over by a `claim` pending handler and run again.", REDIS),
    _m(SOURCE, "source.msg.force_acked", "counter", "messages", T,
       "pytempest_source_messages_force_acked_total", "Stale pending messages acked by an `ack` pending handler.",
       REDIS),
    _m(SOURCE, "source.msg.deleted", "counter", "messages", T, "pytempest_source_messages_deleted_total",
       "Stale pending messages acked and deleted by a `delete` pending handler.", REDIS),
    _m(SOURCE, "source.msg.dead_lettered", "counter", "messages", T,
       "pytempest_source_messages_dead_lettered_total",
       "Stale pending messages written to the dead letter, then acked, by a `dead_letter` pending handler.",
       REDIS),
    _m(SOURCE, "source.msg.missing", "counter", "messages", T, "pytempest_source_messages_missing_total",
       "Pending stream entries found deleted from the stream (`XAUTOCLAIM` reports them); acked.", REDIS_STREAM),
    _m(SOURCE, "source.msg.no_body", "counter", "messages", T, "pytempest_source_messages_no_body_total",
       "Stream entries without the body field: delivered with an empty body, fields in `SourceMsg.meta`.",
       REDIS_STREAM),
    _m(SOURCE, "source.group.recreated", "counter", "times", T, "pytempest_source_group_recreated_total",
       "Times the consumer group was missing (Redis restarted without persistence) and was created again.",
       REDIS_STREAM),
    _m(SOURCE, "source.trimmed", "counter", "messages", T, "pytempest_source_trimmed_total",
       "Acked stream entries trimmed by `max_len`.", REDIS_STREAM),
    _m(TOPOLOGY, "pipeline.inflight", "gauge", "messages", T, "pytempest_messages_in_flight",
       "Source messages being processed now (read, not yet done or failed)."),
    _m(TOPOLOGY, "pipeline.retry.waiting", "gauge", "messages", T, "pytempest_messages_retry_waiting",
       "Failed source messages waiting for their retry delay."),
    _m(TOPOLOGY, "topology.source.msg.ack", "counter", "messages", T, "pytempest_messages_done_total",
       "Source messages done: every task complete; queued for acking."),
    _m(TOPOLOGY, "topology.source.msg.error", "counter", "messages", T, "pytempest_messages_failed_total",
       "Attempts that failed because a task raised.", prom_labels=(("reason", "error"),)),
    _m(TOPOLOGY, "topology.source.msg.timeout", "counter", "messages", T, "pytempest_messages_failed_total",
       "Attempts that failed because they were not done `msg_timeout_ms` after they were read.",
       prom_labels=(("reason", "timeout"),)),
    _m(TOPOLOGY, "topology.source.msg.retry.queued", "counter", "messages", T,
       "pytempest_messages_retried_total", "Failed attempts queued to run again (policy `retry`)."),
    _m(TOPOLOGY, "topology.source.msg.retry.dropped", "counter", "messages", T,
       "pytempest_messages_dropped_total",
       "Messages whose retries ran out with no dead letter set: acked with an ERROR log line."),
    _m(TOPOLOGY, "topology.source.msg.deadletter", "counter", "messages", T,
       "pytempest_messages_dead_lettered_total", "Messages written to the dead letter (then acked)."),
    _m(TOPOLOGY, "topology.deadletter.error", "counter", "messages", T,
       "pytempest_dead_letter_errors_total",
       "Records the dead letter refused; their messages stay unacked at the source."),
    _m(TOPOLOGY, "topology.source.msg.released", "counter", "messages", T,
       "pytempest_messages_released_total",
       "Messages handed back to the source unacked (policy `none`, shutdown, dead letter failure)."),
    _m(TOPOLOGY, "topology.source.msg.ack.dropped", "counter", "messages", ("topology", "reason"),
       "pytempest_messages_not_acked_total",
       "Failed messages left unacked on purpose; `reason` is `failure_policy_none`."),
    _m(TOPOLOGY, "topology.source.msg.duplicate", "counter", "messages", T,
       "pytempest_messages_duplicate_total",
       "Messages the source delivered while the same id was in flight (skipped)."),
    _m(TOPOLOGY, "topology.task.result.stale", "counter", "results", T, "pytempest_task_results_stale_total",
       "Task results ignored: their attempt had ended, or they were duplicates."),
    _m(TOPOLOGY, "topology.source.msg.latency", "timer", "ms", T, "pytempest_message_latency_seconds",
       "End to end, per attempt: from read (or retry start) to done, when the message is queued for ack."),
    _m(TASK, "task.msg.inflow", "counter", "messages", TT, "pytempest_task_messages_in_total",
       "Task messages that reached the task (handled plus skipped)."),
    _m(TASK, "task.msg.handle", "counter", "messages", TT, "pytempest_task_messages_handled_total",
       "Task messages passed to `handle` (the filter let them through)."),
    _m(TASK, "task.msg.outflow", "counter", "messages", TT, "pytempest_task_messages_out_total",
       "Bodies the task emitted (each goes to every direct descendant)."),
    _m(TASK, "task.msg.skipped", "counter", "messages", TT, "pytempest_task_messages_skipped_total",
       "Task messages the task's `filter` rejected."),
    _m(TASK, "task.msg.error", "counter", "batches", TT, "pytempest_task_errors_total",
       "Batches in which `handle` (or `filter`) raised; the source message fails."),
    _m(TASK, "task.handle", "timer", "ms", TT, "pytempest_task_handle_duration_seconds",
       "Time in `filter` + `handle` per task message (a batch's time divided among its messages)."),
    _m(TASK, "task.queue.depth", "gauge", "messages", TT, "pytempest_task_queue_depth",
       "Task messages waiting to run in this process (in-process runtime)."),
    _m(DIST, "bus.workers", "gauge", "workers", TT, "pytempest_bus_workers",
       "Worker processes serving the task whose heartbeat is fresh (0: nothing runs it).", DISTRIBUTED),
    _m(DIST, "task.stream.lag", "gauge", "entries", TT, "pytempest_task_stream_lag_entries",
       "Entries of the task's stream its workers have not finished: not yet delivered to their consumer "
       "group plus delivered and not acked (`XINFO GROUPS` lag + pending; the stream's length when Redis "
       "cannot say the lag). Each entry carries a batch of task messages. Read by the topology process "
       "every `status_interval_ms`.", DISTRIBUTED),
    _m(DIST, "task.entry.claimed", "counter", "entries", TT, "pytempest_task_entries_claimed_total",
       "Entries of the task's stream a worker claimed (`XAUTOCLAIM`) from a worker that died or stalled, "
       "to run them again; counted by the worker that claims them.", DISTRIBUTED),
    _m(DIST, "bus.outstanding", "gauge", "batches", T, "pytempest_bus_outstanding_batches",
       "Task batches sent to workers whose result has not come back yet.", DISTRIBUTED),
    _m(DIST, "bus.entry.sent", "counter", "entries", T, "pytempest_bus_entries_sent_total",
       "Entries written to task streams (each holds one or more task messages).", DISTRIBUTED),
    _m(DIST, "bus.msg.sent", "counter", "messages", T, "pytempest_bus_messages_sent_total",
       "Task messages sent to workers through the task streams.", DISTRIBUTED),
    _m(DIST, "bus.result.received", "counter", "results", T, "pytempest_bus_results_received_total",
       "Results read back from this topology instance's result stream.", DISTRIBUTED),
    _m(DIST, "bus.result.dropped", "counter", "results", T, "pytempest_bus_results_dropped_total",
       "Results for no outstanding batch (duplicates, or of an attempt that ended): ignored.", DISTRIBUTED),
    _m(DIST, "bus.result.malformed", "counter", "entries", T, "pytempest_bus_results_malformed_total",
       "Result entries that could not be decoded: dropped with an ERROR line.", DISTRIBUTED),
    _m(DIST, "bus.msg.too_large", "counter", "batches", T, "pytempest_bus_messages_too_large_total",
       "Task batches too large to send: their source message fails.", DISTRIBUTED),
    _m(DIST, "bus.redis.error", "counter", "errors", T, "pytempest_bus_redis_errors_total",
       "Redis errors of the bus (sending, reading results); retried.", DISTRIBUTED),
    _m(DIST, "worker.msg.handle", "counter", "messages", TT, "pytempest_worker_messages_handled_total",
       "Task messages a worker process passed to `handle` (counted in the worker's registry).", DISTRIBUTED),
    _m(DIST, "worker.msg.skipped", "counter", "messages", TT, "pytempest_worker_messages_skipped_total",
       "Task messages a worker's `filter` rejected.", DISTRIBUTED),
    _m(DIST, "worker.msg.outflow", "counter", "messages", TT, "pytempest_worker_messages_out_total",
       "Bodies a worker's task emitted.", DISTRIBUTED),
    _m(DIST, "worker.msg.error", "counter", "batches", TT, "pytempest_worker_errors_total",
       "Batches in which a worker's `handle` raised.", DISTRIBUTED),
)  # fmt: skip

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOG}

_NOT_PROM = re.compile(r"[^a-zA-Z0-9_]")


def lookup(name: str) -> MetricSpec | None:
    """The catalog entry of a dotted metric name, or None (a user metric)."""
    return BY_NAME.get(name)


def prometheus_family(metric: Metric) -> tuple[str, tuple[tuple[str, str], ...], str]:
    """``(family name, constant labels, help)`` of ``metric`` for Prometheus.

    A metric outside the catalog (a task's or source's own, through ``self.metrics``)
    becomes ``pytempest_user_<name>`` (a task's) or ``pytempest_<name>`` (a source's,
    ``source.`` included), dots and other characters turned into ``_``, with the same
    labels; a user timer gets ``_seconds``.
    """
    spec = BY_NAME.get(metric.name)
    if spec is not None:
        return spec.family, spec.prom_labels, spec.help
    base = _NOT_PROM.sub("_", metric.name)
    name = f"pytempest_{base}" if metric.name.startswith("source.") else f"pytempest_user_{base}"
    if metric.kind == "timer":
        name += "_seconds"
    return name, (), f"User metric {metric.name} ({metric.kind})."


def main() -> None:
    """Print ``docs/metrics.md`` (``python -m pytempest.metrics.catalog > docs/metrics.md``)."""
    from pytempest.metrics.docs import render_markdown

    print(render_markdown(), end="")


if __name__ == "__main__":
    main()
