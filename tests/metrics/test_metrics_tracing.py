"""OpenTelemetry spans per source message, with the SDK's in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pytempest import FailurePolicy, Pipeline, TestRun, Topology, task
from pytempest.sources import MemorySource
from pytempest.tracing import ROOT_SPAN, TracingObserver, auto_observer, available


def traced_run(topology: Topology) -> list:  # type: ignore[type-arg]
    """Run ``topology`` with a TracingObserver on an SDK provider; the finished spans."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    observer = TracingObserver(topology, tracer=provider.get_tracer("test"))
    metrics = TestRun(topology, observers=[observer]).run(timeout_ms=10_000)
    assert metrics.reason == "idle"
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_one_trace_per_message_with_a_span_per_task(book: Callable[[], Pipeline]) -> None:
    spans = traced_run(Topology("book", book(), MemorySource(["a", "b", "c"])))
    roots = [s for s in spans if s.name == ROOT_SPAN]
    assert sorted(s.attributes["messaging.message.id"] for s in roots) == ["0", "1", "2"]
    for root in roots:
        children = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
        assert all(c.context.trace_id == root.context.trace_id for c in children)
        names = sorted(c.attributes["pytempest.task"] for c in children)
        # T1 once; T2 and T3 once per batch of T1's outputs; T4 for its batches.
        assert names[0] == "T1" and {"T2", "T3", "T4"} <= set(names)
        handled = {n: 0 for n in ("T1", "T2", "T3", "T4")}
        for c in children:
            handled[c.attributes["pytempest.task"]] += c.attributes["pytempest.handled"]
        assert handled == {"T1": 1, "T2": 10, "T3": 10, "T4": 50}
        assert root.status.is_ok and root.start_time <= min(c.start_time for c in children)
        assert root.end_time >= max(c.end_time for c in children) - 1_000_000  # ms clock on the root


def test_failed_attempts_end_their_trace_with_an_error() -> None:
    @task("boom")
    def boom(body: bytes) -> None:
        raise ValueError("no")

    topology = Topology(
        "fail", Pipeline().task(boom), MemorySource(["x"]), failure_policy=FailurePolicy.retry(1, delay_ms=1)
    )
    spans = traced_run(topology)
    roots = sorted((s for s in spans if s.name == ROOT_SPAN), key=lambda s: s.attributes["pytempest.attempt"])
    assert [r.attributes["pytempest.attempt"] for r in roots] == [1, 2]
    assert all(not r.status.is_ok and "ValueError: no" in r.status.description for r in roots)
    assert len({r.context.trace_id for r in roots}) == 2
    task_spans = [s for s in spans if s.name == "pytempest.task boom"]
    assert len(task_spans) == 2 and all(
        s.events[0].attributes["exception.type"] == "ValueError" for s in task_spans
    )


def test_without_opentelemetry_nothing_is_added(tmp_path: Path) -> None:
    """In a process where ``opentelemetry`` cannot be imported, the engine runs as usual."""
    script = tmp_path / "plain.py"
    script.write_text(
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # import opentelemetry now raises ImportError\n"
        "from pytempest import Pipeline, TestRun, Topology, task\n"
        "from pytempest.sources import MemorySource\n"
        "from pytempest.tracing import auto_observer, available\n"
        "t = Topology('plain', Pipeline().task(task('t')(lambda b: None)), MemorySource(['a']))\n"
        "run = TestRun(t)\n"
        "print(available(), auto_observer(t), run.run(timeout_ms=10_000).reason, len(run.engine.observers))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "None", "idle", "2"]  # metrics and logs only


def test_tracing_is_off_without_a_tracer_provider() -> None:
    pytest.importorskip("opentelemetry.trace")
    assert available()
    topology = Topology("off", Pipeline().task(task("t")(lambda b: None)), MemorySource(["x"]))
    assert auto_observer(topology) is None  # the global provider is the API's no-op proxy


def test_tracing_turns_on_by_itself_with_a_provider(tmp_path: Path) -> None:
    """In a fresh process (a global provider can be set once): the engine adds the observer."""
    pytest.importorskip("opentelemetry.sdk.trace")
    script = tmp_path / "traced.py"
    script.write_text(
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from pytempest import Pipeline, TestRun, Topology, task\n"
        "from pytempest.sources import MemorySource\n"
        "exporter = InMemorySpanExporter()\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "trace.set_tracer_provider(provider)\n"
        "t = Topology('auto', Pipeline().task(task('t')(lambda b: None)), MemorySource(['a', 'b']))\n"
        "TestRun(t).run(timeout_ms=10_000)\n"
        "print(sorted(s.name for s in exporter.get_finished_spans()))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == str(sorted([ROOT_SPAN, ROOT_SPAN, "pytempest.task t", "pytempest.task t"]))
    off = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True,
        env={**__import__("os").environ, "PYTEMPEST_TRACING": "off"},
    )  # fmt: skip
    assert off.stdout.strip() == "[]"
