"""The cohort fast path: when it is taken, and that it keeps the engine's semantics."""

from __future__ import annotations

import pytest

from pytempest import FailurePolicy, Pipeline, TestRun, Topology, task
from pytempest.deadletters import MemoryDeadLetter
from pytempest.engine.events import EngineObserver
from pytempest.sources import MemorySource

from .helpers import Emit, book_dag


def run(topology: Topology, **kwargs: object) -> tuple[dict[str, float], bool]:
    test_run = TestRun(topology, **kwargs)  # type: ignore[arg-type]
    metrics = test_run.run()
    assert test_run.engine is not None
    return metrics, test_run.engine._cohorts


def test_taken_for_inline_pipelines_only() -> None:
    _, used = run(Topology("c1", book_dag(), MemorySource([b"x"] * 3)))
    assert used
    _, used = run(Topology("c2", book_dag(t2_sleep_s=0.001), MemorySource([b"x"] * 3)))
    assert not used, "a threaded task needs the per-batch path"

    class PerBatch(EngineObserver):
        def task_done(self, result: object, stale: bool) -> None:
            pass

    _, used = run(Topology("c3", book_dag(), MemorySource([b"x"] * 3)), observers=[PerBatch()])
    assert not used, "an observer of every batch needs the per-batch path"
    _, used = run(Topology("c3b", book_dag(), MemorySource([b"x"] * 3)), observers=[EngineObserver()])
    assert used, "an observer of other events does not"
    _, used = run(Topology("c4", book_dag(), MemorySource([b"x"] * 3)), cohorts=False)
    assert not used


@pytest.mark.parametrize("cohorts", [True, False])
def test_same_metrics_on_both_paths(cohorts: bool) -> None:
    @task("gate", filter=lambda b: not b.endswith(b"3"))
    def gate(body: bytes) -> list[bytes]:
        return [body, body]

    @task("bad")
    def bad(body: bytes) -> object:
        return 5 if body == b"m5" else [body]

    sink = Emit("sink", 0)
    dead = MemoryDeadLetter()
    source = MemorySource([b"m%d" % i for i in range(10)])
    topology = Topology(
        "same",
        Pipeline().task(gate).task(bad).task(sink).edges(("gate", "bad"), ("bad", "sink")),
        source,
        failure_policy=FailurePolicy.retry(1, delay_ms=1),
        dead_letter=dead,
    )
    metrics, used = run(topology, cohorts=cohorts)
    assert used is cohorts
    assert metrics["same.gate.task.msg.skipped"] == 1
    assert metrics["same.gate.task.msg.handle"] == 10  # 9 + the retried m5
    assert metrics["same.bad.task.msg.handle"] == 20  # 2 per kept message, m5 twice
    assert metrics["same.bad.task.msg.error"] == 2
    assert metrics["same.sink.task.msg.handle"] == 16
    assert metrics["same.topology.source.msg.ack"] == 9
    assert metrics["same.topology.source.msg.retry.queued"] == 1
    assert [r.source_id for r in dead.records] == ["5"]
    assert "returned int 5" in dead.records[0].error
    assert sorted(source.acked, key=int) == [str(i) for i in range(10)]


@pytest.mark.parametrize("cohorts", [True, False])
def test_outputs_before_a_raising_body_are_counted_once(cohorts: bool) -> None:
    @task("split")
    def split(body: bytes) -> list[bytes]:
        if body == b"m3":
            raise ValueError("bad m3")
        return [body, body]

    sink = Emit("sink", 0)
    source = MemorySource([b"m%d" % i for i in range(6)])
    topology = Topology(
        "once",
        Pipeline().task(split).task(sink).edge("split", "sink"),
        source,
        failure_policy=FailurePolicy.best_effort(),
    )
    metrics, used = run(topology, cohorts=cohorts)
    assert used is cohorts
    assert metrics["once.split.task.msg.outflow"] == 10
    assert metrics["once.split.task.msg.handle"] == 6
    assert metrics["once.split.task.msg.error"] == 1
    assert sink.calls == 10
