"""A consumer process for the crash test: ``python stream_consumer.py URL KEY DONE_KEY``.

Reads the stream ``KEY`` (group ``g``, consumer ``victim``), adds every body it handles to
the set ``DONE_KEY`` and acks in batches of 50 (or every 2 s), so a SIGKILL leaves both
unprocessed and processed-but-unacked entries pending.
"""

from __future__ import annotations

import asyncio
import sys
import time

import redis

from pytempest import Engine, Pipeline, Topology, task
from pytempest.sources import RedisStreamSource


def main(url: str, key: str, done_key: str) -> None:
    client = redis.Redis.from_url(url)

    @task("work")
    def work(body: bytes) -> None:
        client.sadd(done_key, body)
        time.sleep(0.005)

    source = RedisStreamSource(
        url,
        key,
        "g",
        consumer="victim",
        read_count=20,
        block_ms=50,
        ack_policy="batch(50, ack_interval_ms=2000)",
    )
    asyncio.run(Engine(Topology("victim", Pipeline().task(work), source, max_pending=20)).run())


if __name__ == "__main__":
    main(*sys.argv[1:4])
