"""Races in the Redis stream source found by the fault scenarios, pinned down in process."""

from __future__ import annotations

import asyncio

import redis

from pytempest.sources import PendingHandler, RedisStreamSource
from pytempest.sources.redis_stream import prime


def test_entries_read_ahead_survive_a_claim_served_first(redis_url: str, key_prefix: str) -> None:
    """A claimed entry waiting in the buffer must not make the next poll start a second
    read-ahead that replaces the first: the entries the first one read would stay pending
    for this consumer forever, never handed to the engine (found by scenario S1)."""
    key = f"{key_prefix}:s"
    ids = prime(redis_url, key, [b"m%d" % i for i in range(11)])
    client = redis.Redis.from_url(redis_url)
    try:
        client.xgroup_create(key, "g", "0")
        client.xreadgroup("g", "other", {key: ">"}, count=1)  # ids[0]: pending for a dead consumer
    finally:
        client.close()
    source = RedisStreamSource(redis_url, key, "g", consumer="c1", read_count=5, block_ms=0,
                               pending_handlers=[PendingHandler("claim", min_idle_ms=0)])  # fmt: skip

    async def scenario() -> list[str]:
        await source.setup()
        try:
            seen = [m.id for m in await source.poll(5)]  # ids[1:6]; reads ids[6:11] ahead
            await asyncio.sleep(0.1)  # the read-ahead is done
            await source.monitor()  # claims ids[0] into the buffer
            for _ in range(5):  # bounded
                seen += [m.id for m in await source.poll(5)]
            await source.ack(seen)
            return seen
        finally:
            await source.close()

    seen = asyncio.run(scenario())
    assert sorted(seen) == sorted(ids)
