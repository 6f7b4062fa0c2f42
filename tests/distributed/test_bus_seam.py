"""The executor seam with real Redis: engine + RedisBusExecutor + Worker in one loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest
import redis

from pytempest import FailurePolicy, Pipeline, Task, Topology, task
from pytempest.engine.completion import MessageState
from pytempest.engine.engine import Engine
from pytempest.engine.events import EngineObserver
from pytempest.engine.executor import BatchResult, TaskBatch, TaskFailure
from pytempest.errors import ConfigError, TaskSetupError, WireError
from pytempest.metrics.registry import Registry
from pytempest.metrics.target import MetricTarget
from pytempest.model.message import SourceMsg
from pytempest.runtimes.redis_bus import BusSettings, RedisBusExecutor, Worker, wire
from pytempest.sources import MemorySource

FAST = BusSettings(heartbeat_interval_ms=100, heartbeat_ttl_ms=1000, block_ms=100, claim_interval_ms=50)


class Failures(EngineObserver):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, TaskFailure | None]] = []

    def failed(self, state: MessageState, reason: str, task: str | None, failure: TaskFailure | None) -> None:
        self.seen.append((state.msg.id, task, failure))


async def run_with_worker(
    topology: Topology, url: str, settings: BusSettings = FAST, observers: tuple[EngineObserver, ...] = ()
) -> tuple[dict[str, float], Worker, RedisBusExecutor]:
    registry = Registry()
    executor = RedisBusExecutor(topology.name, url, settings=settings, registry=registry)
    engine = Engine(topology, executor, registry, observers)
    worker = Worker(topology, None, url, settings=settings)
    serving = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(engine.run(until_idle=True), 30)
    finally:
        worker.request_stop()
        await asyncio.wait_for(serving, 10)
    return engine.snapshot(), worker, executor


@task("split")
def split(body: bytes) -> list[bytes]:
    return [body + b"-a", body + b"-b"]


@task("fetch", concurrency=4)
async def fetch(body: bytes) -> list[bytes]:
    await asyncio.sleep(0)
    return [body.upper()]


class Store(Task):
    name = "store"
    threaded = True

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def handle(self, body: bytes) -> None:
        with self.lock:
            self.seen.append(body)
            self.threads.add(threading.current_thread().name)


def test_inline_async_and_threaded_tasks_run_in_the_worker(redis_url: str, key_prefix: str) -> None:
    store = Store()
    pipeline = Pipeline().task(split).task(fetch).task(store).edges(("split", "fetch"), ("fetch", "store"))
    topology = Topology(key_prefix, pipeline, MemorySource([f"m{i}" for i in range(50)]))
    metrics, worker, executor = asyncio.run(run_with_worker(topology, redis_url))
    p = key_prefix + "."
    assert metrics[p + "source.msg.acked.success"] == 50
    assert metrics[p + "store.task.msg.handle"] == 100
    assert sorted(store.seen) == sorted(f"M{i}-{s}".encode() for i in range(50) for s in "AB")
    assert all(name.startswith("pytempest-task") for name in store.threads)
    assert metrics[p + "bus.msg.sent"] == 50 + 100 + 100
    assert metrics[p + "bus.result.dropped"] == 0
    assert worker.counts.handled == 250 and worker.counts.errors == 0
    assert executor.outstanding == {}
    # A clean stop removes this instance's heartbeat and result stream.
    client = redis.Redis.from_url(redis_url)
    try:
        assert not client.exists(executor.results_key)
        assert client.zrange("{pt:" + key_prefix + "}:members", 0, -1) == []
    finally:
        client.srem("pt:topologies", key_prefix)
        client.close()


def test_task_messages_over_the_size_limit_fail_their_message(redis_url: str, key_prefix: str) -> None:
    calls: list[bytes] = []

    @task("echo")
    def echo(body: bytes) -> None:
        calls.append(body)

    source = MemorySource([b"small", b"x" * 5000])
    topology = Topology(key_prefix, Pipeline().task(echo), source, failure_policy=FailurePolicy.best_effort())
    failures = Failures()
    settings = BusSettings(heartbeat_interval_ms=100, block_ms=100, max_message_bytes=1000)
    metrics, _, _ = asyncio.run(run_with_worker(topology, redis_url, settings, (failures,)))
    assert calls == [b"small"]
    assert metrics[key_prefix + ".bus.msg.too_large"] == 1
    assert metrics[key_prefix + ".source.msg.acked.success"] == 2
    ((msg_id, task_name, failure),) = failures.seen
    assert (msg_id, task_name) == ("1", "echo")
    assert failure is not None and failure.error_type == "MessageTooLarge"
    assert "5000 bytes" in failure.message and "max_message_bytes" in failure.message
    _forget(redis_url, key_prefix)


def test_results_over_the_size_limit_fail_their_message(redis_url: str, key_prefix: str) -> None:
    @task("grow")
    def grow(body: bytes) -> list[bytes]:
        return [b"y" * 600] * (3 if body == b"big" else 1)

    @task("sink")
    def sink(body: bytes) -> None:
        return None

    pipeline = Pipeline().task(grow).task(sink).edge("grow", "sink")
    source = MemorySource([b"ok", b"big"])
    topology = Topology(key_prefix, pipeline, source, failure_policy=FailurePolicy.best_effort())
    failures = Failures()
    # Task by task: grow's outputs cross Redis (a whole-graph worker keeps them in memory).
    settings = BusSettings(heartbeat_interval_ms=100, block_ms=100, max_message_bytes=1000, whole_graph=0)
    metrics, worker, _ = asyncio.run(run_with_worker(topology, redis_url, settings, (failures,)))
    ((msg_id, task_name, failure),) = failures.seen
    assert (msg_id, task_name) == ("1", "grow")
    assert failure is not None and failure.error_type == "MessageTooLarge"
    assert "1800 bytes" in failure.message
    assert metrics[key_prefix + ".sink.task.msg.handle"] == 1
    assert worker.counts.errors == 1
    _forget(redis_url, key_prefix)


def test_an_entry_delivered_too_often_fails_its_messages_without_running(
    redis_url: str, key_prefix: str
) -> None:
    calls: list[bytes] = []

    @task("crashy")
    def crashy(body: bytes) -> None:
        calls.append(body)

    topology = Topology(
        key_prefix,
        Pipeline().task(crashy),
        MemorySource([b"poison"]),
        failure_policy=FailurePolicy.best_effort(),
    )
    settings = BusSettings(
        heartbeat_interval_ms=100, block_ms=100, claim_idle_ms=1, claim_interval_ms=50, max_deliveries=2
    )
    stream = "{pt:" + key_prefix + "}:task:crashy"
    failures = Failures()

    async def scenario() -> dict[str, float]:
        registry = Registry()
        executor = RedisBusExecutor(key_prefix, redis_url, settings=settings, registry=registry)
        engine = Engine(topology, executor, registry, (failures,))
        running = asyncio.create_task(engine.run(until_idle=True))
        # A "worker" that takes the entry three times and dies each time.
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await _until(lambda: client.xlen(stream), "the task entry")
            await client.xreadgroup("workers", "ghost", {stream: ">"})
            for _ in range(2):
                await client.xreadgroup("workers", "ghost", {stream: "0"})
        finally:
            await client.aclose()
        worker = Worker(topology, None, redis_url, settings=settings)
        serving = asyncio.create_task(worker.run())
        await asyncio.wait_for(running, 30)
        worker.request_stop()
        await asyncio.wait_for(serving, 10)
        assert worker.counts.poison == 1 and worker.counts.claimed == 1
        return engine.snapshot()

    metrics = asyncio.run(scenario())
    assert calls == []
    ((_, task_name, failure),) = failures.seen
    assert task_name == "crashy" and failure is not None
    assert failure.error_type == "MaxDeliveriesExceeded"
    assert "delivered 4 times (max_deliveries=2)" in failure.message
    assert metrics[key_prefix + ".source.msg.acked.success"] == 1
    _forget(redis_url, key_prefix)


def test_entries_of_a_gone_instance_and_unreadable_entries_are_acked_unrun(
    redis_url: str, key_prefix: str
) -> None:
    calls: list[bytes] = []

    @task("t")
    def t(body: bytes) -> None:
        calls.append(body)

    topology = Topology(key_prefix, Pipeline().task(t), MemorySource([]))
    stream = "{pt:" + key_prefix + "}:task:t"
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create(stream, "workers", id="0", mkstream=True)
    client.xadd(stream, {wire.FIELD: wire.encode_tasks("gone-instance", 0, [[1, "m1", 1, 0, 0, [b"x"]]])})
    client.xadd(stream, {wire.FIELD: msgpack.packb([99, "future", 0, []])})
    client.xadd(stream, {b"other": b"1"})

    async def scenario() -> Worker:
        worker = Worker(topology, None, redis_url, settings=FAST)
        serving = asyncio.create_task(worker.run())
        await _until(
            lambda: asyncio.sleep(0, worker.counts.orphaned + worker.counts.malformed == 3), "3 entries"
        )
        worker.request_stop()
        await asyncio.wait_for(serving, 10)
        return worker

    worker = asyncio.run(scenario())
    try:
        assert calls == []
        assert (worker.counts.orphaned, worker.counts.malformed) == (1, 2)
        assert client.xlen(stream) == 0
        assert client.xpending(stream, "workers")["pending"] == 0
    finally:
        client.close()


def test_a_result_that_comes_twice_is_applied_once(redis_url: str, key_prefix: str) -> None:
    @task("t")
    def t(body: bytes) -> None:
        return None

    graph = Pipeline().task(t).build()
    results: list[BatchResult] = []

    async def scenario() -> RedisBusExecutor:
        executor = RedisBusExecutor(key_prefix, redis_url, settings=FAST)
        await executor.start(graph, results.append)
        running = asyncio.create_task(executor.run())
        state = MessageState(SourceMsg("m1", b"x"), [0] * 4, 1, True)
        executor.submit(TaskBatch(state, 0, 0, [b"x"]))
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            stream = "{pt:" + key_prefix + "}:task:t"
            await _until(lambda: client.xlen(stream), "the task entry")
            ((_, fields),) = await client.xrange(stream)
            _, _, items = wire.decode_tasks(fields, "test")
            answer = wire.encode_results("w", [[items[0][0], [b"out"], 1, 0, 0.1, None]])
            for _ in range(2):
                await client.xadd(executor.results_key, {wire.FIELD: answer})
            await _until(lambda: asyncio.sleep(0, executor.dropped.value == 1), "the duplicate")
        finally:
            await client.aclose()
        await executor.stop()
        await running
        return executor

    executor = asyncio.run(scenario())
    assert len(results) == 1
    assert results[0].outputs == [b"out"] and results[0].handled == 1
    assert executor.results.value == 2 and executor.dropped.value == 1
    _forget(redis_url, key_prefix)


class Recording(MetricTarget):
    """Keeps the last snapshot each registry flushed (the engine's and the worker's)."""

    def __init__(self) -> None:
        self.snapshots: dict[int, dict[str, float]] = {}

    def flush(self, registry: Registry) -> None:
        self.snapshots[id(registry)] = registry.snapshot()


def test_worker_flushes_its_metrics_and_user_metrics_to_the_targets(redis_url: str, key_prefix: str) -> None:
    class Count(Task):
        name = "count"

        def handle(self, body: bytes) -> None:
            self.metrics.incr("even" if int(body) % 2 == 0 else "odd")

    target = Recording()
    topology = Topology(
        key_prefix,
        Pipeline().task(Count()),
        MemorySource([str(i) for i in range(11)]),
        metric_targets=[target],
    )
    _, worker, _ = asyncio.run(run_with_worker(topology, redis_url))
    flushed = target.snapshots[id(worker.registry)]
    p = key_prefix + ".count."
    assert flushed[p + "even"] == 6 and flushed[p + "odd"] == 5
    assert flushed[p + "worker.msg.handle"] == 11
    _forget(redis_url, key_prefix)


def test_a_failing_task_setup_stops_the_worker_with_its_name(redis_url: str, key_prefix: str) -> None:
    class Broken(Task):
        name = "broken"

        def setup(self) -> None:
            raise RuntimeError("no database")

        def handle(self, body: bytes) -> None:
            return None

    topology = Topology(key_prefix, Pipeline().task(Broken()), MemorySource([]))
    worker = Worker(topology, None, redis_url, settings=FAST)
    with pytest.raises(
        TaskSetupError, match="setup\\(\\) of task 'broken' failed: RuntimeError: no database"
    ):
        asyncio.run(worker.run())


def test_settings_from_environment_and_their_errors() -> None:
    s = BusSettings.from_env(
        {"PYTEMPEST_BUS_CLAIM_IDLE_MS": "10_000", "PYTEMPEST_BUS_PREFETCH": ""}, max_deliveries=9
    )
    assert (s.claim_idle_ms, s.prefetch, s.max_deliveries) == (10_000, 4, 9)
    with pytest.raises(ConfigError, match="PYTEMPEST_BUS_BLOCK_MS must be a whole number; got 'soon'"):
        BusSettings.from_env({"PYTEMPEST_BUS_BLOCK_MS": "soon"})
    with pytest.raises(ConfigError, match="prefetch must be a whole number >= 1; got 0"):
        BusSettings(prefetch=0)
    with pytest.raises(
        ConfigError, match=r"heartbeat_ttl_ms \(5000\) must be larger than heartbeat_interval_ms"
    ):
        BusSettings(heartbeat_interval_ms=5000, heartbeat_ttl_ms=5000)
    assert {row[1] for row in BusSettings.describe()} >= {"PYTEMPEST_BUS_MAX_MESSAGE_BYTES"}


def test_wire_versions_and_malformed_entries() -> None:
    items = [[7, "1-0", 2, 1, 0, [b"a", b"b"]]]
    assert wire.decode_tasks({wire.FIELD: wire.encode_tasks("i", 5, items)}, "s") == ("i", 5, items)
    results = [[7, [b"o"], 2, 0, 0.5, wire.failure_to_wire(TaskFailure("E", "m", "tb", True))]]
    worker, decoded = wire.decode_results({wire.FIELD: wire.encode_results("w", results)}, "s")
    assert worker == "w" and wire.failure_from_wire(decoded[0][5]) == TaskFailure("E", "m", "tb", True)
    with pytest.raises(WireError, match="wire version 2; this pytempest speaks version 1"):
        wire.decode_tasks({wire.FIELD: msgpack.packb([2, "i", 0, []])}, "s")
    with pytest.raises(WireError, match="not valid msgpack"):
        wire.decode_results({wire.FIELD: b"\xc1"}, "s")
    with pytest.raises(WireError, match="task item must be"):
        wire.decode_tasks({wire.FIELD: msgpack.packb([1, "i", 0, [[1, 2]]])}, "s")
    chunks = list(wire.chunk_results([[1], [2], [3]], [600, 600, 100], 1000))
    assert chunks == [[[1]], [[2], [3]]]


async def _until(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _forget(url: str, name: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.srem("pt:topologies", name)
    finally:
        client.close()
