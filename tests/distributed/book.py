"""The book DAG, for the distributed runtime's tests (run by real processes).

T1 emits 10 bodies per input, T2 emits 5 per input, T3 emits nothing, T4 counts::

    T1 -> T2 -> T4
    T1 -> T3 -> T4

so N source messages make 10 N T2 and T3 messages and 50 N T4 messages. Configured from
the environment, so one file serves every test:

* ``PT_REDIS_URL``, ``PT_SOURCE_KEY``, ``PT_GROUP``, ``PT_CONSUMER``: the stream source;
  ``PT_SOURCE=memory`` with ``PT_MESSAGES=n`` uses a memory source instead;
* ``PT_NAME``: the topology name (tests use their own key prefix);
* ``PT_COUNTER``: a Redis key; every worker process adds its T4 handle count to it
  (``INCRBY`` every ``FLUSH_EVERY`` calls and at teardown) and ``PT_COUNTER:pids`` gets
  the pid of every process that ran T4;
* ``PT_CLAIM_IDLE_MS``: the source's claim handler's idle time (restart tests);
* ``PT_T3_SLEEP_MS``: T3 sleeps this long per call (keeps messages in flight).
"""

from __future__ import annotations

import os
import time

import redis

from pytempest import FailurePolicy, Pipeline, Task, Topology, task
from pytempest.sources import MemorySource, PendingHandler, RedisStreamSource

FLUSH_EVERY = 500
URL = os.environ.get("PT_REDIS_URL", "redis://127.0.0.1:6379/0")


@task("T1")
def t1(body: bytes) -> list[bytes]:
    return [body + b".%d" % i for i in range(10)]


@task("T2")
def t2(body: bytes) -> list[bytes]:
    return [body + b".%d" % i for i in range(5)]


@task("T3")
def t3(body: bytes) -> None:
    sleep_ms = int(os.environ.get("PT_T3_SLEEP_MS", "0"))
    if sleep_ms:
        time.sleep(sleep_ms / 1000)


class T4(Task):
    """Counts its calls into a Redis counter (per process, flushed in chunks)."""

    name = "T4"

    def __init__(self) -> None:
        self.count = 0
        self.client: redis.Redis | None = None

    def setup(self) -> None:
        key = os.environ.get("PT_COUNTER")
        if key:
            self.client = redis.Redis.from_url(URL)
            self.client.sadd(key + ":pids", os.getpid())

    def handle(self, body: bytes) -> None:
        self.count += 1
        if self.count >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        key = os.environ.get("PT_COUNTER")
        if self.client is not None and key and self.count:
            self.client.incrby(key, self.count)
        self.count = 0

    def teardown(self) -> None:
        self.flush()
        if self.client is not None:
            self.client.close()


def source() -> RedisStreamSource | MemorySource:
    if os.environ.get("PT_SOURCE") == "memory":
        return MemorySource([f"m{i}" for i in range(int(os.environ.get("PT_MESSAGES", "100")))])
    return RedisStreamSource(
        url=URL,
        key=os.environ["PT_SOURCE_KEY"],
        group=os.environ.get("PT_GROUP", "book"),
        consumer=os.environ.get("PT_CONSUMER", "topology"),
        block_ms=200,
        monitor_interval_ms=int(os.environ.get("PT_MONITOR_MS", "500")),
        pending_handlers=[
            PendingHandler(action="claim", min_idle_ms=int(os.environ.get("PT_CLAIM_IDLE_MS", "60000")))
        ],
    )


def topology() -> Topology:
    pipeline = (
        Pipeline()
        .task(t1)
        .task(t2)
        .task(t3)
        .task(T4())
        .edges(("T1", "T2"), ("T1", "T3"), ("T2", "T4"), ("T3", "T4"))
    )
    return Topology(
        os.environ.get("PT_NAME", "book"),
        pipeline,
        source(),
        failure_policy=FailurePolicy.parse(os.environ.get("PT_POLICY", "none")),
        msg_timeout_ms=int(os.environ.get("PT_MSG_TIMEOUT_MS", "60000")),
        max_pending=int(os.environ.get("PT_MAX_PENDING", "200")),
        graceful_shutdown_ms=int(os.environ.get("PT_GRACE_MS", "20000")),
    )
