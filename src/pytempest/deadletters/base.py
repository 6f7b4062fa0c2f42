"""The dead-letter interface: where a message goes when its retries are exhausted.

A source message is acked only after ``DeadLetter.put`` returned for its record; when
``put`` raises, the message is left unacked at the source (released) and counted, so
nothing is lost silently.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

ERROR_TEXT_LIMIT = 4096
"""Error texts longer than this (characters) are cut, with a marker, in a record."""


def truncate_error(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """What a dead letter receives for one failed source message."""

    topology: str
    source: str
    source_id: str
    body: bytes
    task: str | None
    error: str
    reason: str
    attempts: int
    first_failure_ms: int
    last_failure_ms: int

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (body kept as bytes)."""
        return asdict(self)


class DeadLetter(abc.ABC):
    """Base class of every dead letter."""

    kind: ClassVar[str] = "dead_letter"

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Connect or open files. Called once before the first ``put``."""

    @abc.abstractmethod
    async def put(self, records: Sequence[DeadLetterRecord]) -> None:
        """Store the records durably; raise when they could not all be stored."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files. Called once, last."""

    def describe(self) -> str:
        """A one-line description without secrets."""
        return self.kind
