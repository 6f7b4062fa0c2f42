"""The engine end to end in process: counts, release modes, task kinds, outputs, hooks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from pytempest import AckPolicy, FailurePolicy, Pipeline, Task, TestRun, Topology, task
from pytempest.engine.engine import Engine
from pytempest.engine.events import EngineObserver
from pytempest.model.message import SourceMsg
from pytempest.sources import MemorySource

from .helpers import Emit, book_dag


def test_issue_example_wordcount() -> None:
    class Split(Task):
        name = "split"

        def handle(self, msg: bytes) -> list[bytes]:
            return msg.split()

    @task("count")
    def count(msg: bytes) -> None: ...

    pipeline = Pipeline().task(Split()).task(count).edge("split", "count")
    topology = Topology(
        "wordcount",
        pipeline,
        source=MemorySource([b"a b", b"c"]),
        failure_policy=FailurePolicy.retry(3, delay_ms=50),
        msg_timeout_ms=5_000,
    )
    metrics = TestRun(topology).run(until_idle=True, timeout_ms=10_000)
    assert metrics.reason == "idle"
    assert metrics["wordcount.source.msg.acked.success"] == 2
    assert metrics["wordcount.count.task.msg.handle"] == 3


@pytest.mark.parametrize("release", ["stage", "stream"])
def test_book_dag_counts(release: str) -> None:
    pipeline = book_dag()
    pipeline.release = release  # type: ignore[assignment]
    source = MemorySource([b"m%d" % i for i in range(200)])
    metrics = TestRun(Topology("book", pipeline, source)).run()
    assert metrics["book.T1.task.msg.handle"] == 200
    assert metrics["book.T2.task.msg.handle"] == 2000
    assert metrics["book.T3.task.msg.handle"] == 2000
    assert metrics["book.T4.task.msg.handle"] == 10000
    assert metrics["book.T2.task.msg.outflow"] == 10000
    assert metrics["book.source.msg.acked.success"] == 200
    assert sorted(source.acked, key=int) == [str(i) for i in range(200)]
    assert metrics["book.pipeline.inflight"] == 0


def test_original_bug_a_in_the_engine() -> None:
    # T2 is slow (threaded) so T3's dead end arrives first; T5 must still run.
    t5 = Emit("T5", 0)
    pipeline = (
        Pipeline()
        .task(Emit("T1", 1))
        .task(Emit("T2", 2, sleep_s=0.05, threaded=True))
        .task(Emit("T3", 0))
        .task(Emit("T4", 1))
        .task(t5)
        .edges(("T1", "T2"), ("T1", "T3"), ("T2", "T4"), ("T3", "T4"), ("T4", "T5"))
    )
    source = MemorySource([b"a", b"b", b"c"])
    metrics = TestRun(Topology("bug_a", pipeline, source)).run()
    assert t5.calls == 6
    assert metrics["bug_a.T5.task.msg.handle"] == 6
    assert metrics["bug_a.source.msg.acked.success"] == 3


def test_original_bug_b_state_is_freed_after_dead_ends_and_filters() -> None:
    @task("gate", filter=lambda body: body.startswith(b"keep"))
    def gate(body: bytes) -> list[bytes]:
        return [body]

    @task("maybe")
    def maybe(body: bytes) -> list[bytes] | None:
        return None if body.endswith(b"0") else [body]

    sink = Emit("sink", 0)
    pipeline = Pipeline().task(gate).task(maybe).task(sink).edges(("gate", "maybe"), ("maybe", "sink"))
    source = MemorySource([b"keep1", b"drop", b"keep0", b"drop2", b"keep3"])
    run = TestRun(Topology("bug_b", pipeline, source))
    metrics = run.run()
    engine = run.engine
    assert engine is not None
    assert engine.inflight == {}
    assert len(engine.wheel) == 0
    assert metrics["bug_b.pipeline.inflight"] == 0
    assert metrics["bug_b.gate.task.msg.skipped"] == 2
    assert metrics["bug_b.source.msg.acked.success"] == 5
    assert sink.calls == 2


def test_async_threaded_and_inline_tasks_together() -> None:
    seen_threads: set[str] = set()

    @task("inline")
    def inline(body: bytes) -> list[bytes]:
        return [body + b"!", body + b"?"]

    @task("io", threaded=True)
    def blocking(body: bytes) -> list[bytes]:
        seen_threads.add(threading.current_thread().name)
        time.sleep(0.001)
        return [body]

    @task("aio")
    async def aio(body: bytes) -> list[str]:
        await asyncio.sleep(0.001)
        return [body.decode() + "-async"]

    sink_bodies: list[bytes] = []

    @task("sink")
    def sink(body: bytes) -> None:
        sink_bodies.append(body)

    pipeline = (
        Pipeline().task(inline).task(blocking).task(aio).task(sink)
        .edges(("inline", "io"), ("io", "aio"), ("aio", "sink"))
    )  # fmt: skip
    metrics = TestRun(Topology("mixed", pipeline, MemorySource([b"x", b"y"]))).run()
    assert metrics["mixed.source.msg.acked.success"] == 2
    assert sorted(sink_bodies) == [b"x!-async", b"x?-async", b"y!-async", b"y?-async"]
    assert seen_threads and all(n.startswith("pytempest-task") for n in seen_threads)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_threaded_task_runs_at_most_concurrency_batches_at_once(concurrency: int) -> None:
    lock = threading.Lock()
    running = peak = 0

    @task("io", threaded=True, concurrency=concurrency)
    def blocking(body: bytes) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002)
        with lock:
            running -= 1

    source = MemorySource([b"%d" % i for i in range(60)])
    metrics = TestRun(Topology("bounded", Pipeline().task(blocking), source, max_pending=60)).run()
    assert metrics["bounded.source.msg.acked.success"] == 60
    assert metrics["bounded.io.task.msg.handle"] == 60
    assert peak == concurrency  # reached (60 messages wait) and never passed


@pytest.mark.parametrize("threaded", [False, True])
def test_batch_acks_go_out_at_once_when_nothing_else_runs(threaded: bool) -> None:
    """A batch policy with a long interval still acks an idle topology's messages at
    once (inline: the cohort path; threaded: the per-batch path)."""

    @task("t", threaded=threaded)
    def t(body: bytes) -> None:
        return None

    class StopOnAck(EngineObserver):
        engine: Engine

        def acked(self, count: int, ok: bool) -> None:
            self.engine.request_stop("requested")

    source = MemorySource([b"a", b"b", b"c"], ack_policy=AckPolicy.batch(1000, ack_interval_ms=600_000))
    stop = StopOnAck()
    engine = stop.engine = Engine(Topology("idle_ack", Pipeline().task(t), source), observers=[stop])
    reason = asyncio.run(engine.run(duration_ms=20_000))
    assert reason == "requested"  # acked long before the interval, or the duration, ran out
    assert sorted(source.acked) == ["0", "1", "2"]


def test_a_short_read_is_acked_before_the_next_poll() -> None:
    """When a poll returns fewer than it could (the source is drained) and its messages
    are done, the poller acks them before it polls again, as a hand-written loop would."""
    calls: list[str] = []

    class Logged(MemorySource):
        async def poll(self, max_count: int) -> list[SourceMsg]:
            msgs = await super().poll(max_count)
            calls.append(f"poll {len(msgs)}")
            return msgs

        async def ack(self, ids: Sequence[str]) -> None:
            calls.append(f"ack {len(ids)}")
            await asyncio.sleep(0.05)  # a round trip: the next poll must wait for it
            await super().ack(ids)
            calls.append("acked")

    @task("t")
    def t(body: bytes) -> None:
        return None

    source = Logged([b"a", b"b", b"c"], ack_policy=AckPolicy.batch(1000, ack_interval_ms=600_000))
    TestRun(Topology("short_read", Pipeline().task(t), source)).run(until_idle=True, timeout_ms=10_000)
    assert calls[:4] == ["poll 3", "ack 3", "acked", "poll 0"]


def test_failing_acks_are_retried_with_a_growing_pause_not_on_every_poll() -> None:
    """After an ack failed, a short read no longer acks in the poller: the acker's growing
    pause spaces the retries, however many short reads come in."""
    ack_calls = 0

    class Flaky(MemorySource):
        async def poll(self, max_count: int) -> list[SourceMsg]:
            self.push(b"m")  # a short read of one message, every poll
            await asyncio.sleep(0.002)
            return await super().poll(max_count)

        async def ack(self, ids: Sequence[str]) -> None:
            nonlocal ack_calls
            ack_calls += 1
            if time.monotonic() < refuse_until:
                raise ConnectionError("ack refused")
            await super().ack(ids)

    @task("t")
    def t(body: bytes) -> None:
        return None

    source = Flaky([], ack_policy=AckPolicy.batch(1000, ack_interval_ms=600_000))
    engine = Engine(Topology("flaky_ack", Pipeline().task(t), source, max_pending=100_000))
    refuse_until = time.monotonic() + 1.0
    asyncio.run(engine.run(duration_ms=1000))
    # About 400 short reads in that second; the pauses (50, 100, 200, 400 ms) allow a few
    # attempts, then the stop's flush succeeds.
    assert 2 <= ack_calls <= 12, ack_calls
    assert len(source.acked) > 100


def test_str_outputs_are_encoded_and_generators_accepted() -> None:
    got: list[bytes] = []

    @task("gen")
    def gen(body: bytes):  # type: ignore[no-untyped-def]
        yield "é"
        yield bytearray(b"raw")

    @task("sink")
    def sink(body: bytes) -> None:
        got.append(body)

    TestRun(Topology("enc", Pipeline().task(gen).task(sink).edge("gen", "sink"), MemorySource([b"1"]))).run()
    assert sorted(got) == [b"raw", "é".encode()]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (b"abc", "returned bytes b'abc'"),
        ("abc", "returned str 'abc'"),
        (42, "returned int 42"),
        ([b"ok", 7], "emitted int 7"),
    ],
)
def test_bad_outputs_fail_the_message_with_a_clear_error(
    value: object, fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    @task("bad")
    def bad(body: bytes) -> object:
        return value

    @task("sink")
    def sink(body: bytes) -> None: ...

    topology = Topology(
        "badout",
        Pipeline().task(bad).task(sink).edge("bad", "sink"),
        MemorySource([b"1"]),
        failure_policy=FailurePolicy.best_effort(),
    )
    metrics = TestRun(topology).run()
    assert metrics["badout.bad.task.msg.error"] == 1
    assert metrics["badout.topology.source.msg.error"] == 1
    assert "task 'bad' " + fragment in caplog.text


def test_setup_and_teardown_hooks_run_once() -> None:
    events: list[str] = []

    class Hooked(Task):
        name = "hooked"

        def setup(self) -> None:
            events.append("setup")

        async def teardown(self) -> None:  # type: ignore[override]
            events.append("teardown")

        def handle(self, body: bytes) -> None:
            events.append("handle")
            raise RuntimeError("fails, teardown still runs")

    topology = Topology(
        "hooks", Pipeline().task(Hooked()), MemorySource([b"1"]), failure_policy=FailurePolicy.best_effort()
    )
    TestRun(topology).run()
    assert events == ["setup", "handle", "teardown"]


def test_task_metrics_context() -> None:
    class Parity(Task):
        name = "parity"

        def handle(self, body: bytes) -> None:
            self.metrics.incr("even" if int(body) % 2 == 0 else "odd")

    metrics = TestRun(
        Topology("ctx", Pipeline().task(Parity()), MemorySource([str(i) for i in range(9)]))
    ).run()
    assert metrics["ctx.parity.even"] == 5
    assert metrics["ctx.parity.odd"] == 4


def test_duration_stops_a_run_that_never_idles() -> None:
    source = MemorySource([b"x"] * 5)
    metrics = TestRun(Topology("dur", Pipeline().task(Emit("a", 0)), source)).run(
        until_idle=False, duration_ms=200
    )
    assert metrics.reason == "duration"
    assert metrics["dur.source.msg.acked.success"] == 5


def test_a_dying_loop_stops_the_run_with_its_name() -> None:
    from pytempest.engine.engine import EngineError
    from pytempest.runtimes.inprocess import InProcessExecutor

    class Broken(InProcessExecutor):
        async def run(self) -> None:
            raise RuntimeError("executor bug")

    engine = Engine(Topology("dies", Pipeline().task(Emit("a", 0)), MemorySource([b"1"])), executor=Broken())
    with pytest.raises(EngineError, match="the executor loop died: RuntimeError: executor bug"):
        asyncio.run(engine.run(until_idle=True))


def test_duplicate_delivery_while_in_flight_is_skipped() -> None:
    class Twice(MemorySource):
        async def poll(self, max_count: int):  # type: ignore[no-untyped-def]
            msgs = await super().poll(max_count)
            return msgs + msgs

    slow = Emit("slow", 0, sleep_s=0.01, threaded=True)
    metrics = TestRun(Topology("dup", Pipeline().task(slow), Twice([b"a", b"b"]))).run()
    assert metrics["dup.topology.source.msg.duplicate"] == 2
    assert slow.calls == 2
    assert metrics["dup.source.msg.acked.success"] == 2


def test_a_failing_setup_names_the_task_and_tears_down_the_others() -> None:
    from pytempest.errors import TaskSetupError

    events: list[str] = []

    class Good(Task):
        name = "good"

        def setup(self) -> None:
            events.append("good setup")

        def teardown(self) -> None:
            events.append("good teardown")

        def handle(self, body: bytes) -> None: ...

    class Bad(Task):
        name = "bad"

        def setup(self) -> None:
            raise OSError("model file missing")

        def handle(self, body: bytes) -> None: ...

    topology = Topology(
        "setupfail", Pipeline().task(Good()).task(Bad()).edge("good", "bad"), MemorySource([b"1"])
    )
    with pytest.raises(TaskSetupError, match="setup\\(\\) of task 'bad' failed: OSError: model file missing"):
        TestRun(topology).run()
    assert events == ["good setup", "good teardown"]
