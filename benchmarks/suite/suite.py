"""The whole suite: every workload on every system, interleaved, into one results file.

Round after round, each workload runs once on each system (baseline first, then the
others in :data:`~benchmarks.suite.spec.SYSTEMS` order, then the distributed runtime at
each worker count for W1 and W2, which is W5), so slow drifts of the machine hit every
system alike. Each figure is kept with the baseline's figure of the same round.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from benchmarks.suite.plan import Plan
from benchmarks.suite.runner import percentile, run_one, streams

PEER_PACKAGES = {"bytewax": "bytewax", "dramatiq": "dramatiq", "celery": "celery"}
WORKLOADS = ("W1", "W2", "W3", "W4", "W5")
MEMORY_SYSTEMS = ("baseline", "pytempest")


def available(system: str) -> bool:
    """Whether a system's package is installed (the peers come with the ``bench`` extra)."""
    package = PEER_PACKAGES.get(system)
    return package is None or importlib.util.find_spec(package) is not None


def machine(url: str) -> dict[str, Any]:
    """What the figures were measured on."""
    r = redis.Redis.from_url(url)
    try:
        info = r.info("server")
    finally:
        r.close()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    versions = {}
    for package in ("pytempest", "redis", "hiredis", *PEER_PACKAGES.values()):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = "not installed"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": platform.platform(),
        "redis": info.get("redis_version"),
        "versions": versions,
    }


def run_suite(
    plan: Plan,
    url: str,
    workloads: tuple[str, ...],
    systems: tuple[str, ...],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the plan; return every measurement (one record per run) with the machine."""
    skipped = [s for s in systems if not available(s)]
    for s in skipped:
        log(f"skipping {s}: not installed (pip install -e '.[bench]')")
    systems = tuple(s for s in systems if s not in skipped)
    records: list[dict[str, Any]] = []
    started = time.time()
    with streams(url) as s:

        def one(workload: str, system: str, n: int, job: str = "", **kw: int) -> dict[str, Any]:
            """Run ``system`` on ``job`` (default: ``workload``); record it under ``workload``."""
            label = system + (f"-{kw['workers']}w" if kw.get("workers") else "")
            result = run_one(s, system, job or workload, n, **kw)
            record = {"workload": workload, "system": label, "round": rnd, "n": n, **asdict(result)}
            if job:
                record["job"] = job
            lat = record.pop("latencies_ms")
            if lat:
                record.update(
                    p50_ms=percentile(lat, 0.5),
                    p99_ms=percentile(lat, 0.99),
                    max_ms=max(lat),
                    rate=kw.get("rate", 0),
                )
            if result.seconds:
                record["msgs_per_s"] = n / result.seconds
            records.append(record)
            log(_line(record))
            return record

        for rnd in range(plan.rounds):
            log(f"-- round {rnd + 1} of {plan.rounds}")
            for workload in ("W1", "W2"):
                if workload in workloads:
                    for system in systems:
                        one(workload, system, plan.n(workload, system))
                if "W5" in workloads:
                    if workload not in workloads and "baseline" in systems:
                        one(workload, "baseline", plan.n(workload, "baseline"))
                    for w in plan.workers:
                        one("W5", "pytempest-dist", plan.n(workload, "pytempest"), workload, workers=w)
            if "W3" in workloads:
                for rate in plan.rates:
                    for system in systems:
                        one("W3", system, rate * plan.seconds, rate=rate)
            if "W4" in workloads:
                for system in MEMORY_SYSTEMS:
                    if system in systems:
                        one("W4", system, plan.n("W4", system))
    return {
        "machine": machine(url),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "plan": asdict(plan),
        "records": records,
    }


def _line(r: dict[str, Any]) -> str:
    head = f"{r['workload']} {r['system']:<18} n={r['n']:<7}"
    if "p99_ms" in r:
        return f"{head} at {r['rate']}/s: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms"
    if r.get("rss_bytes"):
        return f"{head} RSS growth {r['rss_bytes'] / r['n']:,.0f} B per in-flight message"
    return f"{head} {r['msgs_per_s']:>10,.0f} source msgs/s ({r['handled']:,} handle calls)"


def save(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
