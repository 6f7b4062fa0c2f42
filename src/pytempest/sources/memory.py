"""A source that serves a primed list of bodies from memory (tests, examples)."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from pytempest.model.message import SourceMsg, now_ms
from pytempest.model.policy import AckPolicy
from pytempest.sources.base import Source


def _body(value: bytes | str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"MemorySource bodies must be bytes or str; got {type(value).__name__}")


class MemorySource(Source):
    """Serves ``bodies`` in order; ids are ``"0"``, ``"1"``, ...

    Acked ids are recorded in :attr:`acked` (in ack order). Released messages (failure
    policy ``none``, shutdown) are queued again at the back with one more delivery,
    unless ``requeue`` is False.

    Args:
        bodies: the primed messages (bytes, or str encoded as UTF-8).
        read_count: at most this many messages per poll.
        ack_policy: how finished messages are acked (default individual).
        requeue: put released messages back in the queue.
        max_backoff_ms: the longest wait between polls when the queue is empty.
    """

    kind: ClassVar[str] = "memory"

    def __init__(
        self,
        bodies: Iterable[bytes | str] = (),
        *,
        read_count: int = 1000,
        ack_policy: AckPolicy | None = None,
        requeue: bool = True,
        max_backoff_ms: int = 100,
    ) -> None:
        bodies = list(bodies)
        self._options: dict[str, Any] = {
            "bodies": bodies,
            "read_count": read_count,
            "ack_policy": ack_policy,
            "requeue": requeue,
            "max_backoff_ms": max_backoff_ms,
        }
        self._queue: deque[SourceMsg] = deque()
        self._next_id = 0
        self.read_count = read_count
        self.ack_policy = ack_policy or AckPolicy.individual()
        self.requeue = requeue
        self.max_backoff_ms = max_backoff_ms
        self.acked: list[str] = []
        self.released: list[SourceMsg] = []
        self.ack_calls = 0
        self.push(*bodies)

    def options(self) -> dict[str, Any]:
        """The constructor arguments this source was built with (``Topology.toml`` keys
        override some of them and rebuild it: ``MemorySource(**{**s.options(), **changes})``)."""
        return dict(self._options)

    def push(self, *bodies: bytes | str) -> list[str]:
        """Add messages at the back of the queue; return their ids."""
        ids = []
        for body in bodies:
            msg_id = str(self._next_id)
            self._next_id += 1
            self._queue.append(SourceMsg(msg_id, _body(body), 0))
            ids.append(msg_id)
        return ids

    def __len__(self) -> int:
        """Messages waiting to be read."""
        return len(self._queue)

    async def poll(self, max_count: int) -> list[SourceMsg]:
        queue = self._queue
        n = min(max_count, self.read_count, len(queue))
        if not n:
            return []
        now = now_ms()
        out = []
        for _ in range(n):
            msg = queue.popleft()
            msg.read_at = now
            out.append(msg)
        return out

    async def ack(self, ids: Sequence[str]) -> None:
        self.ack_calls += 1
        self.acked.extend(ids)

    async def release(self, msgs: Sequence[SourceMsg]) -> None:
        self.released.extend(msgs)
        if self.requeue:
            for msg in msgs:
                self._queue.append(dataclasses.replace(msg, deliveries=msg.deliveries + 1))

    def describe(self) -> str:
        return "memory"
