"""Optional OpenTelemetry spans: one trace per source message attempt.

When ``opentelemetry-api`` is installed and the application has set a tracer provider
(``opentelemetry.trace.set_tracer_provider(...)`` or the ``OTEL_*`` auto-configuration),
the engine adds a :class:`TracingObserver` by itself (:func:`auto_observer`); otherwise
nothing is added and nothing is paid. Set ``PYTEMPEST_TRACING=off`` to keep it out anyway.

The trace of an attempt has a root span ``pytempest.message`` (kind ``CONSUMER``) from
when the message was read (or its retry started) to when it was done, failed or handed
back, and one child span ``pytempest.task <name>`` per handled batch of task messages,
placed at the time ``handle`` ran. Attributes: ``pytempest.topology``,
``messaging.message.id`` (the source id), ``pytempest.attempt``, ``pytempest.task``,
``pytempest.batch_size``, ``pytempest.handled``, ``pytempest.skipped``,
``pytempest.outputs``; failures set the span status to ERROR with the reason.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytempest.engine.completion import MessageState
from pytempest.engine.events import EngineObserver
from pytempest.engine.executor import BatchResult, TaskFailure
from pytempest.model.message import SourceMsg
from pytempest.topology import Topology

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("pytempest.tracing")

ROOT_SPAN = "pytempest.message"
TASK_SPAN = "pytempest.task"


def _otel() -> Any:
    """The ``opentelemetry.trace`` module, or None when it is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


def available() -> bool:
    """Whether ``opentelemetry-api`` is installed."""
    return _otel() is not None


def enabled() -> bool:
    """Whether spans would go anywhere: the API is installed, a tracer provider was set,
    and ``PYTEMPEST_TRACING`` is not ``off``/``0``/``false``."""
    if os.environ.get("PYTEMPEST_TRACING", "").strip().lower() in ("off", "0", "false", "no"):
        return False
    trace = _otel()
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def auto_observer(topology: Topology) -> TracingObserver | None:
    """A :class:`TracingObserver` when :func:`enabled`, else None (the engine calls this)."""
    return TracingObserver(topology) if enabled() else None


class TracingObserver(EngineObserver):
    """Turns engine events into OpenTelemetry spans (see the module docstring).

    Args:
        topology: what is traced (its name is an attribute of every span).
        tracer: the tracer to use (default: the global provider's ``pytempest`` tracer).
        max_open: at most this many message spans open at once; messages read beyond
            that are not traced (memory stays bounded whatever the load).
    """

    def __init__(self, topology: Topology, tracer: Tracer | None = None, max_open: int = 100_000) -> None:
        trace = _otel()
        if trace is None:
            raise RuntimeError("TracingObserver needs opentelemetry-api: pip install opentelemetry-api")
        self._trace = trace
        self.topology = topology.name
        self.task_names = tuple(topology.graph.names)
        self.tracer: Tracer = tracer if tracer is not None else trace.get_tracer("pytempest")
        self.max_open = max_open
        self._open: dict[str, tuple[Span, int]] = {}
        self._warned = False

    def _root(self, msg: SourceMsg) -> Span | None:
        """The root span of this attempt of ``msg``, started at its first task result
        (backdated to when it was read) so that a message skipped as a duplicate, or
        never run, opens none."""
        found = self._open.get(msg.id)
        if found is not None and found[1] == msg.deliveries:
            return found[0]
        if found is not None:  # an older attempt never ended: end it now
            found[0].end()
        if len(self._open) >= self.max_open:
            if not self._warned:
                self._warned = True
                log.warning(
                    "tracing: %d messages traced at once; not tracing more until some end", self.max_open
                )
            return None
        span = self.tracer.start_span(
            ROOT_SPAN,
            kind=self._trace.SpanKind.CONSUMER,
            start_time=msg.read_at * 1_000_000 if msg.read_at else None,
            attributes={
                "pytempest.topology": self.topology,
                "messaging.message.id": msg.id,
                "pytempest.attempt": msg.deliveries,
            },
        )
        self._open[msg.id] = (span, msg.deliveries)
        return span

    def _end(self, msg_id: str, end_ms: int | None = None, error: str | None = None) -> None:
        found = self._open.pop(msg_id, None)
        if found is None:
            return
        span = found[0]
        if error is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
        span.end(end_time=end_ms * 1_000_000 if end_ms else None)

    def task_done(self, result: BatchResult, stale: bool) -> None:
        state = result.batch.state
        root = self._open.get(state.msg.id)
        if stale and (root is None or root[1] != state.msg.deliveries):
            return
        parent = self._root(state.msg)
        if parent is None:
            return
        trace = self._trace
        end = time.time_ns()
        task = self.task_names[result.batch.task]
        span = self.tracer.start_span(
            f"{TASK_SPAN} {task}",
            context=trace.set_span_in_context(parent),
            start_time=end - int(result.elapsed_ms * 1_000_000),
            attributes={
                "pytempest.topology": self.topology,
                "pytempest.task": task,
                "messaging.message.id": state.msg.id,
                "pytempest.attempt": state.msg.deliveries,
                "pytempest.batch_size": len(result.batch.bodies),
                "pytempest.handled": result.handled,
                "pytempest.skipped": result.skipped,
                "pytempest.outputs": len(result.outputs),
                "pytempest.stale": stale,
            },
        )
        if result.failure is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(result.failure)))
            span.add_event(
                "exception",
                {"exception.type": result.failure.error_type, "exception.message": result.failure.message},
            )
        span.end(end_time=end)

    def completed(self, state: MessageState, now_ms: int) -> None:
        self._end(state.msg.id, now_ms)

    def failed(self, state: MessageState, reason: str, task: str | None, failure: TaskFailure | None) -> None:
        found = self._open.get(state.msg.id)
        if found is not None:
            found[0].set_attribute("pytempest.failure_reason", reason)
            if task:
                found[0].set_attribute("pytempest.failed_task", task)
        detail = f"{reason} in task {task}: {failure}" if task else reason
        self._end(state.msg.id, error=detail)

    def released(self, msgs: Sequence[SourceMsg], reason: str) -> None:
        for msg in msgs:
            found = self._open.get(msg.id)
            if found is not None:
                found[0].set_attribute("pytempest.released", reason)
            self._end(msg.id, error=f"released unacked: {reason}")
