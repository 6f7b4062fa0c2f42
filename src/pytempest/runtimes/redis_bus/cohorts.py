"""Cohorts over the bus: a whole poll of source messages per task in one stream entry.

When every task of the pipeline is a sync, inline task, the engine hands each poll to the
executor as a *cohort* (see :mod:`pytempest.runtimes.cohort`). The topology then sends,
per task in topological order, the task's input for the whole cohort as flat bodies with
the number of bodies of each message (its segments), in one entry (or a few, each at most
``entry_max_bytes``). The worker runs the task over the flat bodies with the in-process
cohort code (same checks: a body that raises, or a bad output, fails only its message) and
answers with flat outputs, their segments and the failed segments. The topology appends
the outputs to the descendants' inputs and goes on with the next task; no per-message
batch, state or result object exists for a message that succeeds.

Entries use the field ``c`` (task entries of the per-batch path use ``d``), msgpack, with
the wire version of :mod:`~pytempest.runtimes.redis_bus.wire`::

    task entry:   [version, instance, sent_ms, ref, counts, bodies]
    result entry: [version, worker, ref, part, parts, out_segments, out_counts, outputs,
                   failed, tally]

``counts[i]`` is how many of ``bodies`` belong to segment ``i``; ``out_segments`` /
``out_counts`` say which segment each run of ``outputs`` belongs to; ``failed`` is
``[[segment, failure], ...]``; ``tally`` is ``[handled, skipped, errors, elapsed_ms]``.
An answer larger than ``max_message_bytes`` is split into ``parts`` result entries (written
in one ``MULTI``); the topology waits for all of them.

**Whole-graph entries.** The root task's input goes out with the field ``g`` instead of
``c`` (same payload). A worker that serves every task of the pipeline runs the whole
cohort there, as the in-process executor does, and answers with the field ``g``::

    graph result: [version, worker, ref, failed, tallies]

``failed`` is ``[[segment, task index, failure], ...]`` and ``tallies`` holds one
``[handled, skipped, errors, elapsed_ms, outflow]`` per task: no intermediate output
crosses Redis. A worker that serves only some tasks runs the root alone and answers with
a ``c`` result; the topology then sends the rest task by task, as above.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import msgpack

from pytempest.engine.executor import CohortOutcome, TaskFailure, TaskTally
from pytempest.errors import WireError
from pytempest.model.message import now_ms
from pytempest.model.pipeline import Graph
from pytempest.model.task import Task
from pytempest.runtimes.cohort import CohortInput, filtered_handler, run_task
from pytempest.runtimes.redis_bus import wire

FIELD = b"c"
GRAPH_FIELD = b"g"

Send = Callable[[int, bytes, bytes, int], None]
"""Queue a task entry: (task index, field name, field value, bodies in it)."""


def _unpack(fields: Mapping[bytes, bytes], where: str, size: int, name: bytes = FIELD) -> list[Any]:
    try:
        value = msgpack.unpackb(fields[name], raw=False)
    except Exception as exc:
        raise WireError(f"{where}: cohort entry is not valid msgpack: {exc}") from None
    if not isinstance(value, list) or not value or value[0] != wire.WIRE_VERSION:
        version = value[0] if isinstance(value, list) and value else None
        raise WireError(
            f"{where}: cohort entry has wire version {version!r}; this pytempest speaks version "
            f"{wire.WIRE_VERSION} (run the same pytempest version in the topology and its workers)"
        )
    if len(value) != size:
        raise WireError(f"{where}: cohort entry must have {size} parts; got {len(value)}")
    return value


def decode_task(
    fields: Mapping[bytes, bytes], where: str, name: bytes = FIELD
) -> tuple[str, int, list[int], list[bytes]]:
    """``(instance, ref, counts, bodies)`` of a cohort task entry (field ``name``);
    ``WireError`` when malformed."""
    _, instance, _sent, ref, counts, bodies = _unpack(fields, where, 6, name)
    if not (isinstance(instance, str) and isinstance(counts, list) and isinstance(bodies, list)):
        raise WireError(f"{where}: cohort task entry has wrong types")
    if sum(counts) != len(bodies):
        raise WireError(f"{where}: cohort task entry counts {sum(counts)} bodies; it has {len(bodies)}")
    if name == GRAPH_FIELD and len(counts) != len(bodies):
        raise WireError(f"{where}: a whole-graph entry must hold one body per source message")
    return instance, ref, counts, bodies


# -- the worker's side ----------------------------------------------------------------------
@dataclass(slots=True)
class ChunkOutcome:
    """What one task did for one cohort entry, segment by segment."""

    out_segments: list[int] = field(default_factory=list)
    out_counts: list[int] = field(default_factory=list)
    outputs: list[bytes] = field(default_factory=list)
    failed: dict[int, TaskFailure] = field(default_factory=dict)
    tally: TaskTally = field(default_factory=TaskTally)


def run_chunk(task: Task, has_filter: bool, counts: list[int], bodies: list[bytes]) -> ChunkOutcome:
    """Run a sync ``task`` over the flat ``bodies`` of a cohort entry (the in-process code)."""
    todo = CohortInput(bodies, list(range(len(counts))), counts)
    handle = filtered_handler(task) if has_filter else task.handler()
    failed: dict[int, tuple[int, TaskFailure]] = {}
    out = ChunkOutcome()
    outs = run_task(task, handle, todo, out.tally, failed, 0)
    out.outputs, out.out_segments, out.out_counts = outs.bodies, outs.owners, outs.counts
    out.failed = {i: f for i, (_, f) in failed.items()}
    return out


def encode_graph_answer(worker: str, ref: int, outcome: CohortOutcome) -> bytes:
    """The ``g`` result entry answering a whole-graph entry."""
    failed = [[seg, task, wire.failure_to_wire(f)] for seg, (task, f) in outcome.failed.items()]
    tallies = [[t.handled, t.skipped, t.errors, round(t.elapsed_ms, 3), t.outflow] for t in outcome.tallies]
    return msgpack.packb([wire.WIRE_VERSION, worker, ref, failed, tallies])  # type: ignore[no-any-return]


def poisoned(counts: list[int], failure: TaskFailure) -> ChunkOutcome:
    """The outcome of an entry delivered too often: every segment fails unrun."""
    return ChunkOutcome(failed=dict.fromkeys(range(len(counts)), failure))


def encode_answer(
    worker: str, ref: int, out: ChunkOutcome, max_bytes: int, too_large: Callable[[int], TaskFailure]
) -> list[bytes]:
    """The result entries answering one cohort entry, each with at most ``max_bytes`` of
    outputs; a segment whose outputs alone are larger fails (``too_large(size)``)."""
    t = out.tally
    tally = [t.handled, t.skipped, t.errors, round(t.elapsed_ms, 3)]
    parts = [(out.out_segments, out.out_counts, out.outputs)]
    if wire.item_bytes(out.outputs) > max_bytes:
        before = len(out.failed)
        parts = _split(out, max_bytes, too_large)
        tally[2] = t.errors + len(out.failed) - before
    failed = [[i, wire.failure_to_wire(f)] for i, f in out.failed.items()]
    return [
        msgpack.packb(
            [
                wire.WIRE_VERSION,
                worker,
                ref,
                n,
                len(parts),
                segs,
                cnts,
                outs,
                failed if n == 0 else [],
                tally if n == 0 else [0, 0, 0, 0.0],
            ]
        )
        for n, (segs, cnts, outs) in enumerate(parts)
    ]


def _split(
    out: ChunkOutcome, max_bytes: int, too_large: Callable[[int], TaskFailure]
) -> list[tuple[list[int], list[int], list[bytes]]]:
    parts: list[tuple[list[int], list[int], list[bytes]]] = [([], [], [])]
    size = at = 0
    for seg, count in zip(out.out_segments, out.out_counts, strict=True):
        outputs = out.outputs[at : at + count]
        at += count
        n = wire.item_bytes(outputs)
        if n > max_bytes:
            out.failed[seg] = too_large(n)
            continue
        if parts[-1][2] and size + n > max_bytes:
            parts.append(([], [], []))
            size = 0
        segs, cnts, outs = parts[-1]
        segs.append(seg)
        cnts.append(count)
        outs += outputs
        size += n
    return parts


# -- the topology's side --------------------------------------------------------------------
@dataclass(slots=True)
class _Waiting:
    future: asyncio.Future[list[list[Any]]]
    parts: dict[int, list[Any]] = field(default_factory=dict)
    graph: list[Any] | None = None
    """The ``g`` answer, when a worker ran the whole graph."""


class CohortSender:
    """Runs cohorts for the bus executor: sends each task's input, waits for the answers."""

    def __init__(
        self,
        graph: Graph,
        instance: str,
        max_entry_bytes: int,
        max_message_bytes: int,
        send: Send,
        next_ref: Callable[[], int],
        too_large: Callable[[int, int], TaskFailure],
        whole_graph: bool = True,
    ) -> None:
        self.graph = graph
        self.whole_graph = whole_graph and len(graph.tasks) > 1
        self.instance = instance
        self.max_entry_bytes = max_entry_bytes
        self.max_message_bytes = max_message_bytes
        self.send = send
        self.next_ref = next_ref
        self.too_large = too_large
        self.waiting: dict[int, _Waiting] = {}

    async def run(self, bodies: list[bytes]) -> CohortOutcome:
        """Every task over the cohort, task by task in topological order."""
        graph = self.graph
        outcome = CohortOutcome(tallies=[TaskTally() for _ in graph.tasks])
        inputs = [CohortInput() for _ in graph.tasks]
        inputs[0] = CohortInput.of_messages(bodies)
        failed = outcome.failed
        for t in graph.order:
            todo = inputs[t]
            inputs[t] = CohortInput()
            if failed:
                todo = todo.without(failed)
            if not todo.bodies:
                continue
            whole = t == 0 and self.whole_graph
            outs = await self._run_task(t, todo, outcome.tallies, failed, whole)
            if outs.bodies:
                for d in graph.descendants[t]:
                    inputs[d].extend(outs)
        return outcome

    def _chunks(
        self, t: int, todo: CohortInput, failed: dict[int, tuple[int, TaskFailure]]
    ) -> list[CohortInput]:
        """Split a task's input at segment boundaries into entries of at most
        ``max_entry_bytes`` (a message larger than that alone); a message whose bodies
        exceed ``max_message_bytes`` fails."""
        total = wire.item_bytes(todo.bodies)
        if total <= self.max_entry_bytes and total <= self.max_message_bytes:
            return [todo]
        owners = todo.owners
        # where each segment ends, in bodies and in bytes (the byte sums run in C)
        ends = list(accumulate(todo.counts))
        upto = list(accumulate(map(len, todo.bodies)))
        ends_bytes = [upto[e - 1] for e in ends]
        if total > self.max_message_bytes:
            sizes = [b - a for a, b in zip([0, *ends_bytes], ends_bytes, strict=False)]
            big = [i for i, n in enumerate(sizes) if n > self.max_message_bytes]
            if big:
                for i in big:
                    failed[owners[i]] = (t, self.too_large(t, sizes[i]))
                return self._chunks(t, todo.without(failed), failed)
        chunks = []
        first = 0
        while first < len(owners):
            base = ends_bytes[first - 1] if first else 0
            last = max(first + 1, bisect_right(ends_bytes, base + self.max_entry_bytes, first))
            chunk = CohortInput(
                todo.bodies[ends[first - 1] if first else 0 : ends[last - 1]],
                owners[first:last],
                todo.counts[first:last],
            )
            chunks.append(chunk)
            first = last
        return chunks

    async def _run_task(
        self,
        t: int,
        todo: CohortInput,
        tallies: list[TaskTally],
        failed: dict[int, tuple[int, TaskFailure]],
        whole: bool = False,
    ) -> CohortInput:
        """Send task ``t``'s input (as ``g`` entries when ``whole``: a worker serving
        every task runs the rest of the pipeline too) and return the outputs that still
        need the descendants."""
        chunks = self._chunks(t, todo, failed)
        loop = asyncio.get_running_loop()
        refs: list[int] = []
        try:
            for chunk in chunks:
                ref = self.next_ref()
                refs.append(ref)
                self.waiting[ref] = _Waiting(loop.create_future())
                data = msgpack.packb(
                    [wire.WIRE_VERSION, self.instance, now_ms(), ref, chunk.counts, chunk.bodies]
                )
                self.send(t, GRAPH_FIELD if whole else FIELD, data, len(chunk.bodies))
            answers = await asyncio.gather(*(self.waiting[ref].future for ref in refs))
        finally:
            for ref in refs:
                self.waiting.pop(ref, None)
        outs = CohortInput()
        tally = tallies[t]
        for chunk, parts in zip(chunks, answers, strict=True):
            owners = chunk.owners
            if len(parts) == 1 and len(parts[0]) == 5:  # a worker ran the whole graph
                _apply_graph(parts[0], owners, tallies, failed)
                continue
            for _, _, _, _, _, segs, cnts, outputs, fails, (handled, skipped, errors, elapsed) in parts:
                for i, f in fails:
                    failed[owners[i]] = (t, wire.failure_from_wire(f) or TaskFailure("WireError", ""))
                if outputs:
                    outs.bodies += outputs
                    outs.owners += map(owners.__getitem__, segs)
                    outs.counts += cnts
                tally.handled += handled
                tally.skipped += skipped
                tally.errors += errors
                tally.elapsed_ms += elapsed
        tally.outflow += len(outs.bodies)
        return outs

    def apply(self, fields: Mapping[bytes, bytes], where: str) -> bool:
        """Take one result entry; False when its cohort is no longer waited for (it
        timed out, or the answer of a redelivered entry came twice)."""
        if GRAPH_FIELD in fields:
            value = _unpack(fields, where, 5, GRAPH_FIELD)
            if not (isinstance(value[3], list) and isinstance(value[4], list)) or len(value[4]) != len(
                self.graph.tasks
            ):
                raise WireError(f"{where}: a whole-graph answer needs failures and one tally per task")
            waiting = self.waiting.get(value[2])
            if waiting is None or waiting.future.done():
                return False
            waiting.future.set_result([value])
            return True
        value = _unpack(fields, where, 10)
        ref, part, parts = value[2], value[3], value[4]
        waiting = self.waiting.get(ref)
        if waiting is None or waiting.future.done():
            return False
        waiting.parts[part] = value
        if len(waiting.parts) >= parts:
            waiting.future.set_result([waiting.parts[i] for i in sorted(waiting.parts)])
        return True

    def cancel_all(self) -> None:
        """Stop every wait (the executor stops)."""
        for waiting in self.waiting.values():
            waiting.future.cancel()
        self.waiting.clear()


def _apply_graph(
    value: list[Any],
    owners: list[int],
    tallies: list[TaskTally],
    failed: dict[int, tuple[int, TaskFailure]],
) -> None:
    """Take a ``g`` answer: every task's tally, and the failed messages with their task."""
    _, _, _, fails, counts = value
    for seg, task, f in fails:
        failed[owners[seg]] = (task, wire.failure_from_wire(f) or TaskFailure("WireError", ""))
    for tally, (handled, skipped, errors, elapsed, outflow) in zip(tallies, counts, strict=True):
        tally.handled += handled
        tally.skipped += skipped
        tally.errors += errors
        tally.elapsed_ms += elapsed
        tally.outflow += outflow
