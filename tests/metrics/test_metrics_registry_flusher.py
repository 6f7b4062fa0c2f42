"""Registry details the targets rely on, the flusher's guarantees, and metrics off."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import pytest

from pytempest import Pipeline, TestRun, Topology, task
from pytempest.engine.engine import Engine
from pytempest.errors import ConfigError
from pytempest.metrics import MetricTarget, Registry
from pytempest.metrics.flusher import MetricsFlusher
from pytempest.metrics.target import Deltas
from pytempest.sources import MemorySource


def test_timer_buckets_keep_counts_and_sums() -> None:
    registry = Registry(buckets_ms=[1, 10, 100])
    t = registry.timer("task.handle", topology="x", task="t")
    t.observe(0.5)
    t.observe(5, n=3)
    t.observe(500)
    assert t.buckets == [1, 3, 0, 1]
    assert t.bucket_sums == [0.5, 15, 0, 500]
    assert (t.count, t.sum_ms, t.max_ms) == (5, 515.5, 500)
    assert t.quantile(0.5) == 10 and t.quantile(1.0) == 500
    registry.set_buckets("lookup", [2, 4])
    assert registry.timer("lookup", task="t").bounds == (2.0, 4.0)
    assert registry.timer("other").bounds == (1.0, 10.0, 100.0)
    with pytest.raises(ConfigError, match="strictly increasing"):
        Registry(buckets_ms=[5, 1])
    with pytest.raises(ConfigError, match="positive"):
        registry.set_buckets("x", [])


def test_deltas_give_what_changed_since_the_last_call() -> None:
    registry = Registry(buckets_ms=[10])
    c = registry.counter("c")
    t = registry.timer("t")
    deltas = Deltas()
    c.inc(5)
    t.observe(3, n=2)
    assert deltas.counter(c) == 5 and deltas.timer(t) == [(2, 6.0), (0, 0.0)]
    c.inc(2)
    t.observe(20)
    assert deltas.counter(c) == 2 and deltas.timer(t) == [(0, 0.0), (1, 20.0)]
    assert deltas.counter(c) == 0


def test_function_gauges_are_sampled_by_the_owner_and_a_failing_one_keeps_its_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry()
    value = {"n": 4.0}

    def read() -> float:
        if value["n"] < 0:
            raise RuntimeError("gone")
        return value["n"]

    g = registry.gauge("depth", read, topology="x")
    registry.sample_gauges()
    assert g.value == 4
    value["n"] = -1
    with caplog.at_level(logging.WARNING, logger="pytempest.metrics"):
        registry.sample_gauges()
        registry.sample_gauges()
    assert g.value == 4
    assert len([r for r in caplog.records if "could not be read" in r.getMessage()]) == 1


class Recorder(MetricTarget):
    kind = "recorder"

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, dict[str, float]]] = []
        self.fail = fail

    def open(self, registry: Registry) -> None:
        self.calls.append(("open", threading.current_thread().name, {}))

    def flush(self, registry: Registry) -> None:
        self.calls.append(("flush", threading.current_thread().name, registry.snapshot()))
        if self.fail:
            raise RuntimeError("backend down")

    def close(self) -> None:
        self.calls.append(("close", threading.current_thread().name, {}))


def test_targets_run_in_their_own_thread_and_the_last_flush_has_the_final_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @task("slow")
    async def slow(body: bytes) -> list[bytes]:
        await asyncio.sleep(0.002)  # so that the run spans several flush intervals
        return [body] * 50

    @task("T4")
    def sink(body: bytes) -> None:
        return None

    good, bad = Recorder(), Recorder(fail=True)
    topology = Topology(
        "book", Pipeline().task(slow).task(sink).edge("slow", "T4"),
        MemorySource([f"m{i}" for i in range(50)], read_count=2),
        metric_targets=[good, bad], metric_flush_interval_ms=5, max_pending=1,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="pytempest.metrics"):
        metrics = TestRun(topology).run(timeout_ms=20_000)
    assert metrics.reason == "idle"
    for target in (good, bad):
        kinds = [c[0] for c in target.calls]
        assert kinds[0] == "open" and kinds[-1] == "close" and "flush" in kinds
        threads = {c[1] for c in target.calls}
        assert len(threads) == 1 and threads != {threading.main_thread().name}
        last_flush = [c[2] for c in target.calls if c[0] == "flush"][-1]
        assert last_flush["book.source.msg.acked.success"] == 50
        assert last_flush["book.T4.task.msg.handle"] == 50 * 50
    assert good.calls[0][1] != bad.calls[0][1]
    # A failing target is logged once a minute, not once per flush, and kept.
    assert len([r for r in caplog.records if "failed to flush" in r.getMessage()]) == 1
    assert [c[0] for c in bad.calls].count("flush") >= 2


def test_a_target_that_cannot_open_fails_the_run_and_closes_the_others() -> None:
    class Broken(Recorder):
        def open(self, registry: Registry) -> None:
            raise OSError("cannot open")

    first = Recorder()
    topology = Topology(
        "broken", Pipeline().task(task("t")(lambda b: None)), MemorySource(["x"]),
        metric_targets=[first, Broken()],
    )  # fmt: skip
    with pytest.raises(OSError, match="cannot open"):
        TestRun(topology).run(timeout_ms=5_000)
    assert [c[0] for c in first.calls] == ["open", "close"]


def test_flusher_close_is_bounded_when_a_target_hangs() -> None:
    release = threading.Event()

    class Stuck(Recorder):
        def flush(self, registry: Registry) -> None:
            release.wait(10)

    async def main() -> None:
        flusher = MetricsFlusher(Registry(), [Stuck()], interval_ms=1)
        await flusher.open()
        flusher.flush()
        await flusher.close(timeout_ms=100)  # returns although the flush is stuck

    asyncio.run(main())
    release.set()


def test_metrics_off_counts_nothing_of_the_engine_but_still_runs(book: Callable[[], Pipeline]) -> None:
    @task("count")
    def count(body: bytes) -> None:
        count.metrics.incr("words")

    topology = Topology("off", Pipeline().task(count), MemorySource(["a", "b", "c"]))
    source = topology.source

    async def main() -> dict[str, float]:
        engine = Engine(topology, metrics=False)
        assert await engine.run(until_idle=True) == "idle"
        return engine.snapshot()

    snapshot = asyncio.run(main())
    assert source.acked == ["0", "1", "2"]  # type: ignore[attr-defined]
    assert snapshot["off.count.words"] == 3  # the task's own metrics still count
    assert "off.source.msg.read" not in snapshot
    assert "off.count.task.msg.handle" not in snapshot
