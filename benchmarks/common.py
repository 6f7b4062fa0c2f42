"""What the benchmarks share: the workloads' task functions and pipelines, and stream filling."""

from __future__ import annotations

import redis

from pytempest import Pipeline, task

BODY = b"x" * 100
"""Every benchmark message: 100 bytes."""


def t1(body: bytes) -> list[bytes]:
    """The book DAG's root: emits 10."""
    return [body] * 10


def t2(body: bytes) -> list[bytes]:
    """The book DAG's T2: emits 5 per input."""
    return [body] * 5


def noop(body: bytes) -> None:
    """A task that does nothing and emits nothing."""
    return None


def book_pipeline() -> Pipeline:
    """The book DAG: T1 -> T2 -> T4, T1 -> T3 -> T4; 71 handle calls per source message."""
    return (
        Pipeline()
        .task(task("T1")(t1))
        .task(task("T2")(t2))
        .task(task("T3")(noop))
        .task(task("T4")(noop))
        .edges(("T1", "T2"), ("T1", "T3"), ("T2", "T4"), ("T3", "T4"))
    )


def w1_pipeline() -> Pipeline:
    """W1: one no-op task."""
    return Pipeline().task(task("noop")(noop))


def fill(client: redis.Redis, key: str, n: int) -> None:
    """Replace ``key`` with a stream of ``n`` entries of :data:`BODY`, 1000 per round trip."""
    client.delete(key)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(key, {"body": BODY})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
