"""pytempest distributed: the topology process and ``job.workers`` forked worker processes.

The same topology as :mod:`.pytempest_inproc` (``RedisStreamSource`` out of the box,
``max_pending`` 5,000), run by the Redis bus executor: every task runs in the workers,
which are started and registered (a heartbeat each) before the clock starts. W1 and W2
are all-inline pipelines, so the bus sends each poll as one cohort entry per task.
"""

from __future__ import annotations

import asyncio
import time

import redis

from benchmarks.common import book_pipeline, w1_pipeline
from benchmarks.distributed import worker_keys
from benchmarks.suite.spec import Job, Result
from benchmarks.suite.systems.pytempest_inproc import MAX_PENDING, StopAfter, acked, handled, source
from pytempest import Topology
from pytempest.engine.engine import Engine
from pytempest.metrics.registry import Registry
from pytempest.runtimes.redis_bus import BusSettings, RedisBusExecutor
from pytempest.runtimes.redis_bus.process import start_workers, stop_workers

START_TIMEOUT_S = 60


def _live_workers(r: redis.Redis, name: str) -> int:
    return sum(1 for k in worker_keys(r, name) if r.exists(k))


def throughput(job: Job) -> Result:
    name = f"suite-{job.group}"
    pipeline = w1_pipeline() if job.workload == "W1" else book_pipeline()
    topology = Topology(name, pipeline, source(job), max_pending=MAX_PENDING)
    settings = BusSettings.from_env()
    r = redis.Redis.from_url(job.url)
    procs = start_workers(topology, [None] * job.workers, job.url, settings)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _live_workers(r, name) < job.workers:
            if time.monotonic() > deadline or any(p.exitcode is not None for p in procs):
                raise RuntimeError(f"{job.workers} worker(s) did not start within {START_TIMEOUT_S} s")
            time.sleep(0.02)
        registry = Registry()
        executor = RedisBusExecutor(name, job.url, settings=settings, registry=registry)
        stop = StopAfter(job.n)
        engine = stop.engine = Engine(topology, executor, registry, observers=[stop])
        start = time.perf_counter()
        asyncio.run(engine.run())
        seconds = time.perf_counter() - start
        if acked(registry, name) != job.n:
            raise AssertionError(f"acked {acked(registry, name)} of {job.n}")
        count = handled(registry, pipeline, name)
    finally:
        stop_workers(procs, 30)
        for key in r.scan_iter(match="{pt:" + name + "}*"):
            r.delete(key)
        r.srem("pt:topologies", name)
        r.close()
    return Result(seconds=seconds, handled=count, notes={"workers": job.workers})
