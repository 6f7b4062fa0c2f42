"""Dramatiq 2.2.1 as a peer: a Redis broker, 2 worker processes x 8 threads.

The setup, as Dramatiq's docs recommend it for speed and as close to our guarantee:

- ``dramatiq.brokers.redis.RedisBroker`` on the job's Redis, its keys under the namespace
  ``<job.key>:<job.group>:dq``; the default middleware (AgeLimit, TimeLimit,
  ShutdownNotifications, Callbacks, Pipelines, Retries), no Results middleware (no result
  backend), the default JSON encoder;
- workers started as ``python -m dramatiq benchmarks.suite.systems.dramatiq_app:setup
  --processes 2 --threads 8`` with default prefetch (2 x threads = 16 messages per
  process) and default worker timeout (idle consumers back off up to 1 s);
- Dramatiq acks a message only after its actor returns (it has no early ack), and its
  Redis broker requeues the unacked messages of a dead worker, so a crash does not lose a
  task: the same at-least-once guarantee as ours.

The benchmark child starts the workers, waits until both worker processes have answered a
ping actor (before the clock starts), then feeds: ``XREADGROUP COUNT 1000`` on the job's
stream, one ``actor.send`` per source entry; the tasks keep the per-source completion
counter and the last one ``XACK``s the source entry (see :mod:`broker_common`).

- W1 and W3: ``noop(src, body)`` calls ``streams.noop``;
- W2: ``t1`` calls ``streams.t1`` and sends 10 ``t2`` and 10 ``t3``; ``t2`` calls
  ``streams.t2`` and sends 5 ``t4``; ``t3`` and ``t4`` call ``streams.noop``: 71 handle
  calls per source entry, acked when the last of them is done.

This module is also the workers' app: ``setup()`` (called by Dramatiq's CLI in each worker
process) reads the job from the environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.suite.spec import W2_CALLS, Job, Result
from benchmarks.suite.streams import client, noop, t1, t2, wait_acked
from benchmarks.suite.systems import broker_common as bc

PROCESSES = 2
THREADS = 8


def build(setup: bc.Setup) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Make the broker (set as Dramatiq's global broker) and declare the actors on it."""
    broker = RedisBroker(url=setup.url, namespace=f"{setup.prefix}:dq")  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)

    @dramatiq.actor(broker=broker)
    def ping() -> None:
        bc.completion().ping()

    @dramatiq.actor(broker=broker, actor_name="noop")
    def noop_task(src: str, body: str) -> None:
        noop(body.encode("latin-1"))
        bc.completion().finish(src, 0, body)

    @dramatiq.actor(broker=broker, actor_name="t1")
    def t1_task(src: str, body: str) -> None:
        outs = [o.decode("latin-1") for o in t1(body.encode("latin-1"))]
        bc.completion().finish(src, 2 * len(outs), body)
        for o in outs:
            t2_task.send(src, o)
            t3_task.send(src, o)

    @dramatiq.actor(broker=broker, actor_name="t2")
    def t2_task(src: str, body: str) -> None:
        outs = [o.decode("latin-1") for o in t2(body.encode("latin-1"))]
        bc.completion().finish(src, len(outs), body)
        for o in outs:
            t4_task.send(src, o)

    @dramatiq.actor(broker=broker, actor_name="t3")
    def t3_task(src: str, body: str) -> None:
        noop(body.encode("latin-1"))
        bc.completion().finish(src, 0, body)

    @dramatiq.actor(broker=broker, actor_name="t4")
    def t4_task(src: str, body: str) -> None:
        noop(body.encode("latin-1"))
        bc.completion().finish(src, 0, body)

    return {"ping": ping, "noop": noop_task, "t1": t1_task, "t2": t2_task, "t3": t3_task, "t4": t4_task}


def setup() -> None:
    """The workers' entry point (``python -m dramatiq <this module>:setup``)."""
    s = bc.Setup.from_env()
    if s is None:
        raise RuntimeError(f"{bc.ENV}* not set: this is run by the benchmark child")
    build(s)


def _argv() -> list[str]:
    return [
        bc.python(),
        "-m",
        "dramatiq",
        f"{__name__}:setup",
        "--processes",
        str(PROCESSES),
        "--threads",
        str(THREADS),
    ]


def _run(job: Job, ready: Callable[[], None] | None) -> Result:
    s = bc.Setup.of(job)
    actors = build(s)
    root = actors["noop"] if job.workload in ("W1", "W3") else actors["t1"]
    ping = actors["ping"]
    r = client(job)
    try:
        with bc.workers(job, "dramatiq", _argv(), ping.send, PROCESSES):
            if ready is not None:
                ready()
            start = time.perf_counter()
            bc.feed(job, s, r, root.send)
            if ready is not None:
                lat = bc.collect_latencies(r, s, job.n)
                wait_acked(r, job, timeout_s=bc.DEADLINE_S)
                return Result(handled=bc.handled(r, s), latencies_ms=lat, notes=_notes(job))
            fed = time.perf_counter() - start
            wait_acked(r, job, timeout_s=bc.DEADLINE_S)
            seconds = time.perf_counter() - start
            notes = {**_notes(job), "feed_seconds": round(fed, 4)}
            return Result(seconds=seconds, handled=bc.handled(r, s), notes=notes)
    finally:
        dramatiq.get_broker().close()
        r.close()


def _notes(job: Job) -> dict[str, Any]:
    calls = job.n * (W2_CALLS if job.workload == "W2" else 1)
    return {
        "setup": f"RedisBroker, {PROCESSES} processes x {THREADS} threads, prefetch {2 * THREADS}/process, no results",
        "handled": f"tasks that ran their handle call, counted in Redis by the tasks (expected {calls})",
    }


def throughput(job: Job) -> Result:
    """W1, W2: ``seconds`` from the feeder's first read to the group having nothing
    pending (worker start-up excluded)."""
    return _run(job, None)


def latency(job: Job, ready: Callable[[], None]) -> Result:
    """W3 on the W1 setup: each ``noop`` task that acks its source entry pushes the time
    from the entry's send stamp to the return of its ``XACK``; the child collects them."""
    return _run(job, ready)
