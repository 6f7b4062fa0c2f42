"""The distributed runtime's own metrics against real Redis: ``task.stream.lag`` and
``bus.workers`` (read by the topology process on its status tick) and
``task.entry.claimed`` (counted by the worker that claims an entry of a dead worker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from pytempest import FailurePolicy, Pipeline, Topology, task
from pytempest.engine.engine import Engine
from pytempest.metrics.registry import Registry
from pytempest.runtimes.redis_bus import BusSettings, RedisBusExecutor, Worker
from pytempest.sources import MemorySource

from .cluster import cluster, prime, stop, wait_for

N = 20
SETTINGS = BusSettings(
    heartbeat_interval_ms=100, heartbeat_ttl_ms=1000, block_ms=100,
    claim_idle_ms=300, claim_interval_ms=50, status_interval_ms=100,
)  # fmt: skip


@task("split")
def split(body: bytes) -> list[bytes]:
    return [body + b"-a", body + b"-b"]


@task("sink")
def sink(body: bytes) -> None:
    pass


async def until(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0) -> Any:
    """Poll ``probe`` until it returns something true; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await probe()
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_lag_workers_and_claims(redis_url: str, key_prefix: str) -> None:
    """Without workers every entry of ``split`` is lag (one a ghost consumer took and
    left pending counts too); once a worker runs, it claims the ghost's entry and the lag
    of every task drains to 0 with one worker alive per task."""
    topology = Topology(
        key_prefix, Pipeline().task(split).task(sink).edge("split", "sink"),
        MemorySource([f"m{i}" for i in range(N)], read_count=5),
        failure_policy=FailurePolicy.best_effort(),
    )  # fmt: skip
    p = key_prefix
    split_stream = "{pt:" + p + "}:task:split"

    async def scenario() -> tuple[dict[str, float], dict[str, float], int]:
        registry = Registry()
        engine = Engine(
            topology, RedisBusExecutor(p, redis_url, settings=SETTINGS, registry=registry), registry
        )
        running = asyncio.create_task(engine.run())
        client = redis.asyncio.Redis.from_url(redis_url)
        worker: Worker | None = None
        try:

            async def lag_is_the_stream() -> bool:
                length = await client.xlen(split_stream)
                snap = engine.snapshot()
                return bool(length) and snap.get(f"{p}.split.task.stream.lag") == length

            await until(lag_is_the_stream, "task.stream.lag of split to count its entries")
            assert engine.snapshot()[f"{p}.split.bus.workers"] == 0
            assert engine.snapshot()[f"{p}.sink.task.stream.lag"] == 0
            # A worker that takes one entry and dies: the entry is pending, still lag.
            taken = await client.xreadgroup("workers", "ghost", {split_stream: ">"}, count=1)
            assert len(taken[0][1]) == 1
            await until(lag_is_the_stream, "task.stream.lag of split to keep the pending entry")
            entries = await client.xlen(split_stream)

            worker = Worker(topology, None, redis_url, settings=SETTINGS)
            serving = asyncio.create_task(worker.run())

            async def drained() -> bool:
                s = engine.snapshot()
                return (
                    s.get(f"{p}.source.msg.acked.success") == N
                    and s.get(f"{p}.split.task.stream.lag") == 0
                    and s.get(f"{p}.sink.task.stream.lag") == 0
                    and s.get(f"{p}.split.bus.workers") == 1
                    and s.get(f"{p}.sink.bus.workers") == 1
                )

            await until(drained, "every message acked, the lag 0 and one worker per task")
            snapshot = engine.snapshot()
        finally:
            engine.request_stop()
            await asyncio.wait_for(running, 30)
            if worker is not None:
                worker.request_stop()
                await asyncio.wait_for(serving, 10)
            await client.aclose()
        assert worker is not None
        return snapshot, worker.registry.snapshot(), entries

    snapshot, worker_metrics, entries = asyncio.run(scenario())
    assert snapshot[f"{p}.split.task.msg.handle"] == N
    assert snapshot[f"{p}.sink.task.msg.handle"] == 2 * N
    assert entries >= 1
    # The ghost's entry, and nothing else, was claimed (by the worker, which counts it).
    assert worker_metrics[f"{p}.split.task.entry.claimed"] == 1
    assert worker_metrics[f"{p}.sink.task.entry.claimed"] == 0
    _forget(redis_url, p)


def test_topology_process_publishes_lag_and_workers(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    """Real processes: the topology's status snapshot in Redis carries the lag of each
    task stream and the workers alive per task, before and after a worker starts."""
    with cluster(tmp_path, redis_url, key_prefix, PT_GRACE_MS="300") as c:
        prime(redis_url, c.source_key, 10)
        top = c.topology()
        t1 = "{pt:" + c.name + "}:task:T1"

        def snapshot() -> dict[str, float]:
            raw = c.client.hgetall("{pt:" + c.name + "}:status")
            metrics: dict[str, float] = {}
            for value in raw.values():
                metrics.update(json_metrics(value))
            return metrics

        def t1_lag_counts_its_stream() -> bool:
            length = int(c.client.xlen(t1))
            return length > 0 and snapshot().get(f"{c.name}.T1.task.stream.lag") == length

        wait_for("the T1 lag in the status snapshot", t1_lag_counts_its_stream, 30)
        s = snapshot()
        assert all(s[f"{c.name}.{t}.bus.workers"] == 0 for t in ("T1", "T2", "T3", "T4"))

        worker = c.worker()
        wait_for("every source message acked", lambda: c.source_done(10), 60)

        def drained() -> bool:
            s = snapshot()
            return all(
                s.get(f"{c.name}.{t}.task.stream.lag") == 0 and s.get(f"{c.name}.{t}.bus.workers") == 1
                for t in ("T1", "T2", "T3", "T4")
            )

        wait_for("lag 0 and one worker per task in the snapshot", drained, 30)
        assert stop(top) == 0, top.log()[-3000:]
        assert stop(worker) == 0, worker.log()[-3000:]


def json_metrics(raw: bytes) -> dict[str, float]:
    metrics: dict[str, float] = json.loads(raw)["metrics"]
    return metrics


def _forget(url: str, name: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.srem("pt:topologies", name)
    finally:
        client.close()
