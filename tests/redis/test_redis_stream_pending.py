"""Pending entries of a stream: handlers, dead letters, poison messages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis

from pytempest import AckPolicy, ConfigError, FailurePolicy, Pipeline, Topology
from pytempest.config import configure
from pytempest.deadletters import MemoryDeadLetter, RedisStreamDeadLetter
from pytempest.deadletters.redis import record_from_fields
from pytempest.engine.events import EngineObserver
from pytempest.sources import MemorySource, PendingHandler, RedisStreamSource
from pytempest.sources.redis_stream import prime

from .helpers import Recorder, bind_metrics, run_until


def source(url: str, key: str, consumer: str, **options: Any) -> RedisStreamSource:
    options.setdefault("block_ms", 0)
    return RedisStreamSource(url, key, "g", consumer=consumer, **options)


def test_claim_takes_entries_of_other_consumers_never_its_own_in_flight(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:s"
    prime(redis_url, key, [b"m%d" % i for i in range(15)])
    claim_all = [PendingHandler("claim", min_idle_ms=0)]

    async def scenario() -> None:
        a = source(redis_url, key, "a", pending_handlers=claim_all)
        b = source(redis_url, key, "b", pending_handlers=claim_all)
        metrics_a, metrics_b = bind_metrics(a), bind_metrics(b)
        await a.setup()
        await b.setup()
        try:
            held = await a.poll(10)  # in flight at a
            await a.monitor()
            assert metrics_a.snapshot().get("t.source.msg.claimed", 0) == 0
            rest = await a.poll(100)
            assert [m.body for m in rest] == [b"m%d" % i for i in range(10, 15)]
            await b.monitor()  # a's entries are idle >= 0 ms and not b's: b takes them
            taken = await b.poll(100)
            assert [m.id for m in taken] == [m.id for m in held + rest]
            assert {m.deliveries for m in taken} == {2}
            assert metrics_b.snapshot()["t.source.msg.claimed"] == 15
            await b.ack([m.id for m in taken])
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())
    assert r.xpending(key, "g")["pending"] == 0


def test_released_entries_are_claimed_again_by_the_same_consumer(redis_url: str, key_prefix: str) -> None:
    key = f"{key_prefix}:s"
    prime(redis_url, key, [b"a", b"b", b"c"])

    async def scenario() -> None:
        s = source(redis_url, key, "a", pending_handlers=[PendingHandler("claim", min_idle_ms=0)])
        await s.setup()
        try:
            msgs = await s.poll(10)
            await s.release(msgs[:2])  # failure policy none: left pending
            await s.monitor()
            again = await s.poll(10)
            assert [(m.id, m.deliveries) for m in again] == [(m.id, 2) for m in msgs[:2]]
        finally:
            await s.close()

    asyncio.run(scenario())


def test_pending_entries_deleted_from_the_stream_are_acked_and_counted(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:s"
    ids = prime(redis_url, key, [b"a", b"b", b"c"])

    async def scenario() -> dict[str, float]:
        dead = source(redis_url, key, "dead")
        await dead.setup()
        await dead.poll(10)
        await dead.close()
        r.xdel(key, ids[1])
        s = source(redis_url, key, "b", pending_handlers=[PendingHandler("claim", min_idle_ms=0)])
        registry = bind_metrics(s)
        await s.setup()
        try:
            await s.monitor()
            assert [m.id for m in await s.poll(10)] == [ids[0], ids[2]]
        finally:
            await s.close()
        return registry.snapshot()

    snapshot = asyncio.run(scenario())
    assert snapshot["t.source.msg.missing"] == 1 and snapshot["t.source.msg.claimed"] == 2
    assert {p["message_id"].decode() for p in r.xpending_range(key, "g", "-", "+", 10)} == {ids[0], ids[2]}


def test_ack_and_delete_handlers_leave_nothing_pending(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    async def leave_pending(key: str, n: int) -> None:
        prime(redis_url, key, [b"x"] * n)
        dead = source(redis_url, key, "dead")
        await dead.setup()
        await dead.poll(n)
        await dead.close()

    async def scenario() -> dict[str, float]:
        await leave_pending(f"{key_prefix}:ack", 4)
        await leave_pending(f"{key_prefix}:del", 3)
        acker = source(redis_url, f"{key_prefix}:ack", "b", pending_handlers=[PendingHandler("ack", 0)])
        deleter = source(redis_url, f"{key_prefix}:del", "b", pending_handlers=[PendingHandler("delete", 0)])
        registry = bind_metrics(acker)
        deleter.metrics = acker.metrics
        for s in (acker, deleter):
            await s.setup()
            try:
                await s.monitor()
                assert await s.poll(10) == []
            finally:
                await s.close()
        return registry.snapshot()

    snapshot = asyncio.run(scenario())
    assert snapshot["t.source.msg.force_acked"] == 4 and snapshot["t.source.msg.deleted"] == 3
    assert r.xpending(f"{key_prefix}:ack", "g")["pending"] == 0 and r.xlen(f"{key_prefix}:ack") == 4
    assert r.xpending(f"{key_prefix}:del", "g")["pending"] == 0 and r.xlen(f"{key_prefix}:del") == 0


def test_handlers_apply_in_order_by_idle_time_and_delivery_count(redis_url: str, key_prefix: str) -> None:
    key = f"{key_prefix}:s"
    prime(redis_url, key, [b"poison"])
    letters = MemoryDeadLetter()
    handlers = [
        PendingHandler("dead_letter", min_idle_ms=0, times_delivered=3),
        PendingHandler("claim", min_idle_ms=0),
        PendingHandler("ack", min_idle_ms=60_000),  # never reached: claim comes first
    ]

    async def scenario() -> list[int]:
        s = source(redis_url, key, "a", pending_handlers=handlers, dead_letter=letters)
        await s.setup()
        deliveries = []
        try:
            for _ in range(4):
                msgs = await s.poll(10)
                deliveries.extend(m.deliveries for m in msgs)
                await s.release(msgs)  # fails every time, left pending
                await s.monitor()
        finally:
            await s.close()
        return deliveries

    assert asyncio.run(scenario()) == [1, 2, 3]
    [record] = letters.records
    assert (record.body, record.attempts, record.reason, record.source) == (
        b"poison",
        3,
        "pending_handler",
        f"redis_stream:{key}",
    )


class Order(EngineObserver):
    def __init__(self) -> None:
        self.events: list[str] = []

    def completed(self, state: Any, now_ms: int) -> None:
        self.events.append("completed")

    def dead_lettered(self, records: Any, ok: bool) -> None:
        self.events.append("dead_lettered")


def test_retry_then_dead_letter_stream_with_three_attempts_and_the_poison_blocks_nothing(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key, dlq = f"{key_prefix}:s", f"{key_prefix}:dlq"
    ids = prime(redis_url, key, [b"poison"] + [b"ok%d" % i for i in range(50)])
    record = Recorder(poison=frozenset({b"poison"}))
    order = Order()
    topology = Topology(
        "poison",
        Pipeline().task(record),
        source(redis_url, key, "c1", block_ms=20),
        failure_policy=FailurePolicy.retry(2, delay_ms=300),
        dead_letter=RedisStreamDeadLetter(redis_url, dlq),
        max_pending=2,  # one slot waits on the poison's retries; the other must keep going
    )

    engine = asyncio.run(
        run_until(topology, lambda e: "dead_lettered" in order.events and not e.load, observers=[order])
    )

    assert record.seen[b"poison"] == 3 and all(record.seen[b"ok%d" % i] == 1 for i in range(50))
    assert order.events.count("completed") == 50
    assert order.events.index("dead_lettered") == 50  # the 50 behind it finished first
    [(_, fields)] = r.xrange(dlq)
    letter = record_from_fields(fields)
    assert (letter.body, letter.source_id, letter.attempts, letter.task) == (b"poison", ids[0], 3, "record")
    assert letter.source == f"redis_stream:{key}" and "ValueError: poison" in letter.error
    assert letter.first_failure_ms <= letter.last_failure_ms and letter.topology == "poison"
    assert r.xpending(key, "g")["pending"] == 0  # the poison was acked after the write
    assert engine.snapshot()["poison.source.msg.acked.success"] == 51


def test_failure_policy_none_leaves_the_poison_to_the_handlers(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key, dlq = f"{key_prefix}:s", f"{key_prefix}:dlq"
    prime(redis_url, key, [b"poison"] + [b"ok%d" % i for i in range(20)])
    record = Recorder(poison=frozenset({b"poison"}))
    s = source(
        redis_url,
        key,
        "c1",
        block_ms=20,
        monitor_interval_ms=50,
        pending_handlers=[
            PendingHandler("dead_letter", min_idle_ms=100, times_delivered=3),
            PendingHandler("claim", min_idle_ms=100),
        ],
    )  # no dead letter here: the engine gives the source the topology's
    topology = Topology(
        "none",
        Pipeline().task(record),
        s,
        failure_policy=FailurePolicy.none(),
        dead_letter=RedisStreamDeadLetter(redis_url, dlq),
    )

    asyncio.run(run_until(topology, lambda e: r.xlen(dlq) == 1))

    assert record.seen[b"poison"] == 3 and sum(record.seen.values()) == 23
    [(_, fields)] = r.xrange(dlq)
    assert record_from_fields(fields).attempts == 3
    assert r.xpending(key, "g")["pending"] == 0


def test_a_dead_letter_handler_without_a_dead_letter_is_a_config_error(
    redis_url: str, key_prefix: str
) -> None:
    s = source(redis_url, f"{key_prefix}:s", "a", pending_handlers=[PendingHandler("dead_letter", 0, 3)])

    async def scenario() -> None:
        try:
            await s.setup()
        finally:
            await s.close()

    with pytest.raises(ConfigError, match="dead_letter"):
        asyncio.run(scenario())


def test_topology_toml_configures_the_source_with_the_original_names(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    toml = tmp_path / "Topology.toml"
    toml.write_text(
        f"""
