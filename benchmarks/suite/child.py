"""Runs one :class:`~benchmarks.suite.spec.Job` in this (fresh) process and prints its result.

    python -m benchmarks.suite.child '<job as JSON>'

The system's module (``MODULES[job.system]``) provides ``throughput(job)`` for W1 and W2,
``latency(job, ready)`` for W3 (``ready()`` prints ``READY``: the runner starts its
producer then) and, where it has one, ``memory(job)`` for W4. The last line printed is
``RESULT <json>``.
"""

from __future__ import annotations

import importlib
import sys

from benchmarks.suite.spec import MODULES, Job, Result


def ready() -> None:
    print("READY", flush=True)


def main() -> None:
    job = Job.from_json(sys.argv[1])
    module = importlib.import_module(MODULES[job.system])
    result: Result
    if job.workload in ("W1", "W2"):
        result = module.throughput(job)
    elif job.workload == "W3":
        result = module.latency(job, ready)
    elif job.workload == "W4":
        result = module.memory(job)
    else:
        raise SystemExit(f"unknown workload {job.workload!r}")
    print("RESULT " + result.to_json(), flush=True)


if __name__ == "__main__":
    main()
