"""Cohorts over the bus (redis_bus/cohorts.py): an all-inline pipeline sends each poll per
task as one entry; the same outcomes as in process, timeouts, max_pending, shutdown, claims."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest
import redis

from pytempest import FailurePolicy, Pipeline, Topology, task
from pytempest.deadletters import MemoryDeadLetter
from pytempest.engine.engine import Engine
from pytempest.engine.executor import TaskFailure
from pytempest.errors import WireError
from pytempest.metrics.registry import Registry
from pytempest.runtimes.cohort import CohortInput
from pytempest.runtimes.redis_bus import BusSettings, RedisBusExecutor, Worker, cohorts, process, wire
from pytempest.sources import MemorySource

FAST = BusSettings(heartbeat_interval_ms=100, heartbeat_ttl_ms=1000, block_ms=100, claim_interval_ms=50)


def dag(seen: list[bytes]) -> Pipeline:
    """split -> (upper, keep) -> sink; 'bad' raises in split, 'odd' in upper; upper emits
    a str for 'str' (allowed) and an int for 'int' (a bad output: fails the message)."""

    @task("split")
    def split(body: bytes) -> list[bytes]:
        if body.startswith(b"bad"):
            raise ValueError(f"bad body {body!r}")
        return [body + b".1", body + b".2"]

    @task("upper")
    def upper(body: bytes) -> Any:
        if body.startswith(b"odd") and body.endswith(b".2"):
            raise RuntimeError("odd")
        if body.startswith(b"int"):
            return [7]
        return [body.upper()]

    @task("keep", filter=lambda b: not b.endswith(b".1"))
    def keep(body: bytes) -> list[bytes]:
        return [body]

    @task("sink")
    def sink(body: bytes) -> None:
        seen.append(body)

    return (
        Pipeline()
        .task(split)
        .task(upper)
        .task(keep)
        .task(sink)
        .edges(("split", "upper"), ("split", "keep"), ("upper", "sink"), ("keep", "sink"))
    )


BODIES = [b"a", b"bad1", b"b", b"odd", b"int", b"c", b"bad2", b"d"]


WHOLE: list[list[str] | None] = [None]
"""One worker serving every task: it runs each cohort's whole graph (``g`` entries)."""
SPLIT = [["split"], ["upper"], ["keep"], ["sink"]]
"""A worker per task of :func:`dag`: each cohort goes task by task (``c`` entries)."""


async def run_topology(
    topology: Topology,
    url: str | None,
    settings: BusSettings = FAST,
    layout: list[list[str] | None] = WHOLE,
) -> Engine:
    """Run until idle in process (``url`` None) or over the bus with a worker per entry of
    ``layout`` (the tasks it serves; None: all)."""
    if url is None:
        engine = Engine(topology)
        await asyncio.wait_for(engine.run(until_idle=True), 30)
        return engine
    registry = Registry()
    executor = RedisBusExecutor(topology.name, url, settings=settings, registry=registry)
    engine = Engine(topology, executor, registry)
    workers = [Worker(topology, tasks, url, settings=settings) for tasks in layout]
    serving = [asyncio.create_task(w.run()) for w in workers]
    try:
        await asyncio.wait_for(engine.run(until_idle=True), 30)
    finally:
        for w in workers:
            w.request_stop()
        await asyncio.wait_for(asyncio.gather(*serving), 10)
    assert engine._async_cohorts
    return engine


@pytest.mark.parametrize("layout", [WHOLE, SPLIT], ids=["whole-graph worker", "a worker per task"])
def test_a_dag_gives_the_same_outcome_over_the_bus_as_in_process(
    redis_url: str, key_prefix: str, layout: list[list[str] | None]
) -> None:
    outcomes = []
    for url in (None, redis_url):
        seen: list[bytes] = []
        letters = MemoryDeadLetter()
        topology = Topology(
            key_prefix, dag(seen), MemorySource(BODIES), dead_letter=letters,
            failure_policy=FailurePolicy.retry(0),
        )  # fmt: skip
        engine = asyncio.run(run_topology(topology, url, layout=layout))
        m = engine.snapshot()
        failed = sorted((r.body, r.task, r.error.split(":")[0]) for r in letters.records)
        counts = {
            k.split(".", 1)[1]: v for k, v in m.items() if ".task.msg." in k or ".source.msg.acked" in k
        }
        outcomes.append((sorted(seen), failed, counts))
    assert outcomes[0][:2] == outcomes[1][:2]
    # outflow left out: the in-process cohort counts a task's outputs before a failing
    # body twice (runtimes/cohort.py _run_task); the bus counts each output once.
    same = [{k: v for k, v in o[2].items() if not k.endswith(".outflow")} for o in outcomes]
    assert same[0] == same[1]
    seen, failed, counts = outcomes[1]
    assert failed == [
        (b"bad1", "split", "ValueError"),
        (b"bad2", "split", "ValueError"),
        (b"int", "upper", "TypeError"),
        (b"odd", "upper", "RuntimeError"),
    ]
    assert seen == sorted(
        [x + s for x in (b"A", b"B", b"C", b"D") for s in (b".1", b".2")] + [b"a.2", b"b.2", b"c.2", b"d.2"]
    )
    assert counts["source.msg.acked.success"] == len(BODIES)
    assert counts["split.task.msg.error"] == 2 and counts["upper.task.msg.error"] == 2
    if layout is SPLIT:  # task by task every output crosses the bus once
        assert counts["split.task.msg.outflow"] == 12 and counts["upper.task.msg.outflow"] == 8
    sent = engine.snapshot()[key_prefix + ".bus.entry.sent"]
    assert sent == 1 if layout is WHOLE else sent >= 4  # one g entry, or one entry per task at least
    _forget(redis_url, key_prefix)


