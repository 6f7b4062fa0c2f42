"""Runs jobs in child processes, interleaved, checks every ack, and keeps the results.

Each round runs every system once (A B C A B C ...); a system's figure is the median
over rounds, with the minimum and maximum, and its ratio to the baseline of the same
round (the median of the per-round ratios).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from benchmarks.common import fill
from benchmarks.suite.producer import produce
from benchmarks.suite.spec import Job, Result
from benchmarks.suite.streams import group_info

CHILD_TIMEOUT_S = 900


class BenchError(RuntimeError):
    """A child failed, timed out, or left messages unacked."""


@dataclass
class Streams:
    """Streams of ``n`` 100-byte entries, filled once per size and reused by every
    system through a new consumer group each run."""

    url: str
    prefix: str

    def __post_init__(self) -> None:
        self.r = redis.Redis.from_url(self.url)
        self._by_n: dict[int, str] = {}

    def filled(self, n: int) -> str:
        key = self._by_n.get(n)
        if key is None:
            key = self._by_n[n] = f"{self.prefix}:{n}"
            fill(self.r, key, n)
        return key

    def fresh(self) -> str:
        key = f"{self.prefix}:w3:{uuid.uuid4().hex[:8]}"
        self.r.delete(key)
        return key

    def cleanup(self) -> None:
        for key in self.r.scan_iter(match=f"{self.prefix}:*"):
            self.r.delete(key)
        self.r.close()


@contextmanager
def streams(url: str) -> Iterator[Streams]:
    s = Streams(url, f"pt-suite-{os.getpid()}")
    try:
        yield s
    finally:
        s.cleanup()


def _command(job: Job) -> list[str]:
    return [sys.executable, "-m", "benchmarks.suite.child", job.to_json()]


def _result(job: Job, out: str, err: str, code: int) -> Result:
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            return Result.from_json(line[len("RESULT ") :])
    tail = "\n".join(err.strip().splitlines()[-15:])
    raise BenchError(f"{job.label} {job.workload} exited {code} without a result:\n{tail}")


def run_throughput(s: Streams, job: Job) -> Result:
    """Run a W1, W2 or W4 job on a filled stream and check that all ``n`` were acked."""
    s.r.xgroup_create(job.key, job.group, "0")
    try:
        proc = subprocess.run(
            _command(job), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
        )
        result = _result(job, proc.stdout, proc.stderr, proc.returncode)
        info = group_info(s.r, job)
        if info["entries-read"] != job.n or info["pending"]:
            raise BenchError(f"{job.label} {job.workload}: not everything acked: {info}")
        return result
    finally:
        s.r.xgroup_destroy(job.key, job.group)


def run_latency(s: Streams, job: Job) -> tuple[Result, float]:
    """Run a W3 job: start the child, produce ``n`` entries at ``rate`` once it is ready,
    and return its result with the rate achieved."""
    s.r.xgroup_create(job.key, job.group, "0", mkstream=True)
    proc = subprocess.Popen(_command(job), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    drain = threading.Thread(target=lambda: err.extend(proc.stderr or []), daemon=True)
    drain.start()
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if line.strip() == "READY":
                break
            if time.monotonic() > deadline:
                break
        else:
            proc.wait(5)
            drain.join(5)
            raise BenchError(f"{job.label} W3 exited before it was ready:\n{''.join(err[-15:])}")
        achieved = produce(redis.Redis.from_url(job.url), job.key, job.rate, job.n)
        out = proc.stdout.read()
        code = proc.wait(CHILD_TIMEOUT_S)
        drain.join(5)
        result = _result(job, out, "".join(err), code)
        if len(result.latencies_ms) != job.n:
            raise BenchError(f"{job.label} W3: {len(result.latencies_ms)} latencies for {job.n} messages")
        info = group_info(s.r, job)
        if info["pending"]:
            raise BenchError(f"{job.label} W3: {info['pending']} left pending")
        return result, achieved
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        s.r.delete(job.key)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run_one(s: Streams, system: str, workload: str, n: int, rate: int = 0, workers: int = 0) -> Result:
    """Run one job of ``system`` on ``workload`` (on a stream of its own) and check it."""
    group = f"g-{uuid.uuid4().hex[:6]}"
    if workload == "W3":
        job = Job(system, workload, s.url, s.fresh(), group, n, rate=rate, workers=workers)
        result, achieved = run_latency(s, job)
        result.notes["achieved_rate"] = achieved
        return result
    job = Job(system, workload, s.url, s.filled(n), group, n, workers=workers)
    return run_throughput(s, job)


def main() -> None:
    """``python -m benchmarks.suite.runner SYSTEM WORKLOAD N [--rate R] [--workers W]``:
    one checked run, for developing a system's module."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("system")
    parser.add_argument("workload", choices=["W1", "W2", "W3", "W4"])
    parser.add_argument("n", type=int)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    with streams(args.url) as s:
        result = run_one(s, args.system, args.workload, args.n, args.rate, args.workers)
    if result.seconds:
        print(
            f"{args.system} {args.workload}: {args.n / result.seconds:,.0f} source msgs/s, handled {result.handled}"
        )
    if result.latencies_ms:
        lat = result.latencies_ms
        print(
            f"latency ms: p50 {percentile(lat, 0.5):.2f} p99 {percentile(lat, 0.99):.2f} max {max(lat):.2f}"
            f" at {result.notes['achieved_rate']:.0f}/s"
        )
    if result.rss_bytes:
        print(
            f"rss growth {result.rss_bytes / args.n:,.0f} B per in-flight message; traced {result.traced_bytes / args.n:,.0f}"
        )
    print(result.notes)


if __name__ == "__main__":
    main()
