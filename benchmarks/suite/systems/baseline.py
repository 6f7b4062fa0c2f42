"""The baseline: a bare redis-py loop, as a careful engineer would hand-write it.

A synchronous client with the hiredis parser, ``XREADGROUP COUNT 1000``, the workload's
functions called in plain loops, then one pipelined ``XACK`` for the batch. For W2 a
per-source counter checks that all 71 calls ran before the source message is acked.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from benchmarks.suite.spec import W2_CALLS, Job, Result
from benchmarks.suite.streams import client, entries, latency_ms, noop, rss_bytes, t1, t2

CONSUMER = "baseline"


def w2(body: bytes) -> int:
    """The book DAG by hand; returns the handle calls made (71)."""
    calls = 1
    outs2: list[bytes] = []
    for o in t1(body):
        r = t2(o)
        if r:
            outs2.extend(r)
        noop(o)
        calls += 2
    for o in outs2:
        noop(o)
        calls += 1
    return calls


def throughput(job: Job) -> Result:
    r = client(job)
    key, group = job.key, job.group
    handled = 0
    acked = 0
    start = time.perf_counter()
    while acked < job.n:
        batch = entries(r.xreadgroup(group, CONSUMER, {key: ">"}, count=1000, block=100))
        ids = []
        for entry_id, fields in batch:
            body = fields[b"body"]
            if job.workload == "W1":
                noop(body)
                handled += 1
            else:
                calls = w2(body)
                if calls != W2_CALLS:
                    raise AssertionError(f"{entry_id!r}: {calls} calls")
                handled += calls
            ids.append(entry_id)
        if ids:
            pipe = r.pipeline(transaction=False)
            pipe.xack(key, group, *ids)
            pipe.execute()
            acked += len(ids)
    return Result(seconds=time.perf_counter() - start, handled=handled)


def latency(job: Job, ready: Callable[[], None]) -> Result:
    r = client(job)
    key, group = job.key, job.group
    lat: list[float] = []
    ready()
    while len(lat) < job.n:
        batch = entries(r.xreadgroup(group, CONSUMER, {key: ">"}, count=1000, block=100))
        if not batch:
            continue
        for _, fields in batch:
            noop(fields[b"body"])
        pipe = r.pipeline(transaction=False)
        pipe.xack(key, group, *(i for i, _ in batch))
        pipe.execute()
        now = time.time_ns()
        lat.extend(latency_ms(fields[b"body"], now) for _, fields in batch)
    return Result(handled=len(lat), latencies_ms=lat)


def memory(job: Job) -> Result:
    """Hold ``n`` read entries unacked (what a slow task makes a consumer do), then ack."""
    r = client(job)
    key, group = job.key, job.group
    gc.collect()
    before = rss_bytes()
    held: list[tuple[bytes, dict[bytes, bytes]]] = []
    while len(held) < job.n:
        held.extend(entries(r.xreadgroup(group, CONSUMER, {key: ">"}, count=1000, block=100)))
    gc.collect()
    grown = rss_bytes() - before
    pipe = r.pipeline(transaction=False)
    for i in range(0, len(held), 1000):
        pipe.xack(key, group, *(e for e, _ in held[i : i + 1000]))
    pipe.execute()
    return Result(handled=len(held), rss_bytes=grown)