[source]
kind = "redis_stream"
uri = "{redis_url}"
key = "{key_prefix}:s"
group = "workers"
group_starting_id = "$"
read_msg_count = 250
block_read = 50
ack_policy = "batch(100, ack_interval_ms=20)"
monitor_interval = 5000
pending_handlers = [
  {{ action = {{ type = "Claim" }}, min_idle_time = 60000, times_delivered = 1 }},
  {{ action = "dead_letter", min_idle_ms = 60000, times_delivered = 5 }},
]

[dead_letter]
kind = "redis_stream"
key = "{key_prefix}:dlq"
""",
        encoding="utf-8",
    )
    code = Topology("toml", Pipeline().task(Recorder()), MemorySource())
    configured = configure(code, toml).topology
    s = configured.source
    assert isinstance(s, RedisStreamSource)
    assert (s.url, s.group, s.group_start_id, s.read_count, s.block_ms) == (
        redis_url,
        "workers",
        "$",
        250,
        50,
    )
    assert s.ack_policy == AckPolicy.batch(100, 20) and s.monitor_interval_ms == 5000
    assert s.pending_handlers == (
        PendingHandler("claim", 60_000, 1),
        PendingHandler("dead_letter", 60_000, 5),
    )
    assert s.dead_letter is configured.dead_letter and isinstance(s.dead_letter, RedisStreamDeadLetter)
