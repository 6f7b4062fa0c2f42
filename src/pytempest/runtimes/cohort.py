"""The cohort fast path: a whole poll of source messages through an inline pipeline at once.

When every task of a pipeline is a sync, inline task (not ``threaded``, not ``async``),
handing each task message through the engine's queue buys nothing: nothing can run in
between. The in-process executor then runs a *cohort* (the messages of one poll) task by
task in topological order. Each task's input is one flat list of bodies with a list of
segments saying which message each run of bodies belongs to; the task runs over the flat
list in one ``map``, and its outputs are appended, still flat, to the input of every
descendant. By the time a task runs, every ancestor has finished for every message, so
each task handles exactly what the completion rule gives it, in either release mode; only
the timing differs, and nothing can be observed in between.

A message whose task raises (or returns a bad output) fails at that task: its segments
are dropped from the later tasks and the engine applies the failure policy to it. The
other messages of the cohort carry on. Messages that did not fail are done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import chain
from typing import Any

from pytempest.engine.executor import CohortOutcome, TaskFailure, TaskTally
from pytempest.model.pipeline import Graph
from pytempest.model.task import Task
from pytempest.runtimes.outputs import assemble_outputs, failure_of

Segment = tuple[int, int]
"""(message index in the cohort, how many consecutive bodies of a task's input are its)."""

_SKIPPED = object()
_LIST_OR_NONE = frozenset({list, type(None)})
_BYTES = frozenset({bytes})


class CohortInput:
    """A task's input for the cohort: flat bodies and the segments that own them."""

    __slots__ = ("bodies", "segments")

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.segments: list[Segment] = []

    def without(self, failed: dict[int, tuple[int, TaskFailure]]) -> CohortInput:
        """The same input minus the segments of failed messages."""
        kept = CohortInput()
        at = 0
        for m, k in self.segments:
            if m not in failed:
                kept.bodies += self.bodies[at : at + k]
                kept.segments.append((m, k))
            at += k
        return kept


def filtered_handler(task: Task) -> Callable[[bytes], Any]:
    handle = task.handler()
    keep = task.filter

    def filtered(body: bytes) -> Any:
        return handle(body) if keep(body) else _SKIPPED

    return filtered


def run_cohort(graph: Graph, filters: list[bool], bodies: list[bytes]) -> CohortOutcome:
    """Run every task of ``graph`` over the cohort of source message ``bodies``."""
    n = len(graph)
    outcome = CohortOutcome(tallies=[TaskTally() for _ in range(n)])
    inputs = [CohortInput() for _ in range(n)]
    inputs[0].bodies = bodies
    inputs[0].segments = [(i, 1) for i in range(len(bodies))]
    failed = outcome.failed
    for t in graph.order:
        todo = inputs[t]
        inputs[t] = CohortInput()
        if failed:
            todo = todo.without(failed)
        if not todo.bodies:
            continue
        task = graph.tasks[t]
        handle = filtered_handler(task) if filters[t] else task.handler()
        outs = run_task(task, handle, todo, outcome.tallies[t], failed, t)
        if outs.bodies:
            descendants = graph.descendants[t]
            for d in descendants[:-1]:
                inputs[d].bodies += outs.bodies
                inputs[d].segments += outs.segments
            if descendants:  # the last one takes the lists themselves when it has nothing yet
                last = inputs[descendants[-1]]
                if last.bodies:
                    last.bodies += outs.bodies
                    last.segments += outs.segments
                else:
                    inputs[descendants[-1]] = outs
    return outcome


def run_task(
    task: Task,
    handle: Callable[[bytes], Any],
    todo: CohortInput,
    tally: TaskTally,
    failed: dict[int, tuple[int, TaskFailure]],
    t: int,
) -> CohortInput:
    """Run one task over its input; return the outputs of the messages that did not fail.

    A body that raises fails its message; the segments after it run again.
    """
    outs = CohortInput()
    bodies, segments = todo.bodies, todo.segments
    while segments:
        results: list[Any] = []
        error: Exception | None = None
        started = time.perf_counter()
        try:
            results.extend(map(handle, bodies))
        except Exception as exc:
            error = exc
        tally.elapsed_ms += (time.perf_counter() - started) * 1000
        ran = len(results)
        if error is None:
            if results.count(None) == ran:
                tally.handled += ran  # nothing for the descendants
                return outs
            before = len(outs.bodies)  # outputs of earlier rounds (before a body raised)
            if _split_fast(results, segments, outs):
                tally.handled += ran
                tally.outflow += len(outs.bodies) - before
                return outs
        done = _split_careful(task, results, segments, ran, error, tally, failed, t, outs)
        bodies, segments = bodies[done[0] :], segments[done[1] :]
    return outs


def _split_fast(results: list[Any], segments: list[Segment], outs: CohortInput) -> bool:
    """The common case in a few C-level passes: every result is None or a list of bytes.

    Appends to ``outs`` and returns True; returns False (``outs`` untouched) when the
    results need the careful path, which raises the precise errors.
    """
    kinds = set(map(type, results))
    if not kinds <= _LIST_OR_NONE:
        return False
    if type(None) in kinds:
        present = [r for r in results if r]
        lens = [len(r) if r else 0 for r in results]
    else:
        present = results
        lens = list(map(len, results))
    flat = list(chain.from_iterable(present))
    if flat and not set(map(type, flat)) <= _BYTES:
        return False
    if len(segments) == len(results):  # one body per segment: one count per result
        new = [(seg[0], c) for seg, c in zip(segments, lens, strict=True) if c]
    else:
        new = []
        at = 0
        for m, k in segments:
            c = sum(lens[at : at + k])
            at += k
            if c:
                new.append((m, c))
    outs.bodies += flat
    outs.segments += new
    return True


def _split_careful(
    task: Task,
    results: list[Any],
    segments: list[Segment],
    ran: int,
    error: Exception | None,
    tally: TaskTally,
    failed: dict[int, tuple[int, TaskFailure]],
    t: int,
    outs: CohortInput,
) -> tuple[int, int]:
    """Message by message, with every check; returns (bodies, segments) consumed, so the
    caller runs the rest again after a body raised."""
    at = 0
    for j, (m, k) in enumerate(segments):
        if at + k > ran:  # the body at index ``ran`` raised: this message fails
            assert error is not None
            tally.handled += ran - at + 1
            tally.errors += 1
            failed[m] = (t, failure_of(error))
            return at + k, j + 1
        chunk = results[at : at + k]
        at += k
        skipped = chunk.count(_SKIPPED)
        if skipped:
            chunk = [r for r in chunk if r is not _SKIPPED]
            tally.skipped += skipped
        tally.handled += k - skipped
        try:
            outputs = assemble_outputs(task, chunk)
        except Exception as exc:
            tally.errors += 1
            failed[m] = (t, failure_of(exc))
            continue
        if outputs:
            tally.outflow += len(outputs)
            outs.bodies += outputs
            outs.segments.append((m, len(outputs)))
    return at, len(segments)