def test_a_cohort_nobody_answers_times_out_whole_and_max_pending_holds(
    redis_url: str, key_prefix: str
) -> None:
    @task("t")
    def t(body: bytes) -> None:
        return None

    letters = MemoryDeadLetter()
    source = MemorySource([b"m%d" % i for i in range(20)])
    topology = Topology(
        key_prefix, Pipeline().task(t), source, msg_timeout_ms=400, max_pending=5, dead_letter=letters,
        failure_policy=FailurePolicy.retry(0),
    )  # fmt: skip
    stream = "{pt:" + key_prefix + "}:task:t"

    async def scenario() -> tuple[Engine, list[int], list[int]]:
        registry = Registry()
        executor = RedisBusExecutor(key_prefix, redis_url, settings=FAST, registry=registry)
        engine = Engine(topology, executor, registry)
        running = asyncio.create_task(engine.run(until_idle=True))
        client = redis.asyncio.Redis.from_url(redis_url)
        loads = []
        try:
            await _until(lambda: client.xlen(stream), "the first cohort entry")
            for _ in range(20):  # no worker: nothing finishes before the timeout
                loads.append(int(engine.snapshot().get(key_prefix + ".source.msg.read", 0)))
                await asyncio.sleep(0.01)
            await asyncio.wait_for(running, 30)
            entries = await client.xrange(stream)
        finally:
            await client.aclose()
        sizes = [len(cohorts.decode_task(f, "test")[3]) for _, f in entries]
        return engine, sizes, loads

    engine, sizes, read = asyncio.run(scenario())
    assert read[-1] == 5  # max_pending: the cohort in flight holds every slot
    assert max(sizes) <= 5 and sum(sizes) == 20
    assert {r.reason for r in letters.records} == {"timeout"}
    assert sorted(r.body for r in letters.records) == sorted(b"m%d" % i for i in range(20))
    assert engine.snapshot()[key_prefix + ".source.msg.acked.success"] == 20
    _forget(redis_url, key_prefix)


def test_shutdown_waits_for_a_cohort_in_flight(redis_url: str, key_prefix: str) -> None:
    done: list[bytes] = []

    @task("t")
    def t(body: bytes) -> None:
        done.append(body)

    source = MemorySource([b"a", b"b", b"c"])
    topology = Topology(key_prefix, Pipeline().task(t), source, graceful_shutdown_ms=10_000)
    stream = "{pt:" + key_prefix + "}:task:t"

    async def scenario() -> Engine:
        registry = Registry()
        executor = RedisBusExecutor(key_prefix, redis_url, settings=FAST, registry=registry)
        engine = Engine(topology, executor, registry)
        running = asyncio.create_task(engine.run())
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await _until(lambda: client.xlen(stream), "the cohort entry")
        finally:
            await client.aclose()
        engine.request_stop()
        await asyncio.sleep(0.2)
        assert not running.done()  # still waiting for the cohort
        worker = Worker(topology, None, redis_url, settings=FAST)
        serving = asyncio.create_task(worker.run())
        assert await asyncio.wait_for(running, 30) == "requested"
        worker.request_stop()
        await asyncio.wait_for(serving, 10)
        return engine

    engine = asyncio.run(scenario())
    assert sorted(done) == [b"a", b"b", b"c"]
    assert engine.snapshot()[key_prefix + ".source.msg.acked.success"] == 3
    _forget(redis_url, key_prefix)


