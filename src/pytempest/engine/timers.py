"""A timer wheel for message deadlines: O(1) add and remove, fires within one slot.

Deadlines are grouped in slots of ``resolution_ms``; a slot fires once its end has
passed, so a deadline fires at most ``resolution_ms`` late and never early. Only the
slot numbers sit in a heap (a few thousand at most), while the states of finished
messages are removed from their slot at once: memory follows what is in flight, not
everything read during the last ``msg_timeout_ms``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from pytempest.engine.completion import MessageState


class DeadlineWheel:
    """Message states by deadline slot."""

    def __init__(self, resolution_ms: int = 10) -> None:
        self.resolution_ms = max(1, resolution_ms)
        self._slots: dict[int, set[MessageState]] = {}
        self._heap: list[int] = []

    def add(self, state: MessageState, deadline_ms: int) -> None:
        """Fire ``state`` once ``deadline_ms`` has passed."""
        slot = -(-deadline_ms // self.resolution_ms)
        states = self._slots.get(slot)
        if states is None:
            states = self._slots[slot] = set()
            heapq.heappush(self._heap, slot)
        states.add(state)
        state.timer_slot = slot

    def remove(self, state: MessageState) -> None:
        """Forget ``state`` (it finished or failed)."""
        slot = state.timer_slot
        if slot is not None:
            states = self._slots.get(slot)
            if states is not None:
                states.discard(state)
            state.timer_slot = None

    def expired(self, now_ms: int) -> Iterator[MessageState]:
        """Pop every state whose slot has ended by ``now_ms``."""
        heap = self._heap
        while heap and heap[0] * self.resolution_ms <= now_ms:
            slot = heapq.heappop(heap)
            for state in self._slots.pop(slot, ()):
                state.timer_slot = None
                yield state

    def next_due_ms(self) -> int | None:
        """When the earliest slot fires (epoch ms), or None when empty."""
        heap = self._heap
        while heap and not self._slots.get(heap[0]):
            self._slots.pop(heapq.heappop(heap), None)
        return heap[0] * self.resolution_ms if heap else None

    def __len__(self) -> int:
        return sum(len(s) for s in self._slots.values())
