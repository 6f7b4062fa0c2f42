"""What the engine's metrics cost: the book DAG with metrics on, off, and flushed to targets.

    python -m benchmarks.metrics_overhead [--messages 20000] [--runs 3]

The book DAG with no-op tasks (T1 emits 10; T2 and T3 get them; T2 emits 5 per input,
T3 nothing; T4 gets T2's 50: 71 handle calls per source message) over a memory source,
run in process by ``Engine(topology, metrics=...)`` until idle:

* ``off``: ``metrics=False`` (the engine counts nothing of its own);
* ``on``: the default (every counter, gauge and timer of the catalog);
* ``on+targets``: on, and flushed every 100 ms to statsd (a UDP socket on loopback),
  Prometheus (an HTTP endpoint on a free port) and a JSON-lines file.

Runs are interleaved (off, on, on+targets, off, ...) and the median of each is
reported, with the ratios against ``off`` (target: on >= 0.9 x off), by wall time and
by the CPU time of this process (all its threads: the flushes count), which other load
on the machine disturbs less.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import BODY, book_pipeline
from pytempest import Pipeline, Topology
from pytempest.engine.engine import Engine
from pytempest.metrics import FileTarget, MetricTarget, PrometheusTarget, StatsdTarget
from pytempest.sources import MemorySource


def pipeline() -> Pipeline:
    return book_pipeline()


def run(n: int, metrics: bool, targets: list[MetricTarget]) -> tuple[float, float]:
    """Wall and CPU seconds (of every thread of this process) of one run."""
    source = MemorySource([BODY] * n)
    topology = Topology(
        "bench", pipeline(), source, max_pending=1000, metric_targets=targets, metric_flush_interval_ms=100
    )
    engine = Engine(topology, metrics=metrics)
    start, cpu = time.perf_counter(), time.process_time()
    reason = asyncio.run(engine.run(until_idle=True))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert reason == "idle" and len(source.acked) == n, (reason, len(source.acked))
    if metrics:
        assert engine.snapshot()["bench.T4.task.msg.handle"] == 50 * n
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.messages
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    folder = Path(tempfile.mkdtemp(prefix="pytempest-bench-"))

    def targets() -> list[MetricTarget]:
        return [
            StatsdTarget(host=f"127.0.0.1:{udp.getsockname()[1]}"),
            PrometheusTarget(port=0),
            FileTarget(folder / "metrics.jsonl", clobber=True),
        ]

    times: dict[str, list[tuple[float, float]]] = {"off": [], "on": [], "on+targets": []}
    run(min(n, 1000), True, [])  # warm up imports and caches
    for _ in range(args.runs):
        times["off"].append(run(n, False, []))
        times["on"].append(run(n, True, []))
        times["on+targets"].append(run(n, True, targets()))
        while True:  # nobody reads the statsd socket: empty it between runs
            try:
                udp.recv(65535)
            except BlockingIOError:
                break
    udp.close()
    calls = 71 * n
    print(f"book DAG, {n} source messages, {calls} handle calls, median of {args.runs} interleaved runs")
    print(
        f"{'metrics':<11} {'src msg/s':>11} {'handle/s':>12} {'min-max s':>15} {'x off':>6} {'cpu x off':>10}"
    )
    off = statistics.median(w for w, _ in times["off"])
    off_cpu = statistics.median(c for _, c in times["off"])
    for name, values in times.items():
        wall = [w for w, _ in values]
        m = statistics.median(wall)
        c = statistics.median(c for _, c in values)
        print(
            f"{name:<11} {n / m:>11,.0f} {calls / m:>12,.0f} {min(wall):>7.3f}-{max(wall):<7.3f} "
            f"{off / m:>6.2f} {off_cpu / c:>10.2f}"
        )
    on = statistics.median(w for w, _ in times["on"])
    on_cpu = statistics.median(c for _, c in times["on"])
    print(f"ratio on / off: {off / on:.3f} wall, {off_cpu / on_cpu:.3f} CPU (target >= 0.9)")


if __name__ == "__main__":
    main()
