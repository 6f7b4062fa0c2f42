"""The source interface: where source messages come from and where they are acked.

The engine calls these methods from one asyncio event loop, never concurrently for the
same method (``poll`` and ``ack`` may overlap each other). Guarantees every source must
give, checked by the shared contract tests in ``tests/test_source_contract.py``:

* ``setup`` runs once before anything else; it may block (connect, create groups) and
  raises :class:`~pytempest.errors.SourceError` when the source cannot be used.
* ``poll(max_count)`` returns at most ``max_count`` messages, an empty list when there is
  nothing now. It may wait for data up to the source's own block time, never forever.
  An exception is counted and logged by the engine, which backs off and polls again:
  a source that errors never stops the topology.
* ``ack(ids)`` is idempotent: acking an id twice, or one the source no longer knows, is
  not an error. It is called only for messages whose processing ended (done,
  dead-lettered, or failed under ``best_effort``).
* ``release(msgs)`` hands back messages the topology gave up on without acking (failure
  policy ``none``, or shutdown): the source may deliver them again (a memory source
  re-queues them; a Redis stream leaves them pending for its handlers).
* ``close`` is called once, last; ``ack`` is not called after it.
* ``healthy()`` is cheap and never blocks; the engine exposes it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from pytempest.model.message import SourceMsg
from pytempest.model.policy import AckPolicy

if TYPE_CHECKING:
    from pytempest.metrics.registry import SourceMetrics


class Source(abc.ABC):
    """Base class of every source.

    Attributes that tune the engine's poll loop: ``ack_policy``, ``poll_interval_ms``
    (the wait between polls while data keeps coming: 0 polls again at once),
    ``max_backoff_ms`` (the longest wait after empty or failed polls),
    ``monitor_interval_ms`` (how often ``monitor`` runs; 0 disables it) and
    ``read_count`` (the most one poll returns, 0: no limit of its own; a poll that
    returns fewer means the source is drained for now).
    """

    kind: ClassVar[str] = "source"
    ack_policy: AckPolicy = AckPolicy.individual()
    poll_interval_ms: int = 0
    max_backoff_ms: int = 1000
    monitor_interval_ms: int = 0
    read_count: int = 0
    metrics: SourceMetrics | None = None

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare the source (connect, create groups). Called once, first."""

    @abc.abstractmethod
    async def poll(self, max_count: int) -> list[SourceMsg]:
        """Return up to ``max_count`` new messages; an empty list when there are none now."""

    @abc.abstractmethod
    async def ack(self, ids: Sequence[str]) -> None:
        """Acknowledge the messages with these ids (idempotent)."""

    async def release(self, msgs: Sequence[SourceMsg]) -> None:  # noqa: B027 - optional hook
        """Give back messages that were not acked; the source may redeliver them."""

    async def monitor(self) -> None:  # noqa: B027 - optional hook
        """Periodic housekeeping (reclaim stale entries, update gauges)."""

    def healthy(self) -> bool:
        """Whether the source can currently reach its data (cheap, never blocks)."""
        return True

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files. Called once, last."""

    def describe(self) -> str:
        """A one-line description without secrets, for logs and status."""
        return self.kind
