"""Bytewax 0.21 for W1 to W3: one dataflow, single worker, run in this process.

Setup (the fairness choices):

- Input: :class:`~benchmarks.suite.systems.bytewax_source.RedisGroupSource`, a small
  custom ``DynamicSource`` (Bytewax has no Redis connector): ``XREADGROUP COUNT 1000
  BLOCK 1`` through the job's consumer group, items ``(id, body)``.
- Output: :class:`~benchmarks.suite.systems.bytewax_source.RedisAckSink`, one pipelined
  ``XACK`` per ``write_batch``. An id reaches it only when all of its work is done.
- The flow runs with :func:`bytewax.testing.run_main` (one worker, this thread, no
  recovery), so there is no serialisation between steps; the run ends by itself when
  the source has read ``n`` entries and the sink has acked ``n`` (``StopIteration``).
- Steps are written with ``flat_map_batch`` (Bytewax's core operator; ``map`` and
  ``flat_map`` are shims over it that call a Python function per item): each step loops
  over the batch Bytewax hands it. Set ``PT_BYTEWAX_VARIANT=item`` to build the same
  flows with per-item ``map``/``flat_map`` steps instead. At small n (W1 20,000 x 6,
  W2 1,000 x 5, medians) the two were even on W1 (138k vs 132k msgs/s, within noise)
  and the batch variant was ~30 % faster on W2 (20.7k vs 16.0k), so it is the default.
  The batch steps do the same per-item work; the W2 leaves apply their counter updates
  once per source id per batch (``Counter`` of the batch's ids) instead of per item.
- W1: input -> ``noop(body)`` step -> ack sink.
- W2, the book DAG: ``T1`` (``t1``, 10 out) feeds both ``T2`` (``t2``, 5 out per
  item) and ``T3`` (``noop``); ``T2`` feeds ``T4`` (``noop``); ``T3`` and ``T4`` emit
  the source id when it is done, merged into the ack sink. Every item carries its
  source id; a per-source outstanding counter (set to the deliveries ``T1`` made, then
  ``+= children - 1`` at each step) says when the last of its 71 calls ran, and a
  per-source call count is checked to be exactly 71 before the id is acked.
- W3: the W1 flow; ``ready()`` is called from the source's first ``next_batch``; each
  message's latency is taken right after the ``XACK`` that acks it returns.
- ``seconds`` runs from the first ``XREADGROUP`` to the return of the ``XACK`` that
  acks the ``n``-th message (flow construction and teardown excluded).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from itertools import repeat
from operator import itemgetter

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.testing import run_main

from benchmarks.suite.spec import W2_CALLS, Job, Result
from benchmarks.suite.streams import noop, t1, t2
from benchmarks.suite.systems.bytewax_source import (
    Msg,
    Progress,
    RedisAckSink,
    RedisAckTimedSink,
    RedisGroupSource,
)

VARIANT = os.environ.get("PT_BYTEWAX_VARIANT", "batch")
"""``batch`` (default: ``flat_map_batch`` steps) or ``item`` (``map``/``flat_map``)."""


class _Count:
    handled = 0


def _w1(flow: Dataflow, src: Stream[Msg], count: _Count) -> Stream[bytes]:
    """input -> noop -> ids to ack."""
    if VARIANT == "item":

        def one(msg: Msg) -> bytes:
            noop(msg[1])
            count.handled += 1
            return msg[0]

        return op.map("noop", src, one)

    def batch(msgs: list[Msg]) -> list[bytes]:
        ids = []
        for entry_id, body in msgs:
            noop(body)
            ids.append(entry_id)
        count.handled += len(msgs)
        return ids

    return op.flat_map_batch("noop", src, batch)


class _Dag:
    """The W2 completion bookkeeping: per source id, the deliveries still outstanding
    and the handle calls made so far. One worker, one thread: plain dicts."""

    def __init__(self) -> None:
        self.outstanding: dict[bytes, int] = {}
        self.calls: dict[bytes, int] = {}
        self.handled = 0

    def done(self, sid: bytes) -> bytes:
        calls = self.calls.pop(sid)
        del self.outstanding[sid]
        if calls != W2_CALLS:
            raise AssertionError(f"{sid!r}: {calls} calls, expected {W2_CALLS}")
        self.handled += calls
        return sid

    # per item -------------------------------------------------------------------
    def t1_one(self, msg: Msg) -> list[Msg]:
        sid, body = msg
        outs = t1(body)
        if not outs:
            raise AssertionError("T1 emitted nothing")
        self.calls[sid] = 1
        self.outstanding[sid] = 2 * len(outs)  # each output goes to T2 and to T3
        return [(sid, o) for o in outs]

    def t2_one(self, msg: Msg) -> list[Msg]:
        sid, body = msg
        outs = t2(body)
        if not outs:
            raise AssertionError("T2 emitted nothing")
        self.calls[sid] += 1
        self.outstanding[sid] += len(outs) - 1
        return [(sid, o) for o in outs]

    def leaf_one(self, msg: Msg) -> list[bytes]:
        sid, body = msg
        noop(body)
        self.calls[sid] += 1
        left = self.outstanding[sid] - 1
        if left:
            self.outstanding[sid] = left
            return []
        return [self.done(sid)]

    # per batch ------------------------------------------------------------------
    def t1_batch(self, msgs: list[Msg]) -> list[Msg]:
        out: list[Msg] = []
        calls, outstanding = self.calls, self.outstanding
        for sid, body in msgs:
            outs = t1(body)
            if not outs:
                raise AssertionError("T1 emitted nothing")
            calls[sid] = 1
            outstanding[sid] = 2 * len(outs)
            out.extend(zip(repeat(sid), outs))
        return out

    def t2_batch(self, msgs: list[Msg]) -> list[Msg]:
        out: list[Msg] = []
        calls, outstanding = self.calls, self.outstanding
        for sid, body in msgs:
            outs = t2(body)
            if not outs:
                raise AssertionError("T2 emitted nothing")
            calls[sid] += 1
            outstanding[sid] += len(outs) - 1
            out.extend(zip(repeat(sid), outs))
        return out

    def leaf_batch(self, msgs: list[Msg]) -> list[bytes]:
        for _, body in msgs:
            noop(body)
        # leaves emit nothing: each item is one call and one delivery less for its source
        done: list[bytes] = []
        calls, outstanding = self.calls, self.outstanding
        for sid, k in Counter(map(itemgetter(0), msgs)).items():
            calls[sid] += k
            left = outstanding[sid] - k
            if left:
                outstanding[sid] = left
            else:
                done.append(self.done(sid))
        return done


def _w2(flow: Dataflow, src: Stream[Msg], dag: _Dag) -> Stream[bytes]:
    """The book DAG; returns the stream of source ids whose 71 calls all ran."""
    if VARIANT == "item":
        s1 = op.flat_map("T1", src, dag.t1_one)
        s2 = op.flat_map("T2", s1, dag.t2_one)
        d3 = op.flat_map("T3", s1, dag.leaf_one)
        d4 = op.flat_map("T4", s2, dag.leaf_one)
    else:
        s1 = op.flat_map_batch("T1", src, dag.t1_batch)
        s2 = op.flat_map_batch("T2", s1, dag.t2_batch)
        d3 = op.flat_map_batch("T3", s1, dag.leaf_batch)
        d4 = op.flat_map_batch("T4", s2, dag.leaf_batch)
    return op.merge("done", d3, d4)


def throughput(job: Job) -> Result:
    """W1 or W2 on the filled stream; ``handled`` counts the handle calls made."""
    progress = Progress(job.n)
    flow = Dataflow(f"bytewax_{job.workload.lower()}")
    src = op.input("redis", flow, RedisGroupSource(job, progress))
    count = _Count()
    dag = _Dag()
    ids = _w1(flow, src, count) if job.workload == "W1" else _w2(flow, src, dag)
    op.output("ack", ids, RedisAckSink(job, progress))
    run_main(flow)  # type: ignore[no-untyped-call]
    if progress.acked != job.n:
        raise AssertionError(f"bytewax: {progress.acked} acked of {job.n}")
    handled = count.handled if job.workload == "W1" else dag.handled
    if job.workload == "W2" and (dag.outstanding or dag.calls):
        raise AssertionError(f"bytewax: {len(dag.outstanding)} source ids left unfinished")
    return Result(
        seconds=progress.seconds,
        handled=handled,
        notes={"variant": VARIANT, "reads": progress.reads, "ack_batches": progress.acks},
    )


def latency(job: Job, ready: Callable[[], None]) -> Result:
    """W3: the W1 flow on the runner's paced stream; one latency per message."""
    progress = Progress(job.n, ready=ready, latencies=[])
    flow = Dataflow("bytewax_w3")
    src = op.input("redis", flow, RedisGroupSource(job, progress))
    count = _Count()
    if VARIANT == "item":

        def one(msg: Msg) -> Msg:
            noop(msg[1])
            count.handled += 1
            return msg

        done = op.map("noop", src, one)
    else:

        def batch(msgs: list[Msg]) -> list[Msg]:
            for _, body in msgs:
                noop(body)
            count.handled += len(msgs)
            return msgs

        done = op.flat_map_batch("noop", src, batch)
    op.output("ack", done, RedisAckTimedSink(job, progress))
    run_main(flow)  # type: ignore[no-untyped-call]
    assert progress.latencies is not None
    return Result(
        handled=count.handled,
        latencies_ms=progress.latencies,
        notes={"variant": VARIANT, "reads": progress.reads, "ack_batches": progress.acks},
    )
