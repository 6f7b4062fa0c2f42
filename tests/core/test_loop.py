"""The engine loop: backpressure, backoff on errors, ack policies, flush on shutdown."""

from __future__ import annotations

import asyncio

import pytest

from pytempest import AckPolicy, Pipeline, TestRun, Topology
from pytempest.engine.engine import Engine
from pytempest.errors import SourceError
from pytempest.sources import MemorySource

from .helpers import Emit, FlakySource, LoadRecorder


def test_max_pending_bounds_what_is_in_flight() -> None:
    recorder = LoadRecorder()
    slow = Emit("slow", 0, sleep_s=0.002, threaded=True)
    topology = Topology("bp", Pipeline().task(slow), MemorySource([b"x"] * 300), max_pending=7)
    run = TestRun(topology, observers=[recorder])
    original = Engine.__init__

    def capture(self: Engine, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        recorder.engine = self

    Engine.__init__ = capture  # type: ignore[method-assign]
    try:
        metrics = run.run(timeout_ms=20_000)
    finally:
        Engine.__init__ = original  # type: ignore[method-assign]
    assert metrics["bp.source.msg.acked.success"] == 300
    assert recorder.max_load == 7  # reached, never exceeded


def test_poll_errors_back_off_and_never_stop_the_topology() -> None:
    source = FlakySource([b"m%d" % i for i in range(50)])
    metrics = TestRun(Topology("flaky", Pipeline().task(Emit("a", 0)), source)).run()
    assert metrics["flaky.source.msg.acked.success"] == 50
    assert metrics["flaky.source.poll.error"] >= 8
    assert sorted(source.acked, key=int) == [str(i) for i in range(50)]


@pytest.mark.parametrize(
    ("policy", "max_ids_per_call"),
    [(AckPolicy.individual(), 1), (AckPolicy.batch(10, ack_interval_ms=20), 10)],
)
def test_ack_policies(policy: AckPolicy, max_ids_per_call: int) -> None:
    calls: list[int] = []

    class Recording(MemorySource):
        async def ack(self, ids):  # type: ignore[no-untyped-def]
            calls.append(len(ids))
            await super().ack(ids)

    source = Recording([b"x"] * 95, ack_policy=policy)
    metrics = TestRun(Topology("acks", Pipeline().task(Emit("a", 0)), source)).run()
    assert sorted(source.acked, key=int) == [str(i) for i in range(95)]
    assert max(calls) <= max_ids_per_call
    assert sum(calls) == 95
    assert metrics["acks.source.msg.acked.success"] == 95


def test_ack_policy_none_never_acks() -> None:
    source = MemorySource([b"x"] * 5, ack_policy=AckPolicy.none())
    metrics = TestRun(Topology("noack", Pipeline().task(Emit("a", 0)), source)).run()
    assert source.acked == []
    assert metrics["noack.topology.source.msg.ack"] == 5


def test_pending_batch_acks_are_flushed_on_shutdown() -> None:
    source = MemorySource([b"x"] * 5, ack_policy=AckPolicy.batch(1000, ack_interval_ms=600_000))
    TestRun(Topology("flush", Pipeline().task(Emit("a", 0)), source)).run()
    assert sorted(source.acked) == ["0", "1", "2", "3", "4"]


def test_failed_acks_are_retried() -> None:
    class Unreliable(MemorySource):
        fails = 2

        async def ack(self, ids):  # type: ignore[no-untyped-def]
            if self.fails:
                self.fails -= 1
                raise ConnectionError("ack lost")
            await super().ack(ids)

    source = Unreliable([b"x"] * 3, ack_policy=AckPolicy.batch(10, ack_interval_ms=1))
    metrics = TestRun(Topology("ackretry", Pipeline().task(Emit("a", 0)), source)).run()
    assert sorted(source.acked) == ["0", "1", "2"]
    assert metrics["ackretry.source.msg.acked.success"] == 3
    assert metrics["ackretry.source.msg.acked.error"] >= 2


def test_source_setup_error_is_raised_clearly() -> None:
    class Broken(MemorySource):
        async def setup(self) -> None:
            raise SourceError("bucket 'x' does not exist")

    engine = Engine(Topology("nosetup", Pipeline().task(Emit("a", 0)), Broken()))
    with pytest.raises(SourceError, match="bucket 'x' does not exist"):
        asyncio.run(engine.run(until_idle=True))
