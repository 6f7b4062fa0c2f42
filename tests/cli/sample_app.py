"""Topologies the CLI tests run through the real entry point (not a test module)."""

from __future__ import annotations

import logging
import os

from pytempest import FailurePolicy, Pipeline, TaskError, Topology, task
from pytempest.metrics.log import LogTarget
from pytempest.sources import MemorySource


@task("split")
def split(body: bytes) -> list[bytes]:
    """Emits the words of a line; a line saying 'bad' fails."""
    if body == b"bad":
        raise TaskError("bad line")
    return body.split()


@task("count")
def count(word: bytes) -> None:
    """Counts nothing: the metrics are enough here."""


def _pipeline() -> Pipeline:
    return Pipeline().task(split).task(count).edge("split", "count")


def topology() -> Topology:
    """Three good lines from memory; the code sets max_pending 50 and a log target."""
    return Topology(
        "sample",
        _pipeline(),
        MemorySource(["a b", "c", "d e f"], read_count=7, requeue=False),
        failure_policy=FailurePolicy.retry(1, delay_ms=10),
        max_pending=50,
        metric_targets=[LogTarget()],
    )


def failing() -> Topology:
    """One line of three fails every attempt."""
    return Topology(
        "failing",
        _pipeline(),
        MemorySource(["a b", "bad", "c"]),
        failure_policy=FailurePolicy.retry(1, delay_ms=10),
    )


def redis() -> Topology:
    """A Redis stream source (never connected by validate); url from PT_TEST_URL."""
    from pytempest.sources.redis_stream import RedisStreamSource

    url = os.environ.get("PT_TEST_URL", "redis://127.0.0.1:1/0")
    return Topology("redis-sample", _pipeline(), RedisStreamSource(url, "events", "sample"))


@task("leak")
def leak(body: bytes) -> None:
    """Logs a URL with its password, as careless user code might."""
    logging.getLogger("app").warning("connecting to %s", body.decode())


def leaky() -> Topology:
    """One message: a URL with a password, which the task logs."""
    return Topology("leaky", Pipeline().task(leak), MemorySource(["redis://app:hunter2@db:6379/0"]))


def broken() -> Topology:
    """Raises instead of returning a topology."""
    raise RuntimeError("the database is down")


not_a_topology = 42
