"""Engine overhead: the book DAG with no-op tasks, in process, against a bare Python loop.

    python -m benchmarks.engine [--messages 20000] [--runs 3]

The book DAG: T1 gets the source message and emits 10; T2 and T3 each get all 10; T2
emits 5 per input, T3 nothing; T4 gets T2's 50. That is 71 handle calls per source
message. The baseline is a hand-written loop calling the same four functions with a
counter per task. pytempest reads from a memory source with batch acks (1000 ids per
ack) and ``max_pending`` 1000. Runs are interleaved (A B A B ...) and the median is
reported.

Then the in-flight memory: with ``max_pending`` = 10,000, every message is held at T4
(its batches parked, not run) and tracemalloc measures what the engine holds per source
message, with and without the 100-byte bodies themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc

from benchmarks.common import BODY, book_pipeline, noop, t1, t2
from pytempest import AckPolicy, Pipeline, TestRun, Topology
from pytempest.engine.engine import Engine
from pytempest.engine.executor import TaskBatch
from pytempest.runtimes.inprocess import InProcessExecutor
from pytempest.sources import MemorySource


def pipeline() -> Pipeline:
    return book_pipeline()


def bare_loop(bodies: list[bytes]) -> list[int]:
    counts = [0, 0, 0, 0]
    for body in bodies:
        counts[0] += 1
        outs2: list[bytes] = []
        for o in t1(body):
            counts[1] += 1
            r = t2(o)
            if r:
                outs2.extend(r)
            counts[2] += 1
            noop(o)
        for o in outs2:
            counts[3] += 1
            noop(o)
    return counts


def run_bare(n: int) -> float:
    bodies = [BODY] * n
    start = time.perf_counter()
    counts = bare_loop(bodies)
    elapsed = time.perf_counter() - start
    assert counts == [n, 10 * n, 10 * n, 50 * n], counts
    return elapsed


def run_engine(n: int) -> float:
    source = MemorySource([BODY] * n, ack_policy=AckPolicy.batch(1000, ack_interval_ms=100))
    topology = Topology("bench", pipeline(), source, max_pending=1000)
    start = time.perf_counter()
    metrics = TestRun(topology).run(timeout_ms=600_000)
    elapsed = time.perf_counter() - start
    assert metrics["bench.source.msg.acked.success"] == n, metrics.reason
    assert metrics["bench.T4.task.msg.handle"] == 50 * n
    return elapsed


class ParkingExecutor(InProcessExecutor):
    """Holds every batch for one task until ``release``."""

    def __init__(self, park: int) -> None:
        super().__init__()
        self.park = park
        self.parked: list[TaskBatch] = []

    def submit(self, batch: TaskBatch) -> None:
        if batch.task == self.park:
            self.parked.append(batch)
        else:
            super().submit(batch)

    def release(self) -> None:
        parked, self.parked = self.parked, []
        for batch in parked:
            super().submit(batch)


async def measure_inflight(n: int) -> tuple[float, float]:
    gc.collect()
    tracemalloc.start()
    source = MemorySource([bytes([i % 256]) * 100 for i in range(n)], read_count=1000)
    executor = ParkingExecutor(park=3)
    engine = Engine(Topology("mem", pipeline(), source, max_pending=n), executor=executor, cohorts=False)
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    run = asyncio.ensure_future(engine.run(until_idle=True))
    deadline = time.monotonic() + 120
    while len(executor.parked) < n:
        assert time.monotonic() < deadline, "messages did not reach T4"
        await asyncio.sleep(0.01)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    executor.release()
    await asyncio.wait_for(run, 120)
    assert len(source.acked) == n
    per_msg = held / n
    return per_msg, per_msg - (100 + 33)  # minus the body bytes object itself


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pending", type=int, default=10_000, help="max_pending for the memory measurement")
    args = parser.parse_args()
    n = args.messages
    bare: list[float] = []
    engine: list[float] = []
    run_engine(min(n, 1000))  # warm up imports and caches
    for _ in range(args.runs):
        bare.append(run_bare(n))
        engine.append(run_engine(n))
    b, e = statistics.median(bare), statistics.median(engine)
    calls = 71 * n
    print(f"book DAG, {n} source messages, {calls} handle calls, median of {args.runs} interleaved runs")
    print(f"{'system':<10} {'src msg/s':>12} {'handle/s':>12} {'min-max s':>16}")
    print(f"{'bare loop':<10} {n / b:>12,.0f} {calls / b:>12,.0f} {min(bare):>7.3f}-{max(bare):<8.3f}")
    print(f"{'pytempest':<10} {n / e:>12,.0f} {calls / e:>12,.0f} {min(engine):>7.3f}-{max(engine):<8.3f}")
    print(f"ratio pytempest / bare loop: {b / e:.2f} (target >= 0.5)")
    per_msg, framework = asyncio.run(measure_inflight(args.pending))
    print(
        f"in flight at max_pending={args.pending}: {per_msg:,.0f} B per source message held, "
        f"{framework:,.0f} B without the 100-byte body (target < 2048)"
    )


if __name__ == "__main__":
    main()
