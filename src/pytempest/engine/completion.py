"""The completion rule: when is a source message done? (DESIGN.md section 2)

For one attempt of a source message *m* the tracker keeps, per task *T*:

* ``pending[T]``: task messages of *m* handed to *T* and not yet handled;
* ``open_in[T]``: incoming edges of *T* that may still carry messages of *m*;
* ``issued[T]``: how many task messages of *m* were handed to *T* (their sequence numbers);
* ``handled[T]``: a bit set of the sequence numbers already handled (drops duplicates).

*T* is complete when ``open_in[T] == 0 and pending[T] == 0``. When *T* completes its held
outputs (``stage`` release) go to every descendant *D*, then each edge *(T, D)* closes:
``open_in[D] -= 1`` and *D* may complete in turn. That is how a dead end (a task that
returns nothing) finishes its descendants without ever skipping a fan-in task that still
has a live input. *m* is done when every task is complete. Each step is O(1) in the size
of the graph; nothing scans the graph per message. The four counters live in one flat list
per message (one allocation), ``[pending | open_in | issued | handled]``.

This module is pure: no I/O, no asyncio. Handing work to tasks is the ``dispatch``
callback's job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from pytempest.model.message import SourceMsg
from pytempest.model.pipeline import Graph

DONE: Final = 2
PROGRESS: Final = 1
IGNORED: Final = 0


class MessageState:
    """The in-flight state of one attempt of one source message."""

    __slots__ = (
        "alive",
        "attempt",
        "counts",
        "failed_task",
        "first_failure_ms",
        "held",
        "msg",
        "remaining",
        "timer_slot",
    )

    def __init__(self, msg: SourceMsg, counts: list[int], n_tasks: int, stage: bool) -> None:
        self.msg = msg
        self.attempt = msg.deliveries
        self.counts = counts
        self.held: list[list[bytes] | None] | None = [None] * n_tasks if stage else None
        self.remaining = n_tasks
        self.alive = True
        self.timer_slot: int | None = None
        self.first_failure_ms = 0
        self.failed_task: str | None = None

    def __repr__(self) -> str:
        return f"<MessageState id={self.msg.id!r} attempt={self.attempt} remaining={self.remaining}>"


Dispatch = Callable[[MessageState, int, int, list[bytes]], None]
"""``dispatch(state, task_index, first_seq, bodies)``: hand bodies to a task."""


class CompletionTracker:
    """Applies task results to message states and says when a message is done.

    Args:
        graph: the checked pipeline.
        dispatch: called for every batch of bodies a task must handle; ``first_seq`` is
            the sequence number of the first body among the task messages of that
            task for that attempt (results are identified by it).
        batch_sizes: per task, at most this many bodies per dispatched batch.
    """

    def __init__(self, graph: Graph, dispatch: Dispatch, batch_sizes: list[int] | None = None) -> None:
        n = len(graph)
        self.n = n
        self.stage = graph.release == "stage"
        self.descendants = graph.descendants
        self.dispatch = dispatch
        self.batch_sizes = batch_sizes or [max(1, t.batch) for t in graph.tasks]
        # pending[root] = 1; open_in[T] = number of ancestors; issued[root] = 1.
        template = [0] * (4 * n)
        template[0] = 1
        for t in range(n):
            template[n + t] = len(graph.ancestors[t])
        template[2 * n] = 1
        self._template = template

    def new_state(self, msg: SourceMsg) -> MessageState:
        """The state of a new attempt, with nothing handed to any task yet."""
        return MessageState(msg, self._template.copy(), self.n, self.stage)

    def start(self, msg: SourceMsg) -> MessageState:
        """Make the state of a new attempt and hand the body to the root task."""
        state = MessageState(msg, self._template.copy(), self.n, self.stage)
        self.dispatch(state, 0, 0, [msg.body])
        return state

    def _send(self, state: MessageState, task: int, bodies: list[bytes]) -> None:
        counts = state.counts
        n = self.n
        counts[task] += len(bodies)
        size = self.batch_sizes[task]
        seq = counts[2 * n + task]
        counts[2 * n + task] = seq + len(bodies)
        if len(bodies) <= size:
            self.dispatch(state, task, seq, bodies)
            return
        for start in range(0, len(bodies), size):
            self.dispatch(state, task, seq + start, bodies[start : start + size])

    def handled(self, state: MessageState, task: int, seq: int, count: int, outputs: list[bytes]) -> int:
        """Apply the result of ``count`` task messages of ``task`` starting at ``seq``.

        Returns ``DONE`` when the source message is now done, ``PROGRESS`` otherwise, and
        ``IGNORED`` for a result of a finished or failed attempt or a duplicate.
        """
        if not state.alive:
            return IGNORED
        counts = state.counts
        n = self.n
        bits = ((1 << count) - 1) << seq
        mask = counts[3 * n + task]
        if mask & bits:
            return IGNORED
        counts[3 * n + task] = mask | bits
        if outputs:
            if self.stage:
                held = state.held
                assert held is not None
                pen = held[task]
                if pen is None:
                    held[task] = outputs
                else:
                    pen.extend(outputs)
            else:
                for d in self.descendants[task]:
                    self._send(state, d, outputs)
        pending = counts[task] - count
        counts[task] = pending
        if pending == 0 and counts[n + task] == 0:
            return self._complete(state, task)
        return PROGRESS

    def _complete(self, state: MessageState, task: int) -> int:
        counts = state.counts
        n = self.n
        held = state.held
        stack = [task]
        while stack:
            t = stack.pop()
            state.remaining -= 1
            outs = None
            if held is not None:
                outs = held[t]
                held[t] = None
            for d in self.descendants[t]:
                if outs:
                    self._send(state, d, outs)
                left = counts[n + d] - 1
                counts[n + d] = left
                if left == 0 and counts[d] == 0:
                    stack.append(d)
        if state.remaining == 0:
            state.alive = False
            return DONE
        return PROGRESS
