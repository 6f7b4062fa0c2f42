"""The topology the dashboard tests run (in process or distributed), configured by env:

* ``PT_REDIS_URL``, ``PT_NAME``, ``PT_SOURCE_KEY``, ``PT_DL_KEY``: where it reads and
  dead-letters (every test uses its own key prefix);
* ``PT_SLEEP_MS``: ``store`` sleeps this long per message (keeps messages in flight).

The graph is a diamond: ``parse -> enrich -> store`` and ``parse -> audit -> store``.
A body starting with ``bad`` fails in ``parse`` (with a traceback), is retried once and
then dead-lettered.
"""

from __future__ import annotations

import os
import time

from pytempest import FailurePolicy, Pipeline, Topology, task
from pytempest.deadletters.redis import RedisStreamDeadLetter
from pytempest.sources import RedisStreamSource

URL = os.environ.get("PT_REDIS_URL", "redis://127.0.0.1:6379/0")
NAME = os.environ.get("PT_NAME", "dash")
SOURCE_KEY = os.environ.get("PT_SOURCE_KEY", f"{NAME}:source")
DL_KEY = os.environ.get("PT_DL_KEY", f"{NAME}:dead")


def _check(body: bytes) -> None:
    if body.startswith(b"bad"):
        raise ValueError(f"cannot parse {body[:20]!r}")


@task("parse")
def parse(body: bytes) -> list[bytes]:
    _check(body)
    return [body.upper()]


@task("enrich")
def enrich(body: bytes) -> list[bytes]:
    return [body + b"!"]


@task("audit")
def audit(body: bytes) -> list[bytes]:
    return [body]


@task("store")
def store(body: bytes) -> None:
    sleep_ms = int(os.environ.get("PT_SLEEP_MS", "0"))
    if sleep_ms:
        time.sleep(sleep_ms / 1000)


def make() -> Topology:
    pipeline = (
        Pipeline()
        .task(parse)
        .task(enrich)
        .task(audit)
        .task(store)
        .edges(("parse", "enrich"), ("parse", "audit"), ("enrich", "store"), ("audit", "store"))
    )
    source = RedisStreamSource(URL, SOURCE_KEY, "dash", block_ms=100, monitor_interval_ms=300)
    return Topology(
        NAME,
        pipeline,
        source,
        failure_policy=FailurePolicy.retry(1, delay_ms=50),
        dead_letter=RedisStreamDeadLetter(URL, DL_KEY),
        msg_timeout_ms=20_000,
        graceful_shutdown_ms=2000,
        max_pending=200,
    )


topology = make
