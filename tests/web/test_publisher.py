"""The status publisher: what a running engine publishes for dashboards."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis

from pytempest import Engine, FailurePolicy, Pipeline, Topology, task
from pytempest.deadletters import MemoryDeadLetter
from pytempest.metrics.registry import Registry
from pytempest.runtimes.status_publisher import RedisSnapshotSink, StatusPublisher
from pytempest.sources import MemorySource


def _fails_on_bad(body: bytes) -> None:
    if body == b"bad":
        raise KeyError("no such order")


@task("split")
def split(body: bytes) -> list[bytes]:
    _fails_on_bad(body)
    return [body, body]


@task("keep")
def keep(body: bytes) -> None:
    return None


def _topology(bodies: list[bytes]) -> Topology:
    pipeline = Pipeline().task(split).task(keep).edge("split", "keep")
    return Topology("pub", pipeline, MemorySource(bodies), failure_policy=FailurePolicy.retry(1, delay_ms=10),
                    dead_letter=MemoryDeadLetter(), max_pending=50)  # fmt: skip


async def _run(
    topology: Topology, publisher: StatusPublisher, registry: Registry, sink: Any = None
) -> Engine:
    engine = Engine(topology, registry=registry, observers=[publisher])
    async with publisher.publishing(sink):
        await engine.run(until_idle=True)
    return engine


def test_snapshot_matches_the_engine_metrics() -> None:
    topology = _topology([b"m%d" % i for i in range(100)] + [b"bad"])
    registry = Registry()
    publisher = StatusPublisher(topology, registry, instance="i1", mode="in_process", interval_ms=50)
    engine = asyncio.run(_run(topology, publisher, registry))
    snap = publisher.latest
    assert snap is not None and snap["final"] is True
    metrics = engine.snapshot()
    assert snap["totals"]["read"] == metrics["pub.source.msg.read"] == 101  # a retry is not a new read
    assert snap["totals"]["acked"] == metrics["pub.source.msg.acked.success"] == 101
    assert (
        snap["totals"]["deadlettered"] == 1
        and snap["totals"]["errors"] == 2
        and snap["totals"]["failed"] == 2
    )
    assert snap["totals"]["inflight"] == 0
    assert snap["graph"] == {"tasks": [{"name": "split", "kind": "inline", "concurrency": 64, "batch": 1000},
                                       {"name": "keep", "kind": "inline", "concurrency": 64, "batch": 1000}],
                             "edges": [["split", "keep"]], "release": "stage"}  # fmt: skip
    rows = {t["name"]: t for t in snap["tasks"]}
    assert (
        rows["split"]["handled"] == 102 and rows["split"]["errors"] == 2 and rows["split"]["outflow"] == 200
    )
    assert rows["keep"]["handled"] == 200 and rows["keep"]["workers"] == 1
    assert snap["settings"]["max_pending"] == 50 and snap["dead_letter"]["kind"] == "memory"
    assert snap["source"]["name"] == "memory" and snap["mode"] == "in_process"
    # The last errors, newest first, with the traceback of the task's own code.
    assert [e["attempt"] for e in snap["errors"]] == [2, 1]
    err = snap["errors"][0]
    assert err["task"] == "split" and err["error_type"] == "KeyError" and "no such order" in err["message"]
    assert "_fails_on_bad" in err["traceback"] and err["source_id"] == "100"
    assert snap["history"]["fields"][0] == "ms" and snap["history"]["points"]
    assert snap["metrics"]["pub.keep.task.msg.handle"] == 200
    json.dumps(snap)  # JSON-ready


def test_rates_cover_the_window_and_quantiles_come_from_it() -> None:
    topology = _topology([])
    registry = Registry()
    now = [1_000_000]
    publisher = StatusPublisher(topology, registry, instance="i1", mode="in_process", window_points=2,
                                clock=lambda: now[0])  # fmt: skip
    read = registry.counter("source.msg.read", topology="pub")
    handle_time = registry.timer("task.handle", topology="pub", task="keep")
    first = publisher.take()
    assert first["rates"]["read"] == 0.0 and first["tasks"][1]["p99_ms"] is None
    read.value += 500
    handle_time.observe(2.0, 10)
    now[0] += 2000
    second = publisher.take()
    assert second["rates"]["read"] == 250.0 and second["window_ms"] == 2000
    assert second["tasks"][1]["p50_ms"] == 2.0 and second["tasks"][1]["p99_ms"] == 2.0
    assert second["history"]["points"] == [[1_002_000, 250.0, 0.0, 0.0, 0.0, None, None]]
    # The window slides: after two more quiet snapshots, the burst is out of it.
    for _ in range(2):
        now[0] += 1000
        quiet = publisher.take()
    assert quiet["rates"]["read"] == 0.0 and quiet["tasks"][1]["p99_ms"] is None
    assert (
        quiet["tasks"][1]["handled"] == 0
        and registry.timer("task.handle", topology="pub", task="keep").count == 10
    )


def test_redis_sink_writes_the_snapshot_with_a_ttl(redis_url: str, key_prefix: str) -> None:
    topology = _topology([b"a", b"b"]).replace(name=f"{key_prefix}-pub")
    registry = Registry()
    publisher = StatusPublisher(topology, registry, instance="i9", mode="distributed", interval_ms=50)
    sink = RedisSnapshotSink(redis_url, topology.name, "i9", ttl_ms=5000)
    asyncio.run(_run(topology, publisher, registry, sink))
    client = redis.Redis.from_url(redis_url)
    try:
        key = "{pt:" + topology.name + "}:snapshot:i9"
        snap = json.loads(client.get(key))
        assert snap["final"] is True and snap["totals"]["acked"] == 2 and snap["instance"] == "i9"
        assert 3_000_000 < client.pttl(key) <= 3_600_000  # the final one stays an hour
    finally:
        client.close()
