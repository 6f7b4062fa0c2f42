"""Celery 5.7.0 as a peer: a Redis broker, the prefork pool with 2 worker processes.

The setup, as Celery's docs recommend it for speed and as close to our guarantee:

- the Redis transport on the job's Redis, every kombu key under
  ``<job.key>:<job.group>:cq:`` (transport option ``global_keyprefix``), one queue;
- no result backend and ``task_ignore_result = True``; the default JSON serializer;
- ``task_acks_late = True``: a task's message is acked after the task returns, so a worker
  crash does not lose it (our guarantee);
- ``worker_prefetch_multiplier = 64`` (128 messages reserved by the worker for its 2
  processes), as Celery's Optimizing guide advises for many short tasks where throughput
  matters ("Say 64, or 128"); on our 2-core machine it gave about 10 % more W1 throughput
  than the default 4, within the noise;
- workers started as ``celery -A benchmarks.suite.systems.celery_app worker -P prefork
  -c 2 --without-gossip --without-mingle --without-heartbeat`` with remote control off
  (``worker_enable_remote_control = False``) and no task events (the default): nothing
  but the tasks goes over the broker;
- messages are published through one producer held for a batch
  (``app.producer_or_acquire()``, ``apply_async(..., producer=...)``), as Celery's
  calling guide suggests for sending many.

The benchmark child starts the workers, waits until both pool processes have answered a
ping task (before the clock starts), then feeds: ``XREADGROUP COUNT 1000`` on the job's
stream, one ``apply_async`` per source entry; the tasks keep the per-source completion
counter and the last one ``XACK``s the source entry (see :mod:`broker_common`).

- W1 and W3: ``noop(src, body)`` calls ``streams.noop``;
- W2: ``t1`` calls ``streams.t1`` and sends 10 ``t2`` and 10 ``t3``; ``t2`` calls
  ``streams.t2`` and sends 5 ``t4``; ``t3`` and ``t4`` call ``streams.noop``: 71 handle
  calls per source entry, acked when the last of them is done.

This module is also the workers' app (``app``), configured at import from the
environment the child gives the workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import Celery

from benchmarks.suite.spec import W2_CALLS, Job, Result
from benchmarks.suite.streams import client, noop, t1, t2, wait_acked
from benchmarks.suite.systems import broker_common as bc

PROCESSES = 2
PREFETCH_MULTIPLIER = 64
QUEUE = "q"

app = Celery("pt7bench")


def configure(setup: bc.Setup) -> None:
    """Point ``app`` at the job's Redis and queue, with the settings above."""
    app.conf.update(
        broker_url=setup.url,
        broker_transport_options={"global_keyprefix": f"{setup.prefix}:cq:"},
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_default_queue=QUEUE,
        worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )


_env_setup = bc.Setup.from_env()
if _env_setup is not None:
    configure(_env_setup)


@app.task(name="ping")
def ping() -> None:
    bc.completion().ping()


@app.task(name="noop")
def noop_task(src: str, body: str) -> None:
    noop(body.encode("latin-1"))
    bc.completion().finish(src, 0, body)


@app.task(name="t1")
def t1_task(src: str, body: str) -> None:
    outs = [o.decode("latin-1") for o in t1(body.encode("latin-1"))]
    bc.completion().finish(src, 2 * len(outs), body)
    with app.producer_or_acquire() as producer:
        for o in outs:
            t2_task.apply_async((src, o), producer=producer)
            t3_task.apply_async((src, o), producer=producer)


@app.task(name="t2")
def t2_task(src: str, body: str) -> None:
    outs = [o.decode("latin-1") for o in t2(body.encode("latin-1"))]
    bc.completion().finish(src, len(outs), body)
    with app.producer_or_acquire() as producer:
        for o in outs:
            t4_task.apply_async((src, o), producer=producer)


@app.task(name="t3")
def t3_task(src: str, body: str) -> None:
    noop(body.encode("latin-1"))
    bc.completion().finish(src, 0, body)


@app.task(name="t4")
def t4_task(src: str, body: str) -> None:
    noop(body.encode("latin-1"))
    bc.completion().finish(src, 0, body)


def _argv() -> list[str]:
    return [
        bc.python(),
        "-m",
        "celery",
        "-A",
        __name__,
        "worker",
        "-P",
        "prefork",
        "-c",
        str(PROCESSES),
        "-Q",
        QUEUE,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]


def _run(job: Job, ready: Callable[[], None] | None) -> Result:
    s = bc.Setup.of(job)
    configure(s)
    root = noop_task if job.workload in ("W1", "W3") else t1_task
    r = client(job)
    try:
        with bc.workers(job, "celery", _argv(), ping.delay, PROCESSES):
            with app.producer_or_acquire() as producer:

                def enqueue(src: str, body: str) -> None:
                    root.apply_async((src, body), producer=producer)

                if ready is not None:
                    ready()
                start = time.perf_counter()
                bc.feed(job, s, r, enqueue)
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
        app.close()
        r.close()


def _notes(job: Job) -> dict[str, Any]:
    calls = job.n * (W2_CALLS if job.workload == "W2" else 1)
    return {
        "setup": f"Redis broker, prefork x {PROCESSES}, acks_late, prefetch multiplier {PREFETCH_MULTIPLIER},"
        " ignore results, no result backend",
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
