"""The cohort fast path: a whole poll of source messages through an inline pipeline at once.

When every task of a pipeline is a sync, inline task (not ``threaded``, not ``async``),
handing each task message through the engine's queue buys nothing: nothing can run in
between. The in-process executor then runs a *cohort* (the messages of one poll) task by
task in topological order: each task's inputs from every message of the cohort go through
one ``map`` over the task's function, and the outputs are split back per message and
passed on to every descendant. By the time a task runs, every ancestor has finished for
every message, so each task handles exactly what the completion rule gives it, in either
release mode; only the timing differs, and nothing can be observed in between.

A message whose task raises (or returns a bad output) fails at that task: its entries are
dropped from the later tasks and the engine applies the failure policy to it. The other
messages of the cohort carry on. Messages that did not fail are done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

from pytempest.engine.executor import CohortOutcome, TaskFailure, TaskTally
from pytempest.model.pipeline import Graph
from pytempest.model.task import Task
from pytempest.runtimes.outputs import assemble_outputs, failure_of

Entry = tuple[int, list[bytes]]
"""(message index in the cohort, the bodies it hands one task)."""


def _skip_filtered(task: Task) -> Callable[[bytes], Any]:
    handle = task.handler()
    keep = task.filter

    def filtered(body: bytes) -> Any:
        return handle(body) if keep(body) else _SKIPPED

    return filtered


_SKIPPED = object()


def run_cohort(graph: Graph, filters: Sequence[bool], bodies: list[bytes]) -> CohortOutcome:
    """Run every task of ``graph`` over the cohort of source message ``bodies``."""
    n = len(graph)
    outcome = CohortOutcome(tallies=[TaskTally() for _ in range(n)])
    inputs: list[list[Entry]] = [[] for _ in range(n)]
    inputs[0] = [(i, [b]) for i, b in enumerate(bodies)]
    failed = outcome.failed
    for t in graph.order:
        entries = inputs[t]
        inputs[t] = []
        if failed:
            entries = [e for e in entries if e[0] not in failed]
        if not entries:
            continue
        task = graph.tasks[t]
        handle = _skip_filtered(task) if filters[t] else task.handler()
        tally = outcome.tallies[t]
        descendants = graph.descendants[t]
        for m, outputs in _run_task(task, handle, filters[t], entries, tally, failed, t):
            if outputs:
                for d in descendants:
                    inputs[d].append((m, outputs))
    return outcome


_LIST_OR_NONE = frozenset({list, type(None)})
_BYTES = frozenset({bytes})


def _split_lists(todo: list[Entry], results: list[Any]) -> list[Entry] | None:
    """The common case in a few C-level passes: every result is None or a list, and
    every output is bytes. Returns the (message, outputs) with outputs, or None when
    the results need the careful per-message path (which raises the precise errors)."""
    kinds = set(map(type, results))
    if not kinds <= _LIST_OR_NONE:
        return None
    has_none = type(None) in kinds
    out: list[Entry] = []
    i = 0
    for m, bodies in todo:
        size = len(bodies)
        if size == 1:
            first = results[i]
            i += 1
            if first:
                out.append((m, first.copy()))  # a copy: the task may return the same list again
            continue
        chunk = results[i : i + size]
        i += size
        if has_none:
            chunk = [r for r in chunk if r]
        if chunk:
            outputs = list(chain.from_iterable(chunk))
            if outputs:
                out.append((m, outputs))
    if out and not set(map(type, chain.from_iterable(o for _, o in out))) <= _BYTES:
        return None
    return out


def _run_task(
    task: Task,
    handle: Callable[[bytes], Any],
    filtered: bool,
    entries: list[Entry],
    tally: TaskTally,
    failed: dict[int, tuple[int, TaskFailure]],
    t: int,
) -> list[Entry]:
    """Run one task over every entry; return (message, outputs) of the entries that did
    not fail. A body that raises fails its message; the entries after it run again."""
    done: list[Entry] = []
    start_at = 0
    while start_at < len(entries):
        todo = entries[start_at:] if start_at else entries
        flat = list(chain.from_iterable(e[1] for e in todo))
        results: list[Any] = []
        error: Exception | None = None
        started = time.perf_counter()
        try:
            results.extend(map(handle, flat))
        except Exception as exc:
            error = exc
        tally.elapsed_ms += (time.perf_counter() - started) * 1000
        ran = len(results)
        if error is None and not filtered:
            if results.count(None) == ran:
                tally.handled += ran  # nothing for the descendants: no need to split per message
                return done
            fast = _split_lists(todo, results)
            if fast is not None:
                tally.handled += ran
                tally.outflow += sum(len(o) for _, o in fast)
                done.extend(fast)
                return done
        i = 0
        for k, (m, bodies) in enumerate(todo):
            size = len(bodies)
            if i + size > ran:  # the body at index ``ran`` raised: this message fails
                assert error is not None
                tally.handled += ran - i + 1
                tally.errors += 1
                failed[m] = (t, failure_of(error))
                start_at += k + 1
                break
            chunk = results[i : i + size] if size > 1 else [results[i]]
            i += size
            if filtered:
                skipped = chunk.count(_SKIPPED)
                if skipped:
                    chunk = [r for r in chunk if r is not _SKIPPED]
                    tally.skipped += skipped
                    size -= skipped
            tally.handled += size
            try:
                outputs = assemble_outputs(task, chunk)
            except Exception as exc:
                tally.errors += 1
                failed[m] = (t, failure_of(exc))
                continue
            tally.outflow += len(outputs)
            done.append((m, outputs))
        else:
            start_at = len(entries)
    return done
