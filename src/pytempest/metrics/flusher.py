"""Flushes the registry to every target on an interval, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence

from pytempest.metrics.registry import Registry
from pytempest.metrics.target import MetricTarget

log = logging.getLogger("pytempest.metrics")


class MetricsFlusher:
    """Calls ``target.flush(registry)`` every ``interval_ms`` in a worker thread.

    A target whose flush raises is logged (at most once a minute per target) and kept;
    a flush still running when the next is due is not started twice.
    """

    def __init__(self, registry: Registry, targets: Sequence[MetricTarget], interval_ms: int) -> None:
        self.registry = registry
        self.targets = list(targets)
        self.interval_ms = interval_ms
        self._stop = asyncio.Event()
        self._busy: set[int] = set()
        self._last_error: dict[int, float] = {}

    async def open(self) -> None:
        """Open every target (in worker threads)."""
        for target in self.targets:
            await asyncio.to_thread(target.open, self.registry)

    def stop(self) -> None:
        """Make :meth:`run` do a last flush and return."""
        self._stop.set()

    async def run(self) -> None:
        """Flush every interval until :meth:`stop`; then flush once more and close."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_ms / 1000)
            for i, target in enumerate(self.targets):
                if i in self._busy:
                    continue
                self._busy.add(i)
                job = loop.run_in_executor(None, self._flush_one, i, target)
                job.add_done_callback(functools.partial(self._done, i))
        await self.close()

    def _done(self, i: int, _job: object) -> None:
        self._busy.discard(i)

    def _flush_one(self, i: int, target: MetricTarget) -> None:
        try:
            target.flush(self.registry)
        except Exception as exc:
            now = time.monotonic()
            last = self._last_error.get(i)
            if last is None or now - last >= 60:
                log.warning("metric target %s failed to flush: %r", target.describe(), exc)
                self._last_error[i] = now

    async def close(self) -> None:
        """Wait (bounded) for running flushes, then close every target."""
        for _ in range(50):
            if not self._busy:
                break
            await asyncio.sleep(0.02)
        for target in self.targets:
            try:
                await asyncio.wait_for(asyncio.to_thread(target.close), 5)
            except Exception as exc:
                log.warning("metric target %s failed to close: %r", target.describe(), exc)
