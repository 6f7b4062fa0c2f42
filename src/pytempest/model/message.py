"""Source messages and the time helper every part of pytempest uses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

Body = bytes
"""A message body. Codecs (JSON, msgpack) are helpers on top, never required."""


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch (the unit of every duration)."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class SourceMsg:
    """One message read from a source.

    Attributes:
        id: the source's own id for the message, passed back to ``Source.ack``.
        body: the payload handed to the root task.
        read_at: when the source read it (epoch ms); ``msg_timeout_ms`` counts from here.
        deliveries: how many times it was handed to a pipeline, this time included
            (1 on the first delivery). Retries and source redeliveries both count, so
            ``FailurePolicy.retry`` is not reset by a restart.
        meta: source-specific extras (for a Redis stream entry, its other fields).
    """

    id: str
    body: bytes
    read_at: int = field(default_factory=now_ms)
    deliveries: int = 1
    meta: dict[str, Any] | None = None
