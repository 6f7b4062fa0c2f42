"""W3's producer: ``XADD`` at a fixed rate, each body stamped with its send time."""

from __future__ import annotations

import time

import redis

from benchmarks.suite.streams import stamp


def produce(r: redis.Redis, key: str, rate: int, n: int) -> float:
    """Add ``n`` entries to ``key`` at ``rate`` per second (one ``XADD`` each, paced against
    the clock so that a late one does not shift the rest); returns the achieved rate."""
    start = time.monotonic()
    sent = 0
    while sent < n:
        due = min(n, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            r.xadd(key, {"body": stamp(time.time_ns())})
            sent += 1
        next_at = start + sent / rate
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    return n / (time.monotonic() - start)
