"""Bytewax's Redis input and acking output for the suite: a small custom source and sink.

Bytewax ships no Redis connector, so this is the one its docs suggest writing: a
:class:`~bytewax.inputs.DynamicSource` whose partition's ``next_batch`` reads the job's
stream through the job's consumer group (``XREADGROUP COUNT 1000 BLOCK 1``, redis-py
synchronous client with the hiredis parser: the same 1 ms poll timeout Bytewax's own
Kafka source gives ``consume``), and a :class:`~bytewax.outputs.DynamicSink` whose
partition's ``write_batch`` acks the ids it is given with one pipelined ``XACK``. The
flows route an id to the sink only once all of its work is done.

Source and sink share a :class:`Progress` (the flow runs single-worker in this process
with :func:`bytewax.testing.run_main`): the source ends the flow (``StopIteration``) once
it has read ``n`` entries and the sink has acked ``n``; it raises ``TimeoutError`` past a
deadline instead of waiting forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from benchmarks.suite.spec import Job
from benchmarks.suite.streams import client, entries, latency_ms

CONSUMER = "bytewax"
COUNT = 1000
BLOCK_MS = 1
DEADLINE_S = 600.0

Msg = tuple[bytes, bytes]
"""A stream entry as it flows: (entry id, body)."""


@dataclass
class Progress:
    """What the source and the sink of one run share (single worker, one thread)."""

    n: int
    ready: Callable[[], None] | None = None
    read: int = 0
    acked: int = 0
    start: float = 0.0
    end: float = 0.0
    deadline: float = 0.0
    latencies: list[float] | None = None
    reads: int = field(default=0)
    acks: int = field(default=0)

    @property
    def seconds(self) -> float:
        return self.end - self.start


class _ReadPartition(StatelessSourcePartition[Msg]):
    def __init__(self, job: Job, progress: Progress) -> None:
        self._r = client(job)
        self._key, self._group = job.key, job.group
        self._p = progress

    def next_batch(self) -> list[Msg]:
        p = self._p
        if p.read >= p.n:
            if p.acked >= p.n:
                raise StopIteration
            if time.monotonic() > p.deadline:
                raise TimeoutError(f"bytewax: {p.acked} of {p.n} acked within {DEADLINE_S} s")
            return []
        if not p.start:
            p.deadline = time.monotonic() + DEADLINE_S
            if p.ready is not None:
                p.ready()
            p.start = time.perf_counter()
        elif time.monotonic() > p.deadline:
            raise TimeoutError(f"bytewax: {p.read} of {p.n} read within {DEADLINE_S} s")
        batch = entries(
            self._r.xreadgroup(self._group, CONSUMER, {self._key: ">"}, count=COUNT, block=BLOCK_MS)
        )
        p.read += len(batch)
        p.reads += 1
        return [(entry_id, fields[b"body"]) for entry_id, fields in batch]

    def close(self) -> None:
        self._r.close()


class RedisGroupSource(DynamicSource[Msg]):
    """Reads the job's stream through its consumer group; items are ``(id, body)``."""

    def __init__(self, job: Job, progress: Progress) -> None:
        self._job, self._progress = job, progress

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ReadPartition:
        return _ReadPartition(self._job, self._progress)


class _AckPartition(StatelessSinkPartition[Any]):
    """Acks its items' ids with one pipelined ``XACK`` per batch (items are ids)."""

    def __init__(self, job: Job, progress: Progress) -> None:
        self._r: redis.Redis = client(job)
        self._key, self._group = job.key, job.group
        self._p = progress

    def _ids(self, items: list[Any]) -> list[bytes]:
        return items

    def _acked(self, items: list[Any], now_ns: int) -> None:
        """Hook: ``items`` were acked at ``now_ns``."""

    def write_batch(self, items: list[Any]) -> None:
        if not items:
            return
        pipe = self._r.pipeline(transaction=False)
        pipe.xack(self._key, self._group, *self._ids(items))
        pipe.execute()
        self._acked(items, time.time_ns())
        p = self._p
        p.acked += len(items)
        p.acks += 1
        if p.acked >= p.n:
            p.end = time.perf_counter()

    def close(self) -> None:
        self._r.close()


class _AckTimedPartition(_AckPartition):
    """Items are ``(id, body)``; records each body's latency once its ``XACK`` returned."""

    def _ids(self, items: list[Any]) -> list[bytes]:
        return [entry_id for entry_id, _ in items]

    def _acked(self, items: list[Any], now_ns: int) -> None:
        assert self._p.latencies is not None
        self._p.latencies.extend(latency_ms(body, now_ns) for _, body in items)


class RedisAckSink(DynamicSink[bytes]):
    """Acks the entry ids it is given: one pipelined ``XACK`` per ``write_batch``."""

    def __init__(self, job: Job, progress: Progress) -> None:
        self._job, self._progress = job, progress

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _AckPartition:
        return _AckPartition(self._job, self._progress)


class RedisAckTimedSink(DynamicSink[Msg]):
    """Acks ``(id, body)`` items like :class:`RedisAckSink`, then records each body's
    latency (:func:`~benchmarks.suite.streams.latency_ms`) right after ``XACK`` returns."""

    def __init__(self, job: Job, progress: Progress) -> None:
        self._job, self._progress = job, progress

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _AckTimedPartition:
        return _AckTimedPartition(self._job, self._progress)
