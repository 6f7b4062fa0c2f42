"""pytempest in one process: the engine with the in-process executor.

The topology reads the job's stream through its group with ``RedisStreamSource`` as it
comes out of the box (``read_count`` 1000, read-ahead on, ``batch(1000,
ack_interval_ms=100)`` acks, which are sent at once when nothing else is in flight) and
``max_pending`` 5,000. W1 is one no-op task; W2 the book DAG (``benchmarks.common``): both
are all-inline pipelines, so the engine runs each poll as a cohort, task by task. W4 puts
a threaded task in front that blocks until ``n`` source messages are in flight.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Sequence

from benchmarks.common import book_pipeline, w1_pipeline
from benchmarks.suite.spec import Job, Result
from benchmarks.suite.streams import latency_ms, rss_bytes
from pytempest import Pipeline, Topology, task
from pytempest.engine.engine import Engine
from pytempest.engine.events import EngineObserver
from pytempest.metrics.registry import Registry
from pytempest.model.message import SourceMsg
from pytempest.sources import RedisStreamSource

MAX_PENDING = 5000
NAME = "suite"


def source(job: Job, cls: type[RedisStreamSource] = RedisStreamSource) -> RedisStreamSource:
    return cls(job.url, job.key, job.group, consumer="pytempest", block_ms=100)


def handled(registry: Registry, pipeline: Pipeline, name: str = NAME) -> int:
    return sum(registry.counter("task.msg.handle", topology=name, task=t.name).value for t in pipeline.tasks)


def acked(registry: Registry, name: str = NAME) -> int:
    return registry.counter("source.msg.acked", topology=name, status="success").value


class StopAfter(EngineObserver):
    """Stops the engine once ``n`` messages were acked (as the baseline stops: no idle wait)."""

    def __init__(self, n: int) -> None:
        self.n, self.count = n, 0
        self.engine: Engine | None = None

    def acked(self, count: int, ok: bool) -> None:
        if ok:
            self.count += count
            if self.count >= self.n and self.engine is not None:
                self.engine.request_stop("requested")


def throughput(job: Job) -> Result:
    pipeline = w1_pipeline() if job.workload == "W1" else book_pipeline()
    registry = Registry()
    stop = StopAfter(job.n)
    topology = Topology(NAME, pipeline, source(job), max_pending=MAX_PENDING)
    engine = stop.engine = Engine(topology, None, registry, observers=[stop])
    import os

    if os.environ.get("PT7_NOGC"):
        gc.disable()
    start = time.perf_counter()
    asyncio.run(engine.run())
    seconds = time.perf_counter() - start
    if acked(registry) != job.n:
        raise AssertionError(f"acked {acked(registry)} of {job.n}")
    return Result(seconds=seconds, handled=handled(registry, pipeline))


class _TimedSource(RedisStreamSource):
    """Records, for W3, each message's latency when its ``XACK`` returned."""

    def __init__(self, *args: object, on_done: Callable[[], None], n: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sent: dict[str, bytes] = {}
        self.latencies: list[float] = []
        self._on_done, self._n = on_done, n

    async def poll(self, max_count: int) -> list[SourceMsg]:
        msgs = await super().poll(max_count)
        for m in msgs:
            self.sent[m.id] = m.body
        return msgs

    async def ack(self, ids: Sequence[str]) -> None:
        await super().ack(ids)
        now = time.time_ns()
        self.latencies.extend(latency_ms(self.sent.pop(i), now) for i in ids)
        if len(self.latencies) >= self._n:
            self._on_done()


def latency(job: Job, ready: Callable[[], None]) -> Result:
    registry = Registry()
    engine: Engine | None = None

    def done() -> None:
        assert engine is not None
        engine.request_stop("requested")

    src = _TimedSource(job.url, job.key, job.group, consumer="pytempest", block_ms=100, on_done=done, n=job.n)
    engine = Engine(Topology(NAME, w1_pipeline(), src, max_pending=MAX_PENDING), None, registry)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, ready)  # the engine is polling by then
        await engine.run()

    asyncio.run(main())
    return Result(handled=len(src.latencies), latencies_ms=src.latencies)


def memory(job: Job) -> Result:
    """RSS growth with ``n`` source messages in flight (``max_pending`` = ``n``): a
    threaded task holds them until the engine's load reaches ``n``."""
    release = threading.Event()

    @task("slow", threaded=True, concurrency=1)
    def slow(body: bytes) -> None:
        release.wait(600)

    pipeline = Pipeline().task(slow)
    registry = Registry()
    engine = Engine(Topology(NAME, pipeline, source(job), max_pending=job.n), None, registry)
    grown = 0

    async def watch() -> None:
        nonlocal grown
        deadline = time.monotonic() + 300
        while engine.load < job.n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load {engine.load} never reached {job.n}")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        gc.collect()
        grown = rss_bytes() - before
        release.set()

    async def main() -> None:
        await asyncio.gather(engine.run(until_idle=True), watch())

    gc.collect()
    before = rss_bytes()
    asyncio.run(main())
    if acked(registry) != job.n:
        raise AssertionError(f"acked {acked(registry)} of {job.n}")
    return Result(handled=handled(registry, pipeline), rss_bytes=grown)
