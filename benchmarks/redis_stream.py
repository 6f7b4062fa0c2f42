"""Redis Stream source throughput against a bare redis-py loop, measured in the same run.

    python -m benchmarks.redis_stream [--messages 200000] [--runs 3] [--url redis://127.0.0.1:6379/0]

The stream holds ``--messages`` entries of 100 bytes (written once). Each run reads them
all through a new consumer group:

* bare: a synchronous redis-py client (hiredis parser) looping ``XREADGROUP COUNT 1000``,
  a no-op call per entry, then one pipelined ``XACK`` per batch;
* pytempest: a topology with one no-op task, in process, ``RedisStreamSource`` with
  ``batch(1000)`` acks, run by ``TestRun`` until idle (setup included).

Two more figures say where the time goes: the source alone (``poll(1000)`` then ``ack``
in a loop, no engine) and the engine alone (the same topology over a ``MemorySource``
of as many 100-byte bodies: no I/O at all).

Runs are interleaved (bare, pytempest, source, engine, bare, ...) and the median of each
is reported, with the ratio to bare (the target for pytempest is >= 0.6). Every entry is
checked to have been read and acked (the group's pending list is empty) after each run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import redis

from benchmarks.common import BODY, fill, noop, w1_pipeline
from pytempest import AckPolicy, TestRun, Topology
from pytempest.sources import MemorySource, RedisStreamSource


def run_bare(client: redis.Redis, key: str, group: str, n: int) -> float:
    client.xgroup_create(key, group, "0")
    start = time.perf_counter()
    read = 0
    while True:
        reply = client.xreadgroup(group, "bare", {key: ">"}, count=1000)
        entries = reply[key.encode()][0] if isinstance(reply, dict) else (reply[0][1] if reply else [])
        if not entries:
            break
        ids = []
        for entry_id, fields in entries:
            noop(fields[b"body"])
            ids.append(entry_id)
        pipe = client.pipeline(transaction=False)
        pipe.xack(key, group, *ids)
        pipe.execute()
        read += len(ids)
    elapsed = time.perf_counter() - start
    assert read == n, (read, n)
    return elapsed


def run_pytempest(url: str, key: str, group: str, n: int, max_pending: int) -> float:
    source = RedisStreamSource(
        url, key, group, consumer="bench", block_ms=10, ack_policy="batch(1000, ack_interval_ms=100)"
    )
    topology = Topology("bench", w1_pipeline(), source, max_pending=max_pending)
    start = time.perf_counter()
    metrics = TestRun(topology).run(until_idle=True, timeout_ms=600_000)
    elapsed = time.perf_counter() - start
    assert metrics.get_int("bench.source.msg.acked.success") == n, metrics
    return elapsed


async def source_loop(url: str, key: str, group: str, n: int) -> float:
    source = RedisStreamSource(url, key, group, consumer="bench", block_ms=0)
    await source.setup()
    try:
        start = time.perf_counter()
        read = 0
        while msgs := await source.poll(1000):
            for m in msgs:
                noop(m.body)
            await source.ack([m.id for m in msgs])
            read += len(msgs)
        elapsed = time.perf_counter() - start
    finally:
        await source.close()
    assert read == n, (read, n)
    return elapsed


def run_engine_only(n: int, max_pending: int) -> float:
    source = MemorySource([BODY] * n, ack_policy=AckPolicy.batch(1000, ack_interval_ms=100))
    topology = Topology("mem", w1_pipeline(), source, max_pending=max_pending)
    start = time.perf_counter()
    metrics = TestRun(topology).run(until_idle=True, timeout_ms=600_000)
    elapsed = time.perf_counter() - start
    assert metrics.get_int("mem.source.msg.acked.success") == n
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--max-pending", type=int, default=5000)
    args = parser.parse_args()
    n = args.messages
    key = f"pt-bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(args.url)
    try:
        print(f"filling {key} with {n} entries of {len(BODY)} bytes ...")
        fill(client, key, n)
        times: dict[str, list[float]] = {"bare": [], "pytempest": [], "source": [], "engine": []}
        for i in range(args.runs):
            times["bare"].append(run_bare(client, key, f"bare-{i}", n))
            times["pytempest"].append(run_pytempest(args.url, key, f"pt-{i}", n, args.max_pending))
            times["source"].append(asyncio.run(source_loop(args.url, key, f"src-{i}", n)))
            times["engine"].append(run_engine_only(n, args.max_pending))
            for group in (f"bare-{i}", f"pt-{i}", f"src-{i}"):
                assert client.xpending(key, group)["pending"] == 0, group
            figures = ", ".join(f"{k} {n / v[-1]:,.0f}" for k, v in times.items())
            print(f"run {i + 1}: {figures} msgs/s")
    finally:
        client.delete(key)
        client.close()
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    labels = {
        "bare": "bare redis-py loop (XREADGROUP COUNT 1000 + pipelined XACK)",
        "pytempest": f"pytempest (1 no-op task, batch(1000) acks, max_pending {args.max_pending})",
        "source": "RedisStreamSource alone (poll 1000 + ack, no engine)",
        "engine": "engine alone (same topology over a MemorySource, no I/O)",
    }
    for k, label in labels.items():
        print(f"{label}: {rate[k]:,.0f} msgs/s (median), ratio to bare {rate[k] / rate['bare']:.2f}")
    print(f"ratio pytempest / bare: {rate['pytempest'] / rate['bare']:.2f} (target >= 0.6)")


if __name__ == "__main__":
    main()
