"""The catalog: complete for what the engine emits, consistent, and the docs follow it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pytempest import FailurePolicy, Pipeline, TestRun, Topology, task
from pytempest.deadletters import MemoryDeadLetter
from pytempest.metrics.catalog import BY_NAME, CATALOG, ENGINE
from pytempest.metrics.docs import render_markdown
from pytempest.sources import MemorySource

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def registered_names(topology: Topology) -> set[str]:
    run = TestRun(topology)
    metrics = run.run(timeout_ms=20_000)
    assert metrics.reason == "idle"
    assert run.engine is not None
    return {m.name for m in run.engine.registry}


def test_every_metric_the_engine_registers_is_in_the_catalog(book: Callable[[], Pipeline]) -> None:
    names = registered_names(Topology("book", book(), MemorySource(["a", "b"])))

    @task("flaky")
    def flaky(body: bytes) -> list[bytes]:
        flaky.metrics.incr("seen")  # a task's own metric: not built in
        if body == b"bad":
            raise ValueError("bad body")
        return [body]

    @task("slow")
    async def slow(body: bytes) -> None:
        return None

    failing = Topology(
        "fail", Pipeline().task(flaky).task(slow).edge("flaky", "slow"), MemorySource(["ok", "bad"]),
        failure_policy=FailurePolicy.retry(1, delay_ms=1), dead_letter=MemoryDeadLetter(),
    )  # fmt: skip
    names |= registered_names(failing) - {"seen"}
    missing = sorted(names - set(BY_NAME))
    assert not missing, f"registered by the engine but not in the catalog: {missing}"
    # And the other way: every entry the catalog says the engine emits, it does.
    claimed = {spec.name for spec in CATALOG if spec.emitter == ENGINE}
    assert claimed <= names, sorted(claimed - names)


def test_catalog_entries_are_consistent() -> None:
    assert len(BY_NAME) == len(CATALOG), "duplicate dotted names"
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    kinds: dict[str, str] = {}
    for spec in CATALOG:
        assert re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", spec.name), spec.name
        assert re.fullmatch(r"pytempest_[a-z0-9_]+", spec.prometheus), spec.prometheus
        assert spec.prometheus.endswith("_total") == (spec.kind == "counter"), spec.name
        if spec.unit == "ms":
            assert spec.prometheus.endswith("_seconds"), spec.name
        assert "topology" in spec.labels and spec.help.endswith("."), spec.name
        assert spec.emitter and spec.section, spec.name
        key = (spec.prometheus, spec.prom_labels)
        assert key not in seen, f"{spec.name} and {seen[key]} share a Prometheus series"
        seen[key] = spec.name
        assert kinds.setdefault(spec.family, spec.kind) == spec.kind, spec.family
    issue_list = [
        "source.msg.read", "source.msg.acked", "source.poll", "source.backoff", "source.pending", "source.lag",
        "source.reconnects", "task.msg.inflow", "task.msg.handle", "task.msg.outflow", "task.msg.skipped",
        "task.msg.error", "task.handle", "task.queue.depth", "pipeline.inflight", "topology.source.msg.timeout",
        "topology.source.msg.retry.queued", "topology.source.msg.deadletter", "topology.source.msg.error",
        "topology.source.msg.latency", "task.stream.lag", "task.entry.claimed", "bus.workers",
    ]  # fmt: skip
    assert set(issue_list) <= set(BY_NAME)


def test_docs_page_is_generated_from_the_catalog() -> None:
    assert DOC.read_text() == render_markdown(), (
        "docs/metrics.md is stale: run `python -m pytempest.metrics.catalog > docs/metrics.md`"
    )
    printed = subprocess.run(
        [sys.executable, "-m", "pytempest.metrics.catalog"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert printed == render_markdown()
    for spec in CATALOG:
        assert f"`{spec.name}`" in printed and spec.prometheus in printed


SRC = Path(__file__).resolve().parents[2] / "src" / "pytempest"
REGISTRY_CALL = re.compile(r"\.(?:counter|gauge|timer)\(\s*\"([a-z0-9_.]+)\"")
SOURCE_CALL = re.compile(r"(?:\b_count|\b_gauge|metrics\.(?:incr|gauge|timing))\(\s*\"([a-z0-9_.]+)\"")


def test_every_literal_metric_name_in_the_package_is_in_the_catalog() -> None:
    """Sources and runtimes name their metrics in code; each name must be in the catalog
    (a source's own names get the ``source.`` prefix its ``metrics`` adds)."""
    found: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        if path.parent.name == "metrics":
            continue
        text = path.read_text()
        for name in REGISTRY_CALL.findall(text):
            found.setdefault(name, str(path.relative_to(SRC)))
        if path.parent.name == "sources":
            for name in SOURCE_CALL.findall(text):
                found.setdefault(f"source.{name}", str(path.relative_to(SRC)))
    assert "task.msg.handle" in found and "source.reconnects" in found  # the scan sees real code
    missing = {name: where for name, where in found.items() if name not in BY_NAME}
    assert not missing, f"metric names not in pytempest/metrics/catalog.py: {missing}"
