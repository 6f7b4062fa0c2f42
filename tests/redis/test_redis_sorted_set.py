"""RedisSortedSetSource against the real Redis: due members, leases, redelivery."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import redis

from pytempest import ConfigError, Pipeline, TestRun, Topology
from pytempest.deadletters import MemoryDeadLetter
from pytempest.model.message import now_ms
from pytempest.redis import keyspace
from pytempest.sources import PendingHandler, RedisSortedSetSource
from pytempest.sources.redis_sorted_set import prime

from .helpers import Recorder, bind_metrics


def source(url: str, key: str, **options: Any) -> RedisSortedSetSource:
    options.setdefault("lease_ms", 60_000)
    options.setdefault("monitor_interval_ms", 1000)
    return RedisSortedSetSource(url, key, **options)


def test_due_members_are_processed_once_in_score_order_and_future_ones_wait(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:z"
    now = now_ms()
    due = {b"due%04d" % i: now - 10_000 + i for i in range(1500)}
    later = {b"tomorrow": now + 86_400_000}
    prime(redis_url, key, {**due, **later})
    record = Recorder()
    metrics = TestRun(Topology("zset", Pipeline().task(record), source(redis_url, key))).run(
        timeout_ms=30_000
    )

    assert metrics.reason == "idle"
    assert record.seen == Counter(list(due)) and record.order == sorted(due, key=due.__getitem__)
    assert metrics.get_int("zset.source.msg.acked.success") == len(due)
    assert r.zrange(key, 0, -1) == [b"tomorrow"]
    for bookkeeping in (
        keyspace.zset_inflight(key),
        keyspace.zset_deliveries(key),
        keyspace.zset_scores(key),
    ):
        assert not r.exists(bookkeeping), bookkeeping


def test_a_fixed_max_score_makes_a_priority_queue(redis_url: str, key_prefix: str) -> None:
    key = f"{key_prefix}:z"
    prime(redis_url, key, {b"low": 1, b"high": 9, b"mid": 5})

    async def scenario() -> list[bytes]:
        s = source(redis_url, key, max_score=5)
        await s.setup()
        try:
            msgs = await s.poll(10)
            await s.ack([m.id for m in msgs])
            return [m.body for m in msgs]
        finally:
            await s.close()

    assert asyncio.run(scenario()) == [b"low", b"mid"]


def test_an_expired_lease_puts_the_member_back_with_its_score_and_one_more_delivery(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:z"
    prime(redis_url, key, {b"job\xff": 42})  # not UTF-8: the id still round-trips

    async def scenario() -> None:
        dead = source(redis_url, key, lease_ms=2000)
        await dead.setup()
        [taken] = await dead.poll(10)
        await dead.close()  # dies: its lease is never renewed
        r.zadd(keyspace.zset_inflight(key), {b"job\xff": now_ms() - 1})  # ... and has run out
        alive = source(redis_url, key, max_score=100)
        registry = bind_metrics(alive)
        await alive.setup()
        try:
            await alive.monitor()
            assert r.zscore(key, b"job\xff") == 42
            [again] = await alive.poll(10)
            assert (again.id, again.body, again.deliveries) == (taken.id, b"job\xff", 2)
            await alive.ack([again.id])
        finally:
            await alive.close()
        assert registry.snapshot()["t.source.msg.claimed"] == 1

    asyncio.run(scenario())
    assert r.zcard(key) == 0 and r.zcard(keyspace.zset_inflight(key)) == 0


def test_the_monitor_renews_the_leases_this_process_holds(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:z"
    prime(redis_url, key, [b"slow"])

    async def scenario() -> None:
        s = source(redis_url, key, lease_ms=2000)
        await s.setup()
        try:
            [msg] = await s.poll(10)
            r.zadd(keyspace.zset_inflight(key), {b"slow": now_ms() - 1})  # about to look expired
            await s.monitor()
            assert r.zscore(keyspace.zset_inflight(key), b"slow") > now_ms()  # renewed, not put back
            assert r.zcard(key) == 0
            await s.ack([msg.id])
        finally:
            await s.close()

    asyncio.run(scenario())


def test_expired_leases_past_the_delivery_threshold_are_dead_lettered(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:z"
    prime(redis_url, key, [b"poison"])
    letters = MemoryDeadLetter()
    handlers = [PendingHandler("dead_letter", 0, times_delivered=2), PendingHandler("claim", 0)]

    async def scenario() -> None:
        s = source(redis_url, key, pending_handlers=handlers, dead_letter=letters)
        await s.setup()
        try:
            for expected in (1, 2):
                [msg] = await s.poll(10)
                assert msg.deliveries == expected
                await s.release([msg])
                r.zadd(keyspace.zset_inflight(key), {b"poison": now_ms() - 1})
                await s.monitor()
            assert await s.poll(10) == []
        finally:
            await s.close()

    asyncio.run(scenario())
    [record] = letters.records
    assert (record.body, record.attempts, record.source) == (b"poison", 2, f"redis_sorted_set:{key}")
    assert not r.exists(keyspace.zset_deliveries(key))


def test_sorted_set_options_are_checked(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="lease_ms"):
        RedisSortedSetSource(redis_url, "z", lease_ms=1000, monitor_interval_ms=1000)
    with pytest.raises(ConfigError, match="max_score"):
        RedisSortedSetSource(redis_url, "z", max_score="soon")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ack_policy"):
        RedisSortedSetSource(redis_url, "z", ack_policy="none")
    assert RedisSortedSetSource.kind == "redis_sorted_set"