def test_a_stop_at_once_leaves_the_cohort_unacked(redis_url: str, key_prefix: str) -> None:
    @task("t")
    def t(body: bytes) -> None:
        return None

    source = MemorySource([b"a", b"b"])
    topology = Topology(key_prefix, Pipeline().task(t), source, graceful_shutdown_ms=100)
    stream = "{pt:" + key_prefix + "}:task:t"

    async def scenario() -> Engine:
        registry = Registry()
        executor = RedisBusExecutor(key_prefix, redis_url, settings=FAST, registry=registry)
        engine = Engine(topology, executor, registry)
        running = asyncio.create_task(engine.run())
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await _until(lambda: client.xlen(stream), "the cohort entry")
        finally:
            await client.aclose()
        engine.request_stop()
        await asyncio.wait_for(running, 30)
        return engine

    engine = asyncio.run(scenario())
    m = engine.snapshot()
    assert m.get(key_prefix + ".source.msg.acked.success", 0) == 0
    assert m[key_prefix + ".topology.source.msg.released"] == 2
    assert engine.load == 0 and not engine._cohort_tasks
    _forget(redis_url, key_prefix)


def test_a_cohort_entry_a_dead_worker_held_is_claimed(redis_url: str, key_prefix: str) -> None:
    done, letters, worker = _ghost_holds_the_entry(redis_url, key_prefix, max_deliveries=5, reads=1)
    assert worker.counts.claimed == 1 and worker.counts.poison == 0
    assert sorted(done) == [b"a", b"b"] and letters.records == []


def test_a_cohort_entry_delivered_too_often_fails_its_messages_unrun(redis_url: str, key_prefix: str) -> None:
    done, letters, worker = _ghost_holds_the_entry(redis_url, key_prefix, max_deliveries=2, reads=3)
    assert worker.counts.claimed == 1 and worker.counts.poison == 1
    assert done == []
    assert sorted(r.body for r in letters.records) == [b"a", b"b"]
    assert {r.error.split(":")[0] for r in letters.records} == {"MaxDeliveriesExceeded"}


def _ghost_holds_the_entry(
    url: str, name: str, max_deliveries: int, reads: int
) -> tuple[list[bytes], MemoryDeadLetter, Worker]:
    """A "worker" reads the cohort entry ``reads`` times and dies each time; then a real
    worker claims it."""
    done: list[bytes] = []

    @task("t")
    def t(body: bytes) -> None:
        done.append(body)

    letters = MemoryDeadLetter()
    topology = Topology(
        name, Pipeline().task(t), MemorySource([b"a", b"b"]), dead_letter=letters,
        failure_policy=FailurePolicy.retry(0),
    )  # fmt: skip
    settings = BusSettings(
        heartbeat_interval_ms=100, block_ms=100, claim_idle_ms=1, claim_interval_ms=50,
        max_deliveries=max_deliveries,
    )  # fmt: skip
    stream = "{pt:" + name + "}:task:t"

    async def scenario() -> Worker:
        registry = Registry()
        executor = RedisBusExecutor(name, url, settings=settings, registry=registry)
        engine = Engine(topology, executor, registry)
        running = asyncio.create_task(engine.run(until_idle=True))
        client = redis.asyncio.Redis.from_url(url)
        try:
            await _until(lambda: client.xlen(stream), "the cohort entry")
            await client.xreadgroup("workers", "ghost", {stream: ">"})
            for _ in range(reads - 1):
                await client.xreadgroup("workers", "ghost", {stream: "0"})
        finally:
            await client.aclose()
        worker = Worker(topology, None, url, settings=settings)
        serving = asyncio.create_task(worker.run())
        await asyncio.wait_for(running, 30)
        worker.request_stop()
        await asyncio.wait_for(serving, 10)
        return worker

    worker = asyncio.run(scenario())
    _forget(url, name)
    return done, letters, worker


@pytest.mark.parametrize("whole", [False, True], ids=["a worker per task", "whole-graph worker"])
def test_size_limits_fail_only_the_message_over_them(redis_url: str, key_prefix: str, whole: bool) -> None:
    """Per task, a message whose bodies for one task exceed ``max_message_bytes`` fails
    (the source body of one, the outputs of another). A whole-graph worker runs the
    outputs where they are made: only what crosses Redis (the source body) is limited."""
    seen: list[bytes] = []

    @task("grow")
    def grow(body: bytes) -> list[bytes]:
        return [b"y" * 600] * (3 if body == b"big-out" else 1)

    @task("sink")
    def sink(body: bytes) -> None:
        seen.append(body)

    letters = MemoryDeadLetter()
    bodies = [b"ok", b"x" * 5000, b"big-out", *(b"%04d" % i for i in range(40))]
    topology = Topology(
        key_prefix, Pipeline().task(grow).task(sink).edge("grow", "sink"), MemorySource(bodies),
        dead_letter=letters, max_pending=100, failure_policy=FailurePolicy.retry(0),
    )  # fmt: skip
    settings = BusSettings(
        heartbeat_interval_ms=100, block_ms=100, max_message_bytes=1000, entry_max_bytes=2000
    )
    layout: list[list[str] | None] = [None] if whole else [["grow"], ["sink"]]
    engine = asyncio.run(run_topology(topology, redis_url, settings, layout))
    failed = sorted((r.body[:7], r.error.split(":")[0]) for r in letters.records)
    too_large = [] if whole else [(b"big-out", "MessageTooLarge")]
    assert failed == [*too_large, (b"x" * 7, "MessageTooLarge")]
    assert len(seen) == len(bodies) - len(failed) + (2 if whole else 0)  # big-out emitted 3
    m = engine.snapshot()
    assert m[key_prefix + ".source.msg.acked.success"] == len(bodies)
    if not whole:
        assert m[key_prefix + ".bus.entry.sent"] > 2  # the sink's input was split into entries
    _forget(redis_url, key_prefix)


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


