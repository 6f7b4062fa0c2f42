"""pytempest: run every message from a source through a DAG of Python tasks, and ack it
only when everything derived from it has been handled.

The public API::

    from pytempest import FailurePolicy, Pipeline, Task, TestRun, Topology, task
    from pytempest.sources import MemorySource, FileSource
"""

from pytempest.engine.engine import Engine
from pytempest.errors import (
    ConfigError,
    DeadLetterError,
    PipelineError,
    PytempestError,
    SourceConnectionError,
    SourceError,
    TargetError,
    TaskError,
    TaskSetupError,
)
from pytempest.model.message import SourceMsg
from pytempest.model.pipeline import Pipeline
from pytempest.model.policy import AckPolicy, FailurePolicy
from pytempest.model.task import Task, task
from pytempest.testing.testrun import TestRun
from pytempest.topology import Topology

__version__ = "0.1.0"

__all__ = [
    "AckPolicy",
    "ConfigError",
    "DeadLetterError",
    "Engine",
    "FailurePolicy",
    "Pipeline",
    "PipelineError",
    "PytempestError",
    "SourceConnectionError",
    "SourceError",
    "SourceMsg",
    "TargetError",
    "Task",
    "TaskError",
    "TaskSetupError",
    "TestRun",
    "Topology",
    "__version__",
    "task",
]
