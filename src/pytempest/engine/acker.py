"""Acks finished messages at the source, per the source's ack policy.

* ``individual``: every id is acked by itself, as soon as the ack loop runs;
* ``batch(n, ack_interval_ms)``: ids are acked together once ``n`` wait or the oldest
  has waited ``ack_interval_ms``, in calls of at most ``n`` ids; the engine calls
  :meth:`Acker.urgent` when nothing else runs, so an idle topology acks at once;
* ``none``: ids are dropped.

A failed ack is retried (the ids go back to the front) with a growing pause, up to
``max_attempts`` times; then the ids are given up with a log line: the messages stay
unacked at the source and are redelivered later (a duplicate, never a loss).
Everything still waiting is flushed when the loop stops.

:attr:`Acker.unacked` counts the ids queued or in an ack call: the engine counts them in
its load, so done-but-unacked messages hold their ``max_pending`` slot until acked (what a
crash can make run twice is then bounded by ``max_pending``), and it calls
:meth:`Acker.urgent` when it has no room left, so a batch does not wait its interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from pytempest import failpoints
from pytempest.model.policy import AckPolicy, Backoff
from pytempest.sources.base import Source

log = logging.getLogger("pytempest.engine")


class Acker:
    """Queues ids of finished messages and acks them from :meth:`run`."""

    def __init__(
        self,
        source: Source,
        policy: AckPolicy,
        on_acked: Callable[[int, bool], None],
        max_attempts: int = 5,
    ) -> None:
        self.source = source
        self.policy = policy
        self.on_acked = on_acked
        self.max_attempts = max_attempts
        self._ids: list[str] = []
        self._oldest = 0.0
        self._wake = asyncio.Event()
        self._closing = False
        self._failures = 0
        self._backoff = Backoff(50, 5000)
        self._urgent = False
        self._flushing = asyncio.Lock()
        self.unacked = 0
        """Ids queued or in an ack call (not acked yet, not given up)."""

    def add(self, msg_id: str) -> None:
        """Queue one id for acking."""
        if self.policy.kind == "none":
            return
        self.unacked += 1
        ids = self._ids
        if not ids:
            self._oldest = time.monotonic()
            self._wake.set()  # the loop may sleep on an empty queue: start the interval
        ids.append(msg_id)
        if self.policy.kind == "individual" or len(ids) >= self.policy.size:
            self._wake.set()

    def add_many(self, msg_ids: list[str]) -> None:
        """Queue several ids for acking."""
        if self.policy.kind == "none" or not msg_ids:
            return
        self.unacked += len(msg_ids)
        ids = self._ids
        if not ids:
            self._oldest = time.monotonic()
        ids += msg_ids
        self._wake.set()

    def __len__(self) -> int:
        return len(self._ids)

    def urgent(self) -> None:
        """Ack what waits now, without waiting for a batch to fill or its interval."""
        if self._ids and not self._urgent:
            self._urgent = True
            self._wake.set()

    def urgent_waiting(self) -> bool:
        """Ids wait, :meth:`urgent` asked for them to go out now, and the last ack did
        not fail (after a failure, the run loop's growing pause decides when to retry)."""
        return self._urgent and bool(self._ids) and not self._failures

    async def flush_now(self) -> None:
        """Ack what waits from the caller's task (the run loop retries what fails)."""
        async with self._flushing:
            if self._ids:
                self._urgent = False
                if not await self.flush_once():
                    self._wake.set()

    def close(self) -> None:
        """Make :meth:`run` flush what waits and return."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        """Ack loop; returns after :meth:`close` once everything queued was tried."""
        interval = self.policy.interval_ms / 1000
        while True:
            if not self._ids:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if (
                not self._closing
                and not self._urgent
                and self.policy.kind == "batch"
                and len(self._ids) < self.policy.size
            ):
                wait = self._oldest + interval - time.monotonic()
                if wait > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                    continue
            self._urgent = False
            async with self._flushing:
                ok = await self.flush_once() if self._ids else True
            if not ok:
                if self._closing and self._failures >= self.max_attempts:
                    return
                await asyncio.sleep(self._backoff.miss() / 1000)
            else:
                await asyncio.sleep(0)

    async def flush_once(self) -> bool:
        """Ack what waits (one call per id, or one call of up to ``n`` ids for a batch
        policy); False when an ack failed (its ids go back to the front)."""
        if self.policy.kind == "individual":
            ids, self._ids = self._ids, []
            calls = [[i] for i in ids]
        else:
            ids = self._ids[: self.policy.size]
            del self._ids[: len(ids)]
            calls = [ids]
        if self._ids:
            self._oldest = time.monotonic() - self.policy.interval_ms / 1000
        acked = 0
        if failpoints.ARMED and ids:
            failpoints.hit("engine.before_ack")
        for n, chunk in enumerate(calls):
            try:
                await self.source.ack(chunk)
            except Exception as exc:
                if acked:
                    self.unacked -= acked
                    self.on_acked(acked, True)
                self._failed([i for c in calls[n:] for i in c], exc)
                return False
            acked += len(chunk)
        self.unacked -= acked
        self.on_acked(acked, True)
        self._failures = 0
        self._backoff.reset()
        return True

    def _failed(self, ids: list[str], exc: Exception) -> None:
        self._failures += 1
        self.on_acked(len(ids), False)
        if self._failures >= self.max_attempts:
            log.error(
                "giving up acking %d message(s) after %d failed attempts (%s: %s); "
                "they stay unacked at the source and will be redelivered",
                len(ids), self._failures, type(exc).__name__, exc,
            )  # fmt: skip
            self._failures = 0
            self.unacked -= len(ids)
        else:
            self._ids[:0] = ids
