"""The engine: in-flight tracking, completion, timeouts, retries, backpressure, acks."""

from pytempest.engine.engine import Engine, EngineError
from pytempest.engine.events import EngineObserver
from pytempest.engine.executor import BatchResult, Executor, TaskBatch, TaskFailure

__all__ = [
    "BatchResult",
    "Engine",
    "EngineError",
    "EngineObserver",
    "Executor",
    "TaskBatch",
    "TaskFailure",
]
