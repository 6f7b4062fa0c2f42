"""What one measurement is: a :class:`Job` given to a child process, and its result."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.common import BODY

BODY_LEN = len(BODY)
"""Every message body is 100 bytes (:data:`benchmarks.common.BODY`)."""

W2_CALLS = 71
"""Handle calls per source message in the book DAG: T1 1, T2 10, T3 10, T4 50."""

SYSTEMS = ("baseline", "pytempest", "bytewax", "dramatiq", "celery")
"""The systems of W1 to W3, in the order they run within each round."""

MODULES = {
    "baseline": "benchmarks.suite.systems.baseline",
    "pytempest": "benchmarks.suite.systems.pytempest_inproc",
    "pytempest-dist": "benchmarks.suite.systems.pytempest_dist",
    "bytewax": "benchmarks.suite.systems.bytewax_flow",
    "dramatiq": "benchmarks.suite.systems.dramatiq_app",
    "celery": "benchmarks.suite.systems.celery_app",
}
"""The module that runs each system; each has ``throughput(job)`` and ``latency(job, ready)``."""


@dataclass(frozen=True)
class Job:
    """One run of one system on one workload.

    The runner has filled ``key`` (a stream) and created the consumer group ``group``
    at ``0`` before the child starts. For W1, W2 and W4 the stream holds exactly ``n``
    entries of :data:`BODY_LEN` bytes; for W3 it is empty and the runner's producer adds
    ``n`` entries at ``rate`` per second once the child said it is ready, each body
    starting with its send time (:func:`benchmarks.suite.streams.sent_ns`).
    """

    system: str
    workload: str
    url: str
    key: str
    group: str
    n: int
    rate: int = 0
    workers: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))

    @property
    def label(self) -> str:
        return f"{self.system}-{self.workers}w" if self.workers else self.system


@dataclass
class Result:
    """What a child reports. ``seconds`` runs from the first read to the last ack
    (setup, imports and worker start-up excluded); ``handled`` counts handle calls
    (``n`` for W1, ``71 n`` for W2); W3 fills ``latencies_ms`` (XADD to ack, one per
    message); W4 fills ``rss_bytes`` and ``traced_bytes`` (growth while ``n`` messages are
    in flight)."""

    seconds: float = 0.0
    handled: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rss_bytes: int = 0
    traced_bytes: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Result:
        return cls(**json.loads(text))
