"""The distributed runtime against the in-process runtime, measured in the same run.

    python -m benchmarks.distributed [--w1 100000] [--book 5000] [--workers 1,2,4] [--runs 1] [--per-batch]

Two workloads, each from a Redis stream (``RedisStreamSource``, ``batch(1000)`` acks,
``max_pending`` 2000, the same topology object for every setting):

* W1: one no-op task, ``--w1`` messages of 100 bytes;
* book: the book DAG (T1 emits 10, T2 emits 5 per input, T3 nothing, T4 counts), 71
  task messages per source message, ``--book`` source messages.

Settings: in process (the baseline), then the topology in this process with 1, 2 and 4
forked worker processes (``pytempest.runtimes.redis_bus``). Both workloads are all
inline, so the bus runs each poll as a cohort (one entry per task per poll);
``--per-batch`` adds the same settings with cohorts off (one batch per source message
and task). Workers are started and registered before the clock starts; the clock stops when the topology is idle (every
message acked). Printed per setting: source messages per second, the ratio to in
process, the topology process's CPU time per source message (it bounds how many
workers one topology can feed) and the workers' CPU per source message, summed.
Every run checks that every message was acked (the source group's pending list is empty).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass

import redis

from benchmarks.common import book_pipeline, fill, w1_pipeline
from pytempest import Pipeline, Topology
from pytempest.engine.engine import Engine
from pytempest.metrics.registry import Registry
from pytempest.runtimes.redis_bus import BusSettings, RedisBusExecutor
from pytempest.runtimes.redis_bus.process import start_workers, stop_workers
from pytempest.sources import RedisStreamSource


@dataclass
class Result:
    seconds: float
    topology_cpu_s: float
    worker_cpu_s: float


def topology(name: str, pipeline: Pipeline, url: str, key: str, group: str) -> Topology:
    source = RedisStreamSource(
        url, key, group, consumer="bench", block_ms=10, ack_policy="batch(1000, ack_interval_ms=100)"
    )
    return Topology(name, pipeline, source, max_pending=2000)


async def run_engine(
    top: Topology, executor: RedisBusExecutor | None, registry: Registry, cohorts: bool = True
) -> float:
    engine = Engine(top, executor, registry, cohorts=cohorts)
    start = time.perf_counter()
    await engine.run(until_idle=True)
    return time.perf_counter() - start


def run_once(url: str, name: str, pipeline: Pipeline, n: int, workers: int, cohorts: bool = True) -> Result:
    client = redis.Redis.from_url(url)
    key, group = f"bench:dist:{uuid.uuid4().hex[:8]}", "g"
    top = topology(name, pipeline, url, key, group)
    settings = BusSettings.from_env()
    procs = []
    try:
        fill(client, key, n)
        if workers:
            procs = start_workers(top, [None] * workers, url, settings)
            wait_workers(client, name, workers)
        registry = Registry()
        executor = RedisBusExecutor(name, url, settings=settings, registry=registry) if workers else None
        cpu = time.process_time()
        seconds = asyncio.run(run_engine(top, executor, registry, cohorts or not workers))
        topology_cpu = time.process_time() - cpu
        worker_cpu = sum(worker_cpu_s(client, name)) if workers else 0.0
        acked = registry.counter("source.msg.acked", topology=name, status="success").value
        assert acked == n and client.xpending(key, group)["pending"] == 0, (acked, n)
        return Result(seconds, topology_cpu, worker_cpu)
    finally:
        if procs:
            stop_workers(procs, 30)
        client.delete(key)
        for k in client.scan_iter(match="{pt:" + name + "}*"):
            client.delete(k)
        client.srem("pt:topologies", name)
        client.close()


def worker_keys(client: redis.Redis, name: str) -> list[str]:
    members = [m.decode() for m in client.zrange("{pt:" + name + "}:members", 0, -1)]
    return ["{pt:" + name + "}:hb:worker:" + m.split(":", 1)[1] for m in members if m.startswith("worker:")]


def wait_workers(client: redis.Redis, name: str, n: int) -> None:
    deadline = time.monotonic() + 60
    while len([k for k in worker_keys(client, name) if client.exists(k)]) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} workers did not start within 60 s")
        time.sleep(0.05)
    # Reset their CPU baseline: what they used to start is not per-message work.
    time.sleep(0.3)
    for k in worker_keys(client, name):
        client.hset(k, "bench_cpu_start", client.hget(k, "cpu_ms") or 0)


def worker_cpu_s(client: redis.Redis, name: str) -> list[float]:
    time.sleep(BusSettings().heartbeat_interval_ms / 1000 * 1.5)  # one more beat after the run
    out = []
    for k in worker_keys(client, name):
        now, start = client.hmget(k, "cpu_ms", "bench_cpu_start")
        out.append((int(now or 0) - int(start or 0)) / 1000)
    return out


def measure(
    url: str,
    label: str,
    pipeline_factory: type | object,
    n: int,
    workers: list[int],
    runs: int,
    per_batch: bool = False,
) -> None:
    # (workers, cohorts): 0 workers is in process; cohorts False is the per-batch bus path
    settings = [(0, True), *((w, True) for w in workers), *((w, False) for w in workers if per_batch)]
    results: dict[tuple[int, bool], list[Result]] = {s: [] for s in settings}
    for _ in range(runs):
        for w, cohorts in settings:
            name = f"bench-{label}-{w}-{os.getpid()}"
            results[w, cohorts].append(run_once(url, name, pipeline_factory(), n, w, cohorts))  # type: ignore[operator]
    base = statistics.median(r.seconds for r in results[0, True])
    print(f"\n{label}: {n} source messages, median of {runs} run(s)")
    print(f"  {'setting':<24} {'msgs/s':>9} {'ratio':>6} {'topology CPU/msg':>17} {'workers CPU/msg':>16}")
    for w, cohorts in settings:
        rs = results[w, cohorts]
        sec = statistics.median(r.seconds for r in rs)
        tcpu = statistics.median(r.topology_cpu_s for r in rs) / n * 1e6
        wcpu = statistics.median(r.worker_cpu_s for r in rs) / n * 1e6
        setting = "in process" if w == 0 else f"{w} worker{'s' if w > 1 else ''}"
        if w and not cohorts:
            setting += " (per batch)"
        wtext = f"{wcpu:>13.1f} us" if w else f"{'-':>16}"
        print(f"  {setting:<24} {n / sec:>9.0f} {base / sec:>6.2f} {tcpu:>14.1f} us {wtext}")
    topo = min(statistics.median(r.topology_cpu_s for r in results[w, True]) / n for w in workers)
    worker = statistics.median(r.worker_cpu_s for r in results[workers[0], True]) / n
    print(
        f"  bound: one topology process (one core) tops out near {1 / topo:,.0f} source msgs/s; it keeps "
        f"N workers busy when each needs T us of CPU per source message, N ~ T / {topo * 1e6:.0f} us "
        f"(these no-op workers need {worker * 1e6:.0f} us; with 1 ms of task "
        f"work per source message, N ~ {1e-3 / topo:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--w1", type=int, default=100_000, help="W1 messages (0 skips W1)")
    parser.add_argument("--book", type=int, default=5_000, help="book DAG source messages (0 skips it)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to measure")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--per-batch",
        action="store_true",
        help="also measure the bus without cohorts (one batch per message)",
    )
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w]
    print(f"machine: {os.cpu_count()} cores; Redis at {args.url}")
    if args.w1:
        measure(args.url, "W1", w1_pipeline, args.w1, workers, args.runs, args.per_batch)
    if args.book:
        measure(args.url, "book", book_pipeline, args.book, workers, args.runs, args.per_batch)


if __name__ == "__main__":
    main()
