"""RedisListSource against the real Redis: the reliable-queue pattern."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import redis

from pytempest import ConfigError, Pipeline, TestRun, Topology
from pytempest.deadletters import MemoryDeadLetter
from pytempest.redis import keyspace
from pytempest.sources import PendingHandler, RedisListSource
from pytempest.sources.redis_list import prime

from .helpers import Recorder, bind_metrics


def source(url: str, key: str, consumer: str, **options: Any) -> RedisListSource:
    options.setdefault("block_ms", 0)
    options.setdefault("monitor_interval_ms", 0)
    return RedisListSource(url, key, consumer=consumer, **options)


@pytest.mark.parametrize("policy", ["individual", "batch(300, ack_interval_ms=20)"])
def test_every_entry_is_processed_once_in_order_and_leaves_the_processing_list(
    redis_url: str, key_prefix: str, r: redis.Redis, policy: str
) -> None:
    key = f"{key_prefix}:q"
    bodies = [b"j%04d" % i for i in range(2000)]
    prime(redis_url, key, bodies)
    record = Recorder()
    s = source(redis_url, key, "c1", block_ms=20, ack_policy=policy)
    metrics = TestRun(Topology("list", Pipeline().task(record), s)).run(timeout_ms=30_000)

    assert metrics.reason == "idle"
    assert record.seen == Counter(bodies) and record.order == bodies  # first in, first out
    assert metrics.get_int("list.source.msg.acked.success") == len(bodies)
    assert r.llen(key) == 0 and r.llen(keyspace.list_processing(key, "c1")) == 0


def test_blocking_read_waits_for_an_entry(redis_url: str, key_prefix: str, r: redis.Redis) -> None:
    key = f"{key_prefix}:q"

    async def scenario() -> None:
        s = source(redis_url, key, "c1", block_ms=2000)
        await s.setup()
        try:
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, r.lpush, key, b"late")
            [msg] = await s.poll(10)
            assert (msg.body, msg.deliveries) == (b"late", 1)
            await s.ack([msg.id])
        finally:
            await s.close()

    asyncio.run(scenario())
    assert r.llen(keyspace.list_processing(key, "c1")) == 0


def test_entries_of_a_dead_consumer_are_put_back_and_counted(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:q"
    prime(redis_url, key, [b"a", b"b", b"c", b"d"])

    async def scenario() -> None:
        dead = source(redis_url, key, "dead")
        await dead.setup()
        await dead.poll(3)  # dies holding a, b, c
        await dead.close()
        r.zadd(keyspace.list_consumers(key), {"dead": 1})  # last seen long ago
        alive = source(
            redis_url,
            key,
            "alive",
            monitor_interval_ms=1000,
            pending_handlers=[PendingHandler("claim", 60_000)],
        )
        registry = bind_metrics(alive)
        await alive.setup()
        try:
            held = await alive.poll(1)  # d: in flight here, not touched
            await alive.monitor()
            again = await alive.poll(10)
            assert [(m.body, m.deliveries) for m in again] == [(b"a", 2), (b"b", 2), (b"c", 2)]
            await alive.ack([m.id for m in held + again])
        finally:
            await alive.close()
        assert registry.snapshot()["t.source.msg.claimed"] == 3

    asyncio.run(scenario())
    assert r.llen(keyspace.list_processing(key, "dead")) == 0
    assert r.zscore(keyspace.list_consumers(key), "dead") is None  # forgotten once empty
    assert r.hlen(keyspace.list_deliveries(key)) == 0


def test_a_live_consumer_is_never_mistaken_for_a_dead_one(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:q"
    prime(redis_url, key, [b"a", b"b"])

    async def scenario() -> None:
        busy = source(redis_url, key, "busy")
        other = source(
            redis_url,
            key,
            "other",
            monitor_interval_ms=1000,
            pending_handlers=[PendingHandler("claim", 60_000)],
        )
        await busy.setup()
        await other.setup()
        try:
            held = await busy.poll(10)  # seen just now
            await other.monitor()
            assert await other.poll(10) == []
            await busy.ack([m.id for m in held])
        finally:
            await busy.close()
            await other.close()

    asyncio.run(scenario())


def test_a_restarted_consumer_puts_back_what_it_held(redis_url: str, key_prefix: str, r: redis.Redis) -> None:
    key = f"{key_prefix}:q"
    prime(redis_url, key, [b"a", b"b", b"c"])

    async def scenario() -> None:
        first = source(redis_url, key, "c1")
        await first.setup()
        await first.poll(2)
        await first.close()
        again = source(redis_url, key, "c1")
        await again.setup()
        try:
            msgs = await again.poll(10)
            assert [(m.body, m.deliveries) for m in msgs] == [(b"a", 2), (b"b", 2), (b"c", 1)]
            await again.ack([m.id for m in msgs])
        finally:
            await again.close()

    asyncio.run(scenario())
    assert r.llen(keyspace.list_processing(key, "c1")) == 0 and r.llen(key) == 0


def test_released_entries_go_to_the_handlers_and_a_poison_is_dead_lettered(
    redis_url: str, key_prefix: str
) -> None:
    key = f"{key_prefix}:q"
    prime(redis_url, key, [b"poison", b"fine"])
    letters = MemoryDeadLetter()
    handlers = [PendingHandler("dead_letter", 0, times_delivered=2), PendingHandler("claim", 0)]

    async def scenario() -> None:
        s = source(redis_url, key, "c1", pending_handlers=handlers, dead_letter=letters)
        await s.setup()
        try:
            poison, fine = await s.poll(10)
            await s.ack([fine.id])
            for _ in range(2):
                await s.release([poison])  # failure policy none: left to the handlers
                await s.monitor()
                if not letters.records:
                    [poison] = await s.poll(10)
                    assert poison.deliveries == 2
            assert await s.poll(10) == []
        finally:
            await s.close()

    asyncio.run(scenario())
    [record] = letters.records
    assert (record.body, record.attempts, record.source) == (b"poison", 2, f"redis_list:{key}")


def test_list_options_are_checked(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="min_idle_ms"):
        RedisListSource(
            redis_url, "q", monitor_interval_ms=30_000, pending_handlers=[PendingHandler("claim", 10_000)]
        )
    with pytest.raises(ConfigError, match="ack_policy"):
        RedisListSource(redis_url, "q", ack_policy="none")
    with pytest.raises(ConfigError, match="pop_from"):
        RedisListSource(redis_url, "q", pop_from="middle")  # type: ignore[arg-type]
    assert RedisListSource.kind == "redis_list" and RedisListSource.config_aliases["uri"] == "url"
