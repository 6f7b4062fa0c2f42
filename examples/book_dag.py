"""The fan-out / fan-in pipeline of the Tempest book, in process, on a memory source.

    pytempest run examples/book_dag.py:topology --until-idle

    T1 ──> T2 ──> T4
     └───> T3 ──┘

T1 gets the source message and emits 10 bodies; T2 and T3 each get all 10; T2 emits 5
per input, T3 nothing (a dead end); T4 gets T2's 50. A source message is acked only once
T4 has handled all 50: 71 handle calls per source message.
"""

from __future__ import annotations

from pytempest import Pipeline, Task, Topology, task
from pytempest.sources import MemorySource


class Fanout(Task):
    """Emits ``n`` numbered copies of its input."""

    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.n = n

    def handle(self, body: bytes) -> list[bytes]:
        return [body + b".%d" % i for i in range(self.n)]


@task("T3")
def dead_end(body: bytes) -> None:
    """Handles T1's outputs and emits nothing: T4 does not wait for it."""
    return None


@task("T4")
def sink(body: bytes) -> None:
    """The last task: gets T2's outputs."""
    return None


def pipeline() -> Pipeline:
    """T1 -> T2 -> T4, T1 -> T3 -> T4."""
    return (
        Pipeline()
        .task(Fanout("T1", 10))
        .task(Fanout("T2", 5))
        .task(dead_end)
        .task(sink)
        .edges(("T1", "T2"), ("T1", "T3"), ("T2", "T4"), ("T3", "T4"))
    )


def topology(messages: int = 1000) -> Topology:
    """The book DAG over ``messages`` memory messages."""
    return Topology("book", pipeline(), MemorySource([b"msg%d" % i for i in range(messages)]))
