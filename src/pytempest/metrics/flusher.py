"""Flushes the registry to every target on an interval, off the event loop.

Each target gets one dedicated worker thread: ``open``, every ``flush`` and ``close``
run there, in order, never on the engine's event loop. A target whose backend hangs
(a push gateway that accepts and never answers) holds only its own thread: the engine
keeps handling messages, the other targets keep flushing, and a flush of that target
is skipped while the previous one is still running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from pytempest.metrics.registry import Registry
from pytempest.metrics.target import MetricTarget

log = logging.getLogger("pytempest.metrics")

CLOSE_TIMEOUT_MS = 5_000
"""How long :meth:`MetricsFlusher.close` waits for the last flush and ``close`` of all targets."""


class _Worker:
    """One daemon thread running jobs in order. Daemon, so that a target hung for good
    cannot keep the process from exiting (a thread pool's threads are joined at exit)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], concurrent.futures.Future[None]] | None]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, func: Callable[[], None]) -> concurrent.futures.Future[None]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._jobs.put((func, future))
        return future

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            func, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                func()
            except BaseException as exc:  # handed to whoever awaits the job
                future.set_exception(exc)
            else:
                future.set_result(None)

    def stop(self) -> None:
        """End the thread once the jobs already queued ran."""
        self._jobs.put(None)


class _Slot:
    """One target, its thread and the flush running there (if any)."""

    def __init__(self, target: MetricTarget, index: int) -> None:
        self.target = target
        self.worker = _Worker(f"pytempest-metrics-{target.kind}-{index}")
        self.job: asyncio.Future[None] | None = None
        self.opened = False
        self.last_error = 0.0

    @property
    def busy(self) -> bool:
        return self.job is not None and not self.job.done()


class MetricsFlusher:
    """Calls ``target.flush(registry)`` every ``interval_ms``, each target in its own thread.

    Function gauges are sampled on the event loop just before each flush (they read
    engine state). A target whose flush raises is logged (at most once a minute per
    target) and kept.
    """

    def __init__(self, registry: Registry, targets: Sequence[MetricTarget], interval_ms: int) -> None:
        self.registry = registry
        self.targets = list(targets)
        self.interval_ms = interval_ms
        self._stop = asyncio.Event()
        self._slots = [_Slot(t, i) for i, t in enumerate(self.targets)]
        self._closed = False

    def _call(self, slot: _Slot, func: Callable[[], None]) -> asyncio.Future[None]:
        return asyncio.wrap_future(slot.worker.submit(func))

    async def open(self) -> None:
        """Open every target in its thread; if one fails, close those already open and raise."""
        for slot in self._slots:
            try:
                await self._call(slot, lambda s=slot: s.target.open(self.registry))  # type: ignore[misc]
            except BaseException:
                await self.close(final_flush=False)
                raise
            slot.opened = True

    def stop(self) -> None:
        """Make :meth:`run` return (the last flush is :meth:`close`'s)."""
        self._stop.set()

    async def run(self) -> None:
        """Flush every interval until :meth:`stop`."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_ms / 1000)
            if not self._stop.is_set():
                self.flush()

    def flush(self) -> None:
        """Sample the gauges, then start a flush of every target that is not still busy."""
        self.registry.sample_gauges()
        for slot in self._slots:
            if slot.opened and not slot.busy:
                slot.job = self._call(slot, lambda s=slot: self._flush_one(s))  # type: ignore[misc]

    def _flush_one(self, slot: _Slot) -> None:
        try:
            slot.target.flush(self.registry)
        except Exception as exc:
            now = time.monotonic()
            if not slot.last_error or now - slot.last_error >= 60:
                log.warning("metric target %s failed to flush: %r", slot.target.describe(), exc)
                slot.last_error = now

    def _close_one(self, slot: _Slot) -> None:
        try:
            slot.target.close()
        except Exception as exc:
            log.warning("metric target %s failed to close: %r", slot.target.describe(), exc)

    async def close(self, final_flush: bool = True, timeout_ms: int = CLOSE_TIMEOUT_MS) -> None:
        """Flush a last time (after every other loop stopped, so the counts are final),
        close every target, and stop their threads.

        Waits at most ``timeout_ms`` in all; a target still stuck then (a hung backend)
        is left to finish in its thread and logged. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if final_flush:
            self.registry.sample_gauges()
        jobs: dict[asyncio.Future[None], _Slot] = {}
        for slot in self._slots:
            if not slot.opened:
                continue
            if final_flush:
                # Queued behind a flush still running: the thread runs them in order.
                self._call(slot, lambda s=slot: self._flush_one(s))  # type: ignore[misc]
            jobs[self._call(slot, lambda s=slot: self._close_one(s))] = slot  # type: ignore[misc]
        if jobs:
            _, pending = await asyncio.wait(jobs, timeout=timeout_ms / 1000)
            if pending:
                stuck = [jobs[j].target.describe() for j in pending]
                log.warning(
                    "metric target(s) %s did not flush and close within %d ms; left running",
                    ", ".join(stuck), timeout_ms,
                )  # fmt: skip
        for slot in self._slots:
            slot.worker.stop()
