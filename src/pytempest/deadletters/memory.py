"""A dead letter that keeps its records in a list (tests, examples)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pytempest.deadletters.base import DeadLetter, DeadLetterRecord


class MemoryDeadLetter(DeadLetter):
    """Keeps every record in ``self.records``, oldest first."""

    kind: ClassVar[str] = "memory"

    def __init__(self) -> None:
        self.records: list[DeadLetterRecord] = []

    async def put(self, records: Sequence[DeadLetterRecord]) -> None:
        self.records.extend(records)
