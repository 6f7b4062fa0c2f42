"""Failure policies, timeouts, retries and dead letters (DESIGN.md section 3)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from pytempest import FailurePolicy, Pipeline, TaskError, TestRun, Topology, task
from pytempest.deadletters import FileDeadLetter, MemoryDeadLetter
from pytempest.sources import MemorySource

from .helpers import Emit, always_fail


def test_policy_none_leaves_the_message_unacked_and_released() -> None:
    source = MemorySource([b"a", b"b"], requeue=False)
    metrics = TestRun(
        Topology("pnone", Pipeline().task(always_fail()), source, failure_policy=FailurePolicy.none())
    ).run()
    assert source.acked == []
    assert sorted(m.id for m in source.released) == ["0", "1"]
    assert metrics["pnone.topology.source.msg.error"] == 2
    assert metrics["pnone.topology.source.msg.ack.dropped{reason=failure_policy_none}"] == 2


def test_policy_none_redelivered_by_the_source_succeeds_later() -> None:
    seen: dict[bytes, int] = {}

    @task("flaky")
    def flaky(body: bytes) -> None:
        seen[body] = seen.get(body, 0) + 1
        if seen[body] == 1:
            raise TaskError("first delivery fails")

    source = MemorySource([b"a", b"b"])
    metrics = TestRun(
        Topology("redeliver", Pipeline().task(flaky), source, failure_policy=FailurePolicy.none())
    ).run()
    assert sorted(source.acked) == ["0", "1"]
    assert seen == {b"a": 2, b"b": 2}
    assert metrics["redeliver.topology.source.msg.error"] == 2


def test_best_effort_acks_failed_messages() -> None:
    source = MemorySource([b"a", b"b", b"c"])
    metrics = TestRun(
        Topology("best", Pipeline().task(always_fail()), source, failure_policy=FailurePolicy.best_effort())
    ).run()
    assert sorted(source.acked) == ["0", "1", "2"]
    assert metrics["best.topology.source.msg.error"] == 3
    assert metrics["best.topology.source.msg.ack"] == 0


def test_retry_then_dead_letter_then_ack() -> None:
    dead = MemoryDeadLetter()
    source = MemorySource([b"poison"])
    metrics = TestRun(
        Topology(
            "dl",
            Pipeline().task(Emit("first", 1)).task(always_fail("boom")).edge("first", "boom"),
            source,
            failure_policy=FailurePolicy.retry(2, delay_ms=10),
            dead_letter=dead,
        )
    ).run()
    assert len(dead.records) == 1
    record = dead.records[0]
    assert record.attempts == 3
    assert record.task == "boom"
    assert record.body == b"poison"
    assert record.reason == "error"
    assert record.error == "ValueError: cannot handle b'poison'"
    assert record.source_id == "0"
    assert record.first_failure_ms <= record.last_failure_ms
    assert source.acked == ["0"]
    assert metrics["dl.topology.source.msg.retry.queued"] == 2
    assert metrics["dl.topology.source.msg.deadletter"] == 1
    assert metrics["dl.boom.task.msg.handle"] == 3


def test_retry_exhausted_without_dead_letter_acks_with_an_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = MemorySource([b"x"])
    with caplog.at_level(logging.ERROR, logger="pytempest.engine"):
        metrics = TestRun(
            Topology(
                "drop",
                Pipeline().task(always_fail()),
                source,
                failure_policy=FailurePolicy.retry(1, delay_ms=5),
            )
        ).run()
    assert source.acked == ["0"]
    assert metrics["drop.topology.source.msg.retry.dropped"] == 1
    assert "message 0 gave up after 2 attempts" in caplog.text
    assert "set one so failed messages are kept" in caplog.text


def test_retry_succeeds_on_a_later_attempt_with_growing_delays() -> None:
    attempts: list[float] = []

    @task("third_time_lucky")
    def lucky(body: bytes) -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise TaskError("not yet")

    source = MemorySource([b"x"])
    metrics = TestRun(
        Topology("lucky", Pipeline().task(lucky), source, failure_policy=FailurePolicy.retry(3, delay_ms=40))
    ).run()
    assert source.acked == ["0"]
    assert metrics["lucky.source.msg.acked.success"] == 1
    assert metrics["lucky.topology.source.msg.retry.queued"] == 2
    assert attempts[1] - attempts[0] >= 0.040
    assert attempts[2] - attempts[1] >= 0.080  # the delay doubles


def test_delay_schedule() -> None:
    policy = FailurePolicy.retry(5, delay_ms=100, max_delay_ms=350)
    assert [policy.delay_for(a) for a in range(1, 6)] == [100, 200, 350, 350, 350]
    assert policy.may_retry(5) and not policy.may_retry(6)


def test_first_error_wins_and_late_results_are_ignored() -> None:
    calls = 0
    lock = threading.Lock()

    @task("each", batch=1, threaded=True)
    def each(body: bytes) -> None:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.002)
        raise ValueError("every one fails")

    dead = MemoryDeadLetter()
    source = MemorySource([b"m"])
    metrics = TestRun(
        Topology(
            "first_wins",
            Pipeline().task(Emit("fan", 10)).task(each).edge("fan", "each"),
            source,
            failure_policy=FailurePolicy.retry(1, delay_ms=1),
            dead_letter=dead,
        )
    ).run()
    assert metrics["first_wins.topology.source.msg.error"] == 2  # one per attempt, not one per failing call
    assert metrics["first_wins.topology.source.msg.retry.queued"] == 1
    assert len(dead.records) == 1
    assert source.acked == ["0"]


def test_timeout_found_by_the_timer_while_the_task_still_sleeps() -> None:
    release = threading.Event()

    @task("stuck", threaded=True)
    def stuck(body: bytes) -> None:
        if body == b"slow":
            release.wait(5)

    source = MemorySource([b"slow", b"fast"])
    dead = MemoryDeadLetter()
    topology = Topology(
        "tmo",
        Pipeline().task(stuck),
        source,
        msg_timeout_ms=100,
        failure_policy=FailurePolicy.retry(0),
        dead_letter=dead,
    )
    run = TestRun(topology)
    metrics = run.run(timeout_ms=4000)
    release.set()
    assert metrics["tmo.topology.source.msg.timeout"] == 1
    assert [r.reason for r in dead.records] == ["timeout"]
    assert dead.records[0].error == "timed out after 100 ms"
    assert sorted(source.acked) == ["0", "1"]
    assert metrics.reason == "idle"


def test_async_timeout_then_late_result_is_stale() -> None:
    @task("sleepy")
    async def sleepy(body: bytes) -> list[bytes]:
        await asyncio.sleep(0.3)
        return [body]

    sink = Emit("sink", 0)
    source = MemorySource([b"a"])
    topology = Topology(
        "late",
        Pipeline().task(sleepy).task(sink).edge("sleepy", "sink"),
        source,
        msg_timeout_ms=50,
        failure_policy=FailurePolicy.best_effort(),
    )
    metrics = TestRun(topology).run(until_idle=False, duration_ms=600)
    assert metrics["late.topology.source.msg.timeout"] == 1
    assert metrics["late.topology.task.result.stale"] == 1
    assert sink.calls == 0
    assert source.acked == ["0"]


def test_file_dead_letter_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "dead" / "letters.jsonl"
    dead = FileDeadLetter(path)
    source = MemorySource([b"\xff\x00binary", "text"])
    TestRun(
        Topology(
            "fdl",
            Pipeline().task(always_fail()),
            source,
            failure_policy=FailurePolicy.retry(0),
            dead_letter=dead,
        )
    ).run()
    records = sorted(dead.read(), key=lambda r: r.source_id)
    assert [r.body for r in records] == [b"\xff\x00binary", b"text"]
    assert all(r.attempts == 1 and r.task == "boom" for r in records)
    assert sorted(source.acked) == ["0", "1"]


def test_a_dead_letter_that_fails_leaves_the_message_unacked() -> None:
    from pytempest.deadletters import DeadLetter

    class Refusing(DeadLetter):
        async def put(self, records):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    source = MemorySource([b"a"], requeue=False)
    metrics = TestRun(
        Topology(
            "dlfail",
            Pipeline().task(always_fail()),
            source,
            failure_policy=FailurePolicy.retry(0),
            dead_letter=Refusing(),
        )
    ).run()
    assert source.acked == []
    assert [m.id for m in source.released] == ["0"]
    assert metrics["dlfail.topology.deadletter.error"] == 1