def test_a_task_input_is_split_at_message_boundaries_within_the_entry_limit() -> None:
    graph = Pipeline().task(task("t")(lambda body: None)).build()
    rng = random.Random(7)
    for _ in range(200):
        sender = cohorts.CohortSender(
            graph, "i", max_entry_bytes=rng.randint(1, 60), max_message_bytes=rng.randint(1, 80),
            send=lambda t, d, n: None, next_ref=lambda: 0,
            too_large=lambda t, n: TaskFailure("MessageTooLarge", str(n)),
        )  # fmt: skip
        todo = CohortInput()
        for m in range(rng.randint(1, 30)):
            k = rng.randint(1, 4)
            todo.bodies += [b"x" * rng.randint(0, 12) for _ in range(k)]
            todo.owners.append(m)
            todo.counts.append(k)
        failed: dict[int, tuple[int, TaskFailure]] = {}
        chunks = sender._chunks(0, todo, failed)
        kept = todo.without(failed)
        assert [s for c in chunks for s in zip(c.owners, c.counts, strict=True)] == list(
            zip(kept.owners, kept.counts, strict=True)
        )
        assert [b for c in chunks for b in c.bodies] == kept.bodies
        for c in chunks:
            assert sum(c.counts) == len(c.bodies)
            assert len(c.counts) == 1 or sum(map(len, c.bodies)) <= sender.max_entry_bytes
        at = 0
        for m, k in zip(todo.owners, todo.counts, strict=True):
            size = sum(map(len, todo.bodies[at : at + k]))
            at += k
            assert (m in failed) == (size > sender.max_message_bytes)


def test_the_topology_command_runs_cohorts_and_reports_their_failures(
    redis_url: str, key_prefix: str
) -> None:
    """``pytempest topology`` (run_topology) attaches the status publisher: it needs only
    ``failed`` events, so cohorts stay on, and a failure still reaches its snapshot."""
    seen: list[bytes] = []
    letters = MemoryDeadLetter()
    topology = Topology(
        key_prefix,
        dag(seen),
        MemorySource(BODIES),
        dead_letter=letters,
        failure_policy=FailurePolicy.retry(0),
    )
    engines: list[Engine] = []

    async def scenario() -> None:
        worker = Worker(topology, None, redis_url, settings=FAST)
        serving = asyncio.create_task(worker.run())
        try:
            reason, _ = await asyncio.wait_for(
                process.run_topology(
                    topology, redis_url, settings=FAST, until_idle=True, engine_ready=engines.append
                ),
                30,
            )
            assert reason == "idle"
        finally:
            worker.request_stop()
            await asyncio.wait_for(serving, 10)

    asyncio.run(scenario())
    (engine,) = engines
    assert engine._async_cohorts
    assert engine.snapshot()[key_prefix + ".bus.entry.sent"] == 1  # one poll: one whole-graph entry
    assert len(letters.records) == 4 and len(seen) == 12
    (publisher,) = [ob for ob in engine.observers if type(ob).__name__ == "StatusPublisher"]
    assert len(publisher.take()["errors"]) == 4
    _forget(redis_url, key_prefix)


def test_a_whole_graph_entry_must_hold_one_body_per_source_message() -> None:
    good = msgpack.packb([wire.WIRE_VERSION, "i", 0, 7, [1, 1], [b"a", b"b"]])
    assert cohorts.decode_task({cohorts.GRAPH_FIELD: good}, "t", cohorts.GRAPH_FIELD)[2] == [1, 1]
    bad = msgpack.packb([wire.WIRE_VERSION, "i", 0, 7, [2], [b"a", b"b"]])
    assert cohorts.decode_task({cohorts.FIELD: bad}, "t")[2] == [2]  # fine for one task
    with pytest.raises(WireError, match="one body per source message"):
        cohorts.decode_task({cohorts.GRAPH_FIELD: bad}, "t", cohorts.GRAPH_FIELD)
