"""The executor seam: how the engine hands task messages to tasks and gets results back.

The engine calls :meth:`Executor.submit` with a :class:`TaskBatch` (bodies of one source
message attempt for one task) and the executor later calls the ``on_result`` callback it
was started with, on the engine's event loop thread, with a :class:`BatchResult`. The
in-process executor runs tasks in the topology's process; the Redis bus executor sends
batches to worker processes. The engine knows nothing else about where tasks run.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from pytempest.engine.completion import MessageState
from pytempest.model.pipeline import Graph


class TaskBatch:
    """Bodies of one source message attempt that one task must handle.

    ``seq`` is the sequence number of the first body among the task messages of that
    task for that attempt; together with the source id and the attempt it identifies
    the result, so a duplicate result is ignored.
    """

    __slots__ = ("bodies", "seq", "state", "task")

    def __init__(self, state: MessageState, task: int, seq: int, bodies: list[bytes]) -> None:
        self.state = state
        self.task = task
        self.seq = seq
        self.bodies = bodies


@dataclass(slots=True)
class TaskFailure:
    """Why a batch failed: the exception's type, message and traceback text.

    ``reason`` is set for a failure retrying cannot fix (a
    :class:`~pytempest.errors.PayloadError`: ``too_large``, ``decode_error``): the engine
    dead-letters the message at once with that reason instead of retrying it.
    """

    error_type: str
    message: str
    traceback: str = ""
    expected: bool = False
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}" if self.message else self.error_type


@dataclass(slots=True)
class BatchResult:
    """The outcome of a :class:`TaskBatch`.

    ``outputs`` are the bodies every descendant gets; ``handled`` counts ``handle``
    calls, ``skipped`` bodies the filter rejected; ``elapsed_ms`` is the time spent in
    filter and handle for the whole batch. ``failure`` is set when a body raised.
    """

    batch: TaskBatch
    outputs: list[bytes] = field(default_factory=list)
    handled: int = 0
    skipped: int = 0
    elapsed_ms: float = 0.0
    failure: TaskFailure | None = None


OnResult = Callable[[BatchResult], None]


@dataclass(slots=True)
class TaskTally:
    """What one task did for one cohort (for its metrics)."""

    handled: int = 0
    skipped: int = 0
    outflow: int = 0
    errors: int = 0
    elapsed_ms: float = 0.0


@dataclass(slots=True)
class CohortOutcome:
    """The result of :meth:`Executor.run_cohort`.

    ``failed`` maps the index of a source message in the cohort to (task index, failure);
    every other message of the cohort is done.
    """

    failed: dict[int, tuple[int, TaskFailure]] = field(default_factory=dict)
    tallies: list[TaskTally] = field(default_factory=list)


class Executor(abc.ABC):
    """Runs task batches somewhere and reports their results.

    Guarantees: ``submit`` never blocks and never raises for a task's own error (that is
    a result with a ``failure``); ``on_result`` is called on the engine's loop thread, at
    most once per submitted batch by this executor (the engine drops duplicates anyway);
    ``run`` is a long-running coroutine the engine starts in its task group and that
    ends when ``stop`` was called.
    """

    @abc.abstractmethod
    async def start(self, graph: Graph, on_result: OnResult) -> None:
        """Prepare the tasks (``setup`` hooks) and remember where results go."""

    @abc.abstractmethod
    def submit(self, batch: TaskBatch) -> None:
        """Queue a batch; never blocks."""

    @abc.abstractmethod
    async def run(self) -> None:
        """The executor's own loop(s); returns after ``stop``."""

    @abc.abstractmethod
    def cancel(self, state: MessageState) -> None:
        """Drop queued work of an attempt that failed or was abandoned (best effort)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop taking work, let ``run`` return, call the tasks' ``teardown`` hooks."""

    def supports_cohorts(self) -> bool:
        """True when :meth:`run_cohort` can run whole cohorts (decided after ``start``)."""
        return False

    def run_cohort(self, bodies: list[bytes]) -> CohortOutcome:
        """Run every task over a cohort of source message bodies, synchronously, on the
        engine's thread (only called when :meth:`supports_cohorts` is True)."""
        raise NotImplementedError

    def supports_async_cohorts(self) -> bool:
        """True when :meth:`run_cohort_async` can run whole cohorts (decided after ``start``)."""
        return False

    async def run_cohort_async(self, bodies: list[bytes]) -> CohortOutcome:
        """Run every task over a cohort of source message bodies somewhere else and wait
        for the outcome (only called when :meth:`supports_async_cohorts` is True). The
        engine may cancel the call (timeout, shutdown): late results are then dropped."""
        raise NotImplementedError

    def queue_depths(self) -> dict[int, int]:
        """Task messages waiting per task index (for gauges)."""
        return {}
