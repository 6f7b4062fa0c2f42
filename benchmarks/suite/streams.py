"""What the systems share: reading and acking the job's stream, the W2 functions, the
W3 send-time stamp, memory readings."""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from benchmarks.common import noop, t1, t2
from benchmarks.suite.spec import BODY_LEN, Job

__all__ = [
    "client",
    "entries",
    "latency_ms",
    "noop",
    "rss_bytes",
    "sent_ns",
    "stamp",
    "t1",
    "t2",
    "wait_acked",
]


def client(job: Job) -> redis.Redis:
    """A synchronous redis-py client (hiredis parses replies when it is installed)."""
    return redis.Redis.from_url(job.url)


def entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of an ``XREADGROUP`` reply on one stream (RESP2 or RESP3 shape)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return next(iter(reply.values()))[0]  # type: ignore[no-any-return]
    return reply[0][1]  # type: ignore[no-any-return]


def stamp(ns: int) -> bytes:
    """A W3 body: the send time in ns as 19 digits, padded to :data:`BODY_LEN` bytes."""
    return b"%019d" % ns + b"." * (BODY_LEN - 19)


def sent_ns(body: bytes) -> int:
    """The send time a W3 body carries."""
    return int(body[:19])


def latency_ms(body: bytes, now_ns: int | None = None) -> float:
    """Milliseconds from the body's send time to ``now_ns`` (default: now)."""
    return ((now_ns if now_ns is not None else time.time_ns()) - sent_ns(body)) / 1e6


def rss_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def wait_acked(r: redis.Redis, job: Job, timeout_s: float = 600.0, every_s: float = 0.002) -> None:
    """Block until the job's group has read ``n`` entries and has none pending."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = group_info(r, job)
        if info["entries-read"] >= job.n and info["pending"] == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job.label}: not all acked within {timeout_s} s: {info}")
        time.sleep(every_s)


def group_info(r: redis.Redis, job: Job) -> dict[str, int]:
    """``entries-read`` and ``pending`` of the job's consumer group."""
    for g in r.xinfo_groups(job.key):
        name = g["name"]
        if (name.decode() if isinstance(name, bytes) else name) == job.group:
            return {"entries-read": int(g.get("entries-read") or 0), "pending": int(g["pending"])}
    raise LookupError(f"group {job.group} not found on {job.key}")
