"""Small topologies and sources shared by the core tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from pytempest import Pipeline, Task, task
from pytempest.engine.events import EngineObserver
from pytempest.model.message import SourceMsg
from pytempest.sources import MemorySource


class Emit(Task):
    """Emits ``n`` copies of its input (thread-safe call counter in ``calls``)."""

    def __init__(self, name: str, n: int, *, sleep_s: float = 0.0, threaded: bool = False) -> None:
        self.name = name
        self.n = n
        self.sleep_s = sleep_s
        self.threaded = threaded
        self.calls = 0
        self._lock = threading.Lock()

    def handle(self, body: bytes) -> list[bytes] | None:
        with self._lock:
            self.calls += 1
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return [body] * self.n if self.n else None


def book_dag(t2_sleep_s: float = 0.0) -> Pipeline:
    """T1 emits 10; T2 emits 5 per input; T3 emits nothing; T4 handles T2's outputs."""
    return (
        Pipeline()
        .task(Emit("T1", 10))
        .task(Emit("T2", 5, sleep_s=t2_sleep_s, threaded=t2_sleep_s > 0))
        .task(Emit("T3", 0))
        .task(Emit("T4", 0))
        .edge("T1", "T2")
        .edge("T1", "T3")
        .edge("T2", "T4")
        .edge("T3", "T4")
    )


def always_fail(name: str = "boom") -> Task:
    @task(name)
    def fail(body: bytes) -> None:
        raise ValueError(f"cannot handle {body!r}")

    return fail


class FlakySource(MemorySource):
    """A memory source whose every other poll raises."""

    def __init__(self, bodies: Sequence[bytes]) -> None:
        super().__init__(bodies)
        self.polls = 0

    async def poll(self, max_count: int) -> list[SourceMsg]:
        self.polls += 1
        if self.polls % 2:
            raise ConnectionResetError(f"poll number {self.polls} failed on purpose")
        return await super().poll(min(max_count, 7))


class LoadRecorder(EngineObserver):
    """Records the engine's load each time a batch is handled."""

    def __init__(self) -> None:
        self.engine: object = None
        self.max_load = 0

    def task_done(self, result: object, stale: bool) -> None:
        load = self.engine.load  # type: ignore[attr-defined]
        self.max_load = max(self.max_load, load)
