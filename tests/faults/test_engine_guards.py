"""The engine's guards the fault scenarios rely on, tested in process:

* a ``PayloadError`` (codec: too large, malformed) is dead-lettered after one attempt;
* a message the source delivered too often is dead-lettered without being run (a
  message that kills its process cannot crash-loop it);
* a done message holds its ``max_pending`` slot until its ack returned (so what a crash
  can make run twice is bounded by ``max_pending``);
* failpoints are off unless armed, and refuse unknown names.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Sequence

import pytest

from pytempest import FailurePolicy, Pipeline, Task, TestRun, Topology
from pytempest.codecs import JsonCodec
from pytempest.deadletters import MemoryDeadLetter
from pytempest.engine.executor import TaskFailure
from pytempest.model.message import SourceMsg
from pytempest.model.policy import AckPolicy
from pytempest.runtimes.redis_bus import wire
from pytempest.sources import MemorySource


class Parse(Task):
    name = "parse"

    def __init__(self) -> None:
        self.codec = JsonCodec(max_bytes=1000, max_depth=4)
        self.calls: Counter[bytes] = Counter()

    def handle(self, body: bytes) -> None:
        self.calls[body[:20]] += 1
        self.codec.decode(body)


@pytest.mark.parametrize("threaded", [False, True])
def test_payload_errors_are_dead_lettered_after_one_attempt(threaded: bool) -> None:
    parse = Parse()
    parse.threaded = threaded
    big = b'{"a": "' + b"x" * 5000 + b'"}'
    bodies = [b'{"ok": 1}', b'{"broken', big, b"[[[[[1]]]]]", b'{"ok": 2}']
    dead = MemoryDeadLetter()
    topology = Topology("payload", Pipeline().task(parse), MemorySource(bodies),
                        failure_policy=FailurePolicy.retry(3, delay_ms=10), dead_letter=dead)  # fmt: skip
    metrics = TestRun(topology).run(timeout_ms=10_000)

    assert metrics.reason == "idle"
    assert metrics.get_int("payload.source.msg.acked.success") == 5
    assert metrics.get_int("payload.topology.source.msg.retry.queued") == 0
    assert all(n == 1 for n in parse.calls.values()), parse.calls
    reasons = {r.body[:9]: (r.reason, r.attempts) for r in dead.records}
    assert reasons == {b'{"broken': ("decode_error", 1), big[:9]: ("too_large", 1),
                       b"[[[[[1]]]": ("decode_error", 1)}  # fmt: skip
    too_large = next(r for r in dead.records if r.reason == "too_large")
    assert "5009 bytes is over max_bytes=1000" in too_large.error
    assert "x" * 40 not in too_large.error  # a short prefix, never the whole body
    assert too_large.body == big  # the record keeps the body: nothing is lost


def test_a_payload_failure_keeps_its_reason_on_the_wire() -> None:
    failure = TaskFailure("PayloadError", "json payload ...", "tb", True, "too_large")
    assert wire.failure_from_wire(wire.failure_to_wire(failure)) == failure
    plain = TaskFailure("ValueError", "boom", "tb", False)
    assert wire.failure_to_wire(plain) == ["ValueError", "boom", "tb", False]  # as before
    assert wire.failure_from_wire(wire.failure_to_wire(plain)) == plain


class Redelivering(MemorySource):
    """Serves its messages with the delivery counts given (as after crashes)."""

    def __init__(self, deliveries: Sequence[int]) -> None:
        super().__init__([f"m{i}" for i in range(len(deliveries))])
        self._queue = type(self._queue)(
            dataclasses.replace(m, deliveries=d) for m, d in zip(self._queue, deliveries, strict=True)
        )


@pytest.mark.parametrize(("policy", "limit"), [("retry(1)", 5), ("retry(7)", 8), ("best_effort", 5)])
def test_a_message_delivered_too_often_is_not_run_again(policy: str, limit: int) -> None:
    ran: list[bytes] = []

    class Record(Task):
        name = "record"

        def handle(self, body: bytes) -> None:
            ran.append(body)

    dead = MemoryDeadLetter()
    source = Redelivering([1, limit, limit + 1, 40])
    topology = Topology("crashy", Pipeline().task(Record()), source, failure_policy=FailurePolicy.parse(policy),
                        dead_letter=dead)  # fmt: skip
    metrics = TestRun(topology).run(timeout_ms=10_000)

    assert ran == [b"m0", b"m1"]
    assert sorted(source.acked) == ["0", "1", "2", "3"]  # every message ends with an outcome
    if policy.startswith("retry"):
        assert [(r.source_id, r.reason, r.attempts) for r in dead.records] == [
            ("2", "max_deliveries", limit + 1), ("3", "max_deliveries", 40)]  # fmt: skip
        assert "never finished" in dead.records[0].error
    else:
        assert dead.records == []
        assert metrics.get_int("crashy.topology.source.msg.error") == 2


class SlowAck(MemorySource):
    """Its acks wait until the test lets them through; records the reads."""

    def __init__(self, n: int) -> None:
        super().__init__([f"m{i}" for i in range(n)], ack_policy=AckPolicy.batch(1000, ack_interval_ms=5000))
        self.gate = asyncio.Event()
        self.max_read_unacked = 0
        self.read = 0

    async def poll(self, max_count: int) -> list[SourceMsg]:
        msgs = await super().poll(max_count)
        self.read += len(msgs)
        self.max_read_unacked = max(self.max_read_unacked, self.read - len(self.acked))
        return msgs

    async def ack(self, ids: Sequence[str]) -> None:
        await self.gate.wait()
        await super().ack(ids)


def test_done_messages_hold_their_slot_until_their_ack_returns() -> None:
    source = SlowAck(50)
    topology = Topology("slots", Pipeline().task(Parse()), source, max_pending=10)

    async def scenario() -> None:
        run = TestRun(topology)
        task = asyncio.ensure_future(run.arun(timeout_ms=20_000))
        for _ in range(100):  # bounded: 1 s
            await asyncio.sleep(0.01)
            if source.read >= 10:
                break
        await asyncio.sleep(0.2)  # the acks hang: nothing more may be read
        assert source.read == 10
        source.gate.set()
        metrics = await task
        assert metrics.reason == "idle"

    asyncio.run(scenario())
    assert sorted(source.acked, key=int) == [str(i) for i in range(50)]
    assert source.max_read_unacked == 10
    # With no room left the batch was sent at once, not after its 5 s interval.
    assert source.ack_calls >= 5


def test_failpoints_are_parsed_strictly() -> None:
    from pytempest import failpoints

    assert failpoints.ARMED == {}  # unset in the test process: every hook is one truth test
    assert failpoints.parse("engine.before_ack@3, source.after_read") == {
        "engine.before_ack": 3, "source.after_read": 1}  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown failpoint 'engine\.nope'"):
        failpoints.parse("engine.nope")
    with pytest.raises(ValueError, match=">= 1"):
        failpoints.parse("engine.before_ack@0")


def test_until_idle_acks_at_once_instead_of_waiting_for_the_batch_interval() -> None:
    class Noop(Task):
        name = "noop"

        def handle(self, body: bytes) -> None:
            return None

    source = MemorySource([b"x"] * 5, ack_policy=AckPolicy.batch(1000, ack_interval_ms=600_000))
    metrics = TestRun(Topology("idle", Pipeline().task(Noop()), source)).run(timeout_ms=5_000)
    assert metrics.reason == "idle"  # not "timeout": the acks did not wait 10 minutes
    assert sorted(source.acked) == ["0", "1", "2", "3", "4"]


class Outage(MemorySource):
    """Its monitor always fails; its acks fail ``ack_failures`` times, then work."""

    monitor_interval_ms = 10

    def __init__(self, n: int, ack_failures: int) -> None:
        super().__init__([f"m{i}" for i in range(n)], ack_policy=AckPolicy.individual())
        self.ack_failures = ack_failures

    async def monitor(self) -> None:
        raise ConnectionError("the monitor's Redis is gone")

    async def ack(self, ids: Sequence[str]) -> None:
        if self.ack_failures > 0:
            self.ack_failures -= 1
            raise ConnectionError("the ack's Redis is gone")
        await super().ack(ids)


def test_an_outage_is_logged_once_not_once_per_attempt(caplog: pytest.LogCaptureFixture) -> None:
    class Noop(Task):
        name = "noop"

        def handle(self, body: bytes) -> None:
            return None

    source = Outage(3, ack_failures=3)
    with caplog.at_level("INFO", logger="pytempest"):
        TestRun(Topology("storm", Pipeline().task(Noop()), source)).run(duration_ms=600, until_idle=False)
    lines = [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert sum("source monitor failed" in line for line in lines) == 1, lines  # ~60 failures, one line
    assert sum("acking" in line for line in lines) == 1, lines  # 3 failed acks, one line
    assert any("acks succeed again after 3 failures" in r.getMessage() for r in caplog.records)
    assert sorted(source.acked) == ["0", "1", "2"]


def test_a_source_that_cannot_connect_at_start_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    from pytempest.errors import SourceConnectionError

    class Late(MemorySource):
        failures = 4

        async def setup(self) -> None:
            if self.failures:
                self.failures -= 1
                raise SourceConnectionError("cannot reach Redis at redis://u:***@db:6379/0")

    class Noop(Task):
        name = "noop"

        def handle(self, body: bytes) -> None:
            return None

    source = Late([b"a", b"b"])
    with caplog.at_level("INFO", logger="pytempest"):
        metrics = TestRun(Topology("late", Pipeline().task(Noop()), source)).run(timeout_ms=10_000)
    assert metrics.reason == "idle" and sorted(source.acked) == ["0", "1"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("not reachable" in m for m in messages) == 1, messages  # 4 attempts, one line
    assert any("reachable after 4 failed attempts" in m for m in messages)
