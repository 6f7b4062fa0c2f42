"""The cohort fast path: a whole poll of source messages through an inline pipeline at once.

When every task of a pipeline is a sync, inline task (not ``threaded``, not ``async``),
handing each task message through the engine's queue buys nothing: nothing can run in
between. The in-process executor then runs a *cohort* (the messages of one poll) task by
task in topological order. Each task's input is one flat list of bodies with *segments*
(two parallel lists: the owning message of each run of bodies, and the run's length); the task runs over the flat
list in one ``map``, and its outputs are appended, still flat, to the input of every
descendant. By the time a task runs, every ancestor has finished for every message, so
each task handles exactly what the completion rule gives it, in either release mode; only
the timing differs, and nothing can be observed in between.

A message whose task raises (or returns a bad output) fails at that task: its segments
are dropped from the later tasks and the engine applies the failure policy to it. The
other messages of the cohort carry on. Messages that did not fail are done.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from itertools import accumulate, chain, compress
from operator import sub
from typing import Any

from pytempest.engine.executor import CohortOutcome, TaskFailure, TaskTally
from pytempest.model.pipeline import Graph
from pytempest.model.task import Task
from pytempest.runtimes.outputs import assemble_outputs, failure_of

_SKIPPED = object()
_LIST_OR_NONE = frozenset({list, type(None)})
_BYTES = frozenset({bytes})


class CohortInput:
    """A task's input for the cohort: flat bodies and the segments that own them.

    Segment ``i`` is the run of ``counts[i]`` consecutive bodies that belong to message
    ``owners[i]`` (its index in the cohort); the counts add up to ``len(bodies)``.
    """

    __slots__ = ("bodies", "counts", "owners")

    def __init__(
        self,
        bodies: list[bytes] | None = None,
        owners: list[int] | None = None,
        counts: list[int] | None = None,
    ) -> None:
        self.bodies: list[bytes] = [] if bodies is None else bodies
        self.owners: list[int] = [] if owners is None else owners
        self.counts: list[int] = [] if counts is None else counts

    @classmethod
    def of_messages(cls, bodies: list[bytes]) -> CohortInput:
        """The root task's input: one body per source message."""
        return cls(bodies, list(range(len(bodies))), [1] * len(bodies))

    def extend(self, other: CohortInput) -> None:
        """Append ``other``'s bodies and segments."""
        self.bodies += other.bodies
        self.owners += other.owners
        self.counts += other.counts

    def without(self, failed: dict[int, tuple[int, TaskFailure]]) -> CohortInput:
        """The same input minus the segments of failed messages."""
        kept = CohortInput()
        at = 0
        for m, k in zip(self.owners, self.counts, strict=True):
            if m not in failed:
                kept.bodies += self.bodies[at : at + k]
                kept.owners.append(m)
                kept.counts.append(k)
            at += k
        return kept


def filtered_handler(task: Task) -> Callable[[bytes], Any]:
    handle = task.handler()
    keep = task.filter

    def filtered(body: bytes) -> Any:
        return handle(body) if keep(body) else _SKIPPED

    return filtered


def run_cohort(graph: Graph, filters: list[bool], bodies: list[bytes]) -> CohortOutcome:
    """Run every task of ``graph`` over the cohort of source message ``bodies``.

    The cyclic garbage collector is paused while the cohort runs: every task's outputs
    stay alive until the cohort ends, so the collections their allocations would trigger
    find nothing to free and only cost time (a third of the book DAG's time, measured);
    cycles a task makes are collected once the collector runs again.
    """
    if not gc.isenabled():
        return _run_cohort(graph, filters, bodies)
    gc.disable()
    try:
        return _run_cohort(graph, filters, bodies)
    finally:
        gc.enable()


def _run_cohort(graph: Graph, filters: list[bool], bodies: list[bytes]) -> CohortOutcome:
    n = len(graph)
    outcome = CohortOutcome(tallies=[TaskTally() for _ in range(n)])
    inputs = [CohortInput() for _ in range(n)]
    inputs[0] = CohortInput.of_messages(bodies)
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
                inputs[d].extend(outs)
            if descendants:  # the last one takes the lists themselves when it has nothing yet
                last = inputs[descendants[-1]]
                if last.bodies:
                    last.extend(outs)
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
    bodies, owners, counts = todo.bodies, todo.owners, todo.counts
    while counts:
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
            if _split_fast(results, owners, counts, outs):
                tally.handled += ran
                tally.outflow += len(outs.bodies) - before
                return outs
        done_bodies, done_segments = _split_careful(
            task, results, owners, counts, ran, error, tally, failed, t, outs
        )
        bodies = bodies[done_bodies:]
        owners, counts = owners[done_segments:], counts[done_segments:]
    return outs


def _split_fast(results: list[Any], owners: list[int], counts: list[int], outs: CohortInput) -> bool:
    """The common case in a few C-level passes: every result is None or a list of bytes.

    Appends to ``outs`` and returns True; returns False (``outs`` untouched) when the
    results need the careful path, which raises the precise errors.
    """
    kinds = set(map(type, results))
    if not kinds <= _LIST_OR_NONE:
        return False
    if type(None) in kinds:
        present = list(filter(None, results))
        lens = [len(r) if r else 0 for r in results]
    else:
        present = results
        lens = list(map(len, results))
    flat = list(chain.from_iterable(present))
    if flat and not set(map(type, flat)) <= _BYTES:
        return False
    if len(counts) == len(results):  # one body per segment: its result's length
        new = lens
    else:  # sum the lengths over each segment's run of bodies, in C
        upto = list(accumulate(lens, initial=0))
        at_end = list(map(upto.__getitem__, accumulate(counts)))
        new = list(map(sub, at_end, [0, *at_end[:-1]]))
    if 0 in new:  # segments that emitted nothing are dropped
        outs.owners += compress(owners, new)
        outs.counts += filter(None, new)
    else:
        outs.owners += owners
        outs.counts += new
    outs.bodies += flat
    return True


def _split_careful(
    task: Task,
    results: list[Any],
    owners: list[int],
    counts: list[int],
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
    for j, (m, k) in enumerate(zip(owners, counts, strict=True)):
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
            outs.owners.append(m)
            outs.counts.append(len(outputs))
    return at, len(counts)
