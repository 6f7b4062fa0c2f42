"""The pure model: messages, tasks, the pipeline graph and policies (no I/O)."""

from pytempest.model.message import SourceMsg, now_ms
from pytempest.model.pipeline import Graph, Pipeline
from pytempest.model.policy import AckPolicy, Backoff, FailurePolicy
from pytempest.model.task import FunctionTask, Task, task

__all__ = [
    "AckPolicy",
    "Backoff",
    "FailurePolicy",
    "FunctionTask",
    "Graph",
    "Pipeline",
    "SourceMsg",
    "Task",
    "now_ms",
    "task",
]
