"""Running one task's batches in a worker and turning the outcomes into result entries.

The batches of a task stream entry run with the in-process runtime's functions, as in
the topology's own process: a sync ``handle`` inline (:func:`run_sync_bodies`), a
``threaded`` one in the worker's thread pool, an ``async def`` one concurrently (at most
``Task.concurrency`` calls at a time, :func:`run_async_bodies`). Outputs larger than
``max_message_bytes`` become a ``MessageTooLarge`` failure of that batch; an entry
delivered too often gets a ``MaxDeliveriesExceeded`` failure per batch without running.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from pytempest.engine.executor import TaskFailure
from pytempest.metrics.registry import Registry
from pytempest.model.task import Task
from pytempest.runtimes.inprocess import Outcome, run_async_bodies, run_sync_bodies
from pytempest.runtimes.redis_bus import cohorts, wire
from pytempest.runtimes.redis_bus.lease import WorkerCounts
from pytempest.runtimes.redis_bus.settings import BusSettings


class TaskRunner:
    """Runs the batches of one task for a worker and counts what they did."""

    def __init__(
        self,
        task: Task,
        topology: str,
        registry: Registry,
        settings: BusSettings,
        counts: WorkerCounts,
        pool: ThreadPoolExecutor | None,
    ) -> None:
        self.task = task
        self.settings = settings
        self.counts = counts
        self.pool = pool
        self.has_filter = task.has_filter()
        self.sem = asyncio.Semaphore(max(1, task.concurrency))
        r, t, n = registry, topology, task.name
        self.handled = r.counter("worker.msg.handle", topology=t, task=n)
        self.skipped = r.counter("worker.msg.skipped", topology=t, task=n)
        self.outflow = r.counter("worker.msg.outflow", topology=t, task=n)
        self.errors = r.counter("worker.msg.error", topology=t, task=n)

    async def run(self, items: list[wire.TaskItem]) -> list[Outcome]:
        """Run every batch of an entry; one outcome per batch, in order."""
        task, has_filter = self.task, self.has_filter
        if task.is_async():
            sem = self.sem
            return list(
                await asyncio.gather(*(run_async_bodies(task, has_filter, sem, it[5]) for it in items))
            )
        if task.threaded and self.pool is not None:
            loop = asyncio.get_running_loop()
            pool = self.pool
            jobs = [loop.run_in_executor(pool, run_sync_bodies, task, has_filter, it[5]) for it in items]
            return list(await asyncio.gather(*jobs))
        return [run_sync_bodies(task, has_filter, item[5]) for item in items]

    def poison_failure(self, deliveries: int, what: str = "a cohort of source messages") -> TaskFailure:
        """The failure of a task message delivered more than ``max_deliveries`` times."""
        return TaskFailure(
            "MaxDeliveriesExceeded",
            f"task {self.task.name!r} message of {what} was delivered {deliveries} times "
            f"(max_deliveries={self.settings.max_deliveries}); each worker that took it died or "
            "stalled before answering (a crash or OOM kill in handle()?)",
            expected=True,
        )

    def encode_cohort(self, worker: str, ref: int, out: cohorts.ChunkOutcome) -> list[bytes]:
        """The result entries answering a cohort entry; counts what the task did."""
        limit = self.settings.max_message_bytes

        def too_large(size: int) -> TaskFailure:
            return TaskFailure(
                "MessageTooLarge",
                f"task {self.task.name!r} emitted {size} bytes for one source message; the distributed "
                f"runtime's limit is {limit} bytes (max_message_bytes / PYTEMPEST_BUS_MAX_MESSAGE_BYTES)",
                expected=True,
            )

        chunks = cohorts.encode_answer(worker, ref, out, limit, too_large)
        t = out.tally
        self.handled.value += t.handled
        self.skipped.value += t.skipped
        self.outflow.value += len(out.outputs)
        self.errors.value += len(out.failed)
        self.counts.handled += t.handled + t.skipped
        self.counts.errors += len(out.failed)
        return chunks

    def poison(self, items: list[wire.TaskItem], deliveries: int) -> list[Outcome]:
        """The outcomes of an entry delivered more than ``max_deliveries`` times."""
        limit = self.settings.max_deliveries
        return [
            (
                [],
                0,
                0,
                0.0,
                TaskFailure(
                    "MaxDeliveriesExceeded",
                    f"task {self.task.name!r} message of source message {item[1]} was delivered "
                    f"{deliveries} times (max_deliveries={limit}); each worker that took it died or "
                    "stalled before answering (a crash or OOM kill in handle()?)",
                    expected=True,
                ),
            )
            for item in items
        ]

    def encode(self, worker: str, items: list[wire.TaskItem], outcomes: list[Outcome]) -> list[bytes]:
        """The result entries (``d`` fields) answering ``items``, each within the size limit."""
        limit = self.settings.max_message_bytes
        counts = self.counts
        results: list[wire.ResultItem] = []
        sizes: list[int] = []
        for item, (outputs, handled, skipped, elapsed, failure) in zip(items, outcomes, strict=True):
            size = wire.item_bytes(outputs)
            if size > limit:
                failure = self._too_large(item, size)
                outputs, size = [], 0
            self.handled.value += handled
            self.skipped.value += skipped
            self.outflow.value += len(outputs)
            counts.handled += handled + skipped
            if failure is not None:
                self.errors.value += 1
                counts.errors += 1
            results.append(
                [item[0], outputs, handled, skipped, round(elapsed, 3), wire.failure_to_wire(failure)]
            )
            sizes.append(size)
        return [wire.encode_results(worker, chunk) for chunk in wire.chunk_results(results, sizes, limit)]

    def _too_large(self, item: wire.TaskItem, size: int) -> TaskFailure:
        return TaskFailure(
            "MessageTooLarge",
            f"task {self.task.name!r} emitted {size} bytes for source message {item[1]} (attempt "
            f"{item[2]}); the distributed runtime's limit is {self.settings.max_message_bytes} bytes "
            "(max_message_bytes / PYTEMPEST_BUS_MAX_MESSAGE_BYTES)",
            expected=True,
        )
