"""The in-process executor: tasks run in the topology's own process.

* A sync ``handle`` runs inline on the event loop, batch after batch, from one queue
  (fastest for CPU-light work; the loop yields to I/O every ``yield_every`` batches).
* A task with ``threaded = True`` runs its batches in a thread pool, so blocking I/O in
  ``handle`` does not stall the loop. Its batches wait in a queue of their own; at most
  ``Task.concurrency`` pool threads (and at most ``max_threads``) drain it, each taking
  batch after batch, so a waiting batch costs no future or pool work item.
* An ``async def handle`` runs on the loop; the bodies of a batch run concurrently, at
  most ``Task.concurrency`` calls of one task at a time.

Batches of an attempt that already ended (failed, timed out) are skipped, not run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

from pytempest.engine.completion import MessageState
from pytempest.engine.executor import BatchResult, CohortOutcome, Executor, OnResult, TaskBatch, TaskFailure
from pytempest.errors import TaskSetupError
from pytempest.model.pipeline import Graph
from pytempest.model.task import Task
from pytempest.runtimes.cohort import run_cohort
from pytempest.runtimes.outputs import assemble_outputs, failure_of

log = logging.getLogger("pytempest.runtime")

INLINE, THREAD, ASYNC = 0, 1, 2

THREAD_DRAIN = 64
"""Batches one pool job of a threaded task runs before it gives its thread back."""


Outcome = tuple[list[bytes], int, int, float, TaskFailure | None]
"""What running a task over some bodies gave: outputs, handled, skipped, elapsed ms, failure."""


def run_sync_batch(task: Task, has_filter: bool, batch: TaskBatch) -> BatchResult:
    """Run ``task`` over every body of ``batch`` in the calling thread."""
    return BatchResult(batch, *run_sync_bodies(task, has_filter, batch.bodies))


def run_sync_bodies(task: Task, has_filter: bool, bodies: list[bytes]) -> Outcome:
    """Run a sync ``task`` over ``bodies`` in the calling thread (shared with the workers
    of the distributed runtime).

    The filter (if any) is called for every body first, then ``handle`` for each kept
    body; both loops run in C (``map``) because this is the hottest path of pytempest.
    """
    handle = task.handler()
    results: list[Any] = []
    outputs: list[Any] = []
    handled = skipped = 0
    failure = None
    start = time.perf_counter()
    try:
        kept = bodies
        if has_filter:
            keep = task.filter
            kept = [b for b in bodies if keep(b)]
            skipped = len(bodies) - len(kept)
        try:
            results.extend(map(handle, kept))
        except Exception:
            handled = len(results) + 1  # list.extend keeps what came before the error
            raise
        handled = len(kept)
        outputs = assemble_outputs(task, results)
    except Exception as exc:
        failure = failure_of(exc)
        outputs = []
    elapsed = (time.perf_counter() - start) * 1000
    return outputs, handled, skipped, elapsed, failure


def run_sync_group(task: Task, batches: list[TaskBatch], on_result: OnResult) -> list[TaskBatch]:
    """Run a filter-less sync ``task`` over the bodies of several batches (of different
    source messages) in one ``map``, then report one result per batch.

    One call per group instead of per batch is what keeps the per-message cost of the
    engine low when tasks are cheap. When a body raises, the batches before it get their
    results, its batch gets the failure, and the batches after it were not run: they are
    returned, to be run again.
    """
    handle = task.handler()
    bodies = list(chain.from_iterable(b.bodies for b in batches))
    results: list[Any] = []
    error: Exception | None = None
    start = time.perf_counter()
    try:
        results.extend(map(handle, bodies))
    except Exception as exc:
        error = exc
    per_body_ms = (time.perf_counter() - start) * 1000 / max(1, len(results) + (error is not None))
    done = len(results)
    i = 0
    for n, batch in enumerate(batches):
        k = len(batch.bodies)
        if i + k <= done:
            chunk = results[i : i + k] if k > 1 else [results[i]]
            try:
                outputs = assemble_outputs(task, chunk)
            except Exception as exc:
                on_result(BatchResult(batch, [], k, 0, per_body_ms * k, failure_of(exc)))
            else:
                on_result(BatchResult(batch, outputs, k, 0, per_body_ms * k, None))
        else:
            assert error is not None
            handled = done - i + 1
            on_result(BatchResult(batch, [], handled, 0, per_body_ms * handled, failure_of(error)))
            return batches[n + 1 :]
        i += k
    return []


async def run_async_bodies(
    task: Task, has_filter: bool, sem: asyncio.Semaphore, bodies: list[bytes]
) -> Outcome:
    """Run an ``async`` task over ``bodies`` concurrently, at most ``sem`` calls at once
    (shared with the workers of the distributed runtime)."""
    keep = task.filter if has_filter else None
    handle: Callable[[bytes], Awaitable[Any]] = task.handle  # type: ignore[assignment]

    async def one(body: bytes) -> tuple[int, Any]:
        if keep is not None and not keep(body):
            return 0, None
        async with sem:
            return 1, await handle(body)

    start = time.perf_counter()
    outputs: list[Any] = []
    handled = skipped = 0
    failure = None
    try:
        if len(bodies) == 1:
            results = [await one(bodies[0])]
        else:
            results = await asyncio.gather(*(one(b) for b in bodies))
        handled = sum(called for called, _ in results)
        skipped = len(results) - handled
        outputs = assemble_outputs(task, [result for _, result in results])
    except Exception as exc:
        failure = failure_of(exc)
        outputs = []
    elapsed = (time.perf_counter() - start) * 1000
    return outputs, handled, skipped, elapsed, failure


async def maybe_await(value: Awaitable[None] | None) -> None:
    """Await ``value`` when a hook returned an awaitable."""
    if inspect.isawaitable(value):
        await value


class InProcessExecutor(Executor):
    """Runs every task in this process (see the module docstring).

    Args:
        max_threads: size of the pool for ``threaded`` tasks.
        group_limit: at most this many ready inline batches are taken per round (grouped
            by task, each group run in one call) before the loop yields to other work.
    """

    def __init__(self, max_threads: int = 8, group_limit: int = 2048) -> None:
        self.max_threads = max_threads
        self.group_limit = group_limit
        self._ready: deque[TaskBatch] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = False
        self._pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_queues: list[deque[TaskBatch]] = []
        self._thread_jobs: list[int] = []
        self._thread_limits: list[int] = []
        self._async_jobs: set[asyncio.Future[Any]] = set()
        self._tasks: tuple[Task, ...] = ()
        self._graph: Graph | None = None
        self._kinds: list[int] = []
        self._filters: list[bool] = []
        self._sems: list[asyncio.Semaphore] = []
        self._on_result: OnResult = lambda r: None
        self._started: list[Task] = []

    async def start(self, graph: Graph, on_result: OnResult) -> None:
        self._tasks = graph.tasks
        self._graph = graph
        self._on_result = on_result
        self._kinds = []
        for t in graph.tasks:
            if t.is_async():
                self._kinds.append(ASYNC)
            elif t.threaded:
                self._kinds.append(THREAD)
            else:
                self._kinds.append(INLINE)
        self._filters = [t.has_filter() for t in graph.tasks]
        self._sems = [asyncio.Semaphore(max(1, t.concurrency)) for t in graph.tasks]
        self._loop = asyncio.get_running_loop()
        self._thread_queues = [deque() for _ in graph.tasks]
        self._thread_jobs = [0] * len(graph.tasks)
        self._thread_limits = [max(1, min(t.concurrency, self.max_threads)) for t in graph.tasks]
        if THREAD in self._kinds:
            self._pool = ThreadPoolExecutor(self.max_threads, thread_name_prefix="pytempest-task")
        for t in graph.tasks:
            try:
                await maybe_await(t.setup())
            except Exception as exc:
                raise TaskSetupError(
                    f"setup() of task {t.name!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
            self._started.append(t)

    def submit(self, batch: TaskBatch) -> None:
        kind = self._kinds[batch.task]
        if kind == INLINE:
            self._ready.append(batch)
            if not self._wake.is_set():
                self._wake.set()
            return
        if kind == THREAD:
            t = batch.task
            self._thread_queues[t].append(batch)
            if self._thread_jobs[t] < self._thread_limits[t]:
                self._start_thread_job(t)
            return
        job = asyncio.get_running_loop().create_task(self._run_async(batch))
        self._async_jobs.add(job)
        job.add_done_callback(self._async_jobs.discard)

    def _start_thread_job(self, t: int) -> None:
        assert self._pool is not None and self._loop is not None
        self._thread_jobs[t] += 1
        job = self._loop.run_in_executor(self._pool, self._drain_threaded, t)
        self._async_jobs.add(job)
        job.add_done_callback(self._async_jobs.discard)
        job.add_done_callback(lambda j: self._thread_job_done(t, j))

    def _drain_threaded(self, t: int) -> None:
        """In a pool thread: run queued batches of task ``t``, handing each result to the
        loop, until the queue is empty or ``THREAD_DRAIN`` batches ran (then the job ends
        and a new one queues behind other tasks' jobs, so no task holds the pool)."""
        assert self._loop is not None
        queue, task, has_filter = self._thread_queues[t], self._tasks[t], self._filters[t]
        deliver = self._loop.call_soon_threadsafe
        for _ in range(THREAD_DRAIN):
            if self._stopping:
                return
            try:
                batch = queue.popleft()
            except IndexError:
                return
            if batch.state.alive:
                deliver(self._deliver, run_sync_batch(task, has_filter, batch))

    def _deliver(self, result: BatchResult) -> None:
        if not self._stopping:
            self._on_result(result)

    def _thread_job_done(self, t: int, job: asyncio.Future[Any]) -> None:
        self._thread_jobs[t] -= 1
        if not job.cancelled() and job.exception() is not None:
            log.error("threaded task %r crashed outside handle(): %r", self._tasks[t].name, job.exception())
        if self._thread_queues[t] and not self._stopping and self._thread_jobs[t] < self._thread_limits[t]:
            self._start_thread_job(t)

    async def _run_async(self, batch: TaskBatch) -> None:
        if not batch.state.alive:
            return
        t = batch.task
        outcome = await run_async_bodies(self._tasks[t], self._filters[t], self._sems[t], batch.bodies)
        if not self._stopping:
            self._on_result(BatchResult(batch, *outcome))

    async def run(self) -> None:
        """Run ready inline batches, grouped by task, yielding to the loop between rounds."""
        ready = self._ready
        while not self._stopping:
            if not ready:
                self._wake.clear()
                await self._wake.wait()
                continue
            groups: dict[int, list[TaskBatch]] = {}
            for _ in range(min(len(ready), self.group_limit)):
                batch = ready.popleft()
                if batch.state.alive:
                    group = groups.get(batch.task)
                    if group is None:
                        groups[batch.task] = [batch]
                    else:
                        group.append(batch)
            for t, group in groups.items():
                if self._stopping:
                    break
                self._run_inline(t, group)
            await asyncio.sleep(0)

    def _run_inline(self, t: int, group: list[TaskBatch]) -> None:
        task = self._tasks[t]
        if self._filters[t] or len(group) == 1:
            for batch in group:
                if batch.state.alive:
                    self._on_result(run_sync_batch(task, self._filters[t], batch))
            return
        alive = [b for b in group if b.state.alive]
        left = run_sync_group(task, alive, self._on_result)
        self._ready.extendleft(reversed(left))

    def supports_cohorts(self) -> bool:
        return bool(self._kinds) and all(kind == INLINE for kind in self._kinds)

    def run_cohort(self, bodies: list[bytes]) -> CohortOutcome:
        assert self._graph is not None
        return run_cohort(self._graph, self._filters, bodies)

    def cancel(self, state: MessageState) -> None:
        # Queued batches of a dead attempt are skipped when popped (state.alive).
        return None

    def queue_depths(self) -> dict[int, int]:
        depths: dict[int, int] = {}
        for batch in chain(self._ready, *self._thread_queues):
            depths[batch.task] = depths.get(batch.task, 0) + len(batch.bodies)
        return depths

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping = True
        self._wake.set()
        self._ready.clear()
        for queue in self._thread_queues:
            queue.clear()
        for job in list(self._async_jobs):
            job.cancel()
        if self._async_jobs:
            await asyncio.gather(*self._async_jobs, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for t in reversed(self._started):
            try:
                await maybe_await(t.teardown())
            except Exception:
                log.exception("teardown of task %r failed", t.name)
        self._started.clear()
