"""The topology: a name, a pipeline, a source and the options that say how it runs."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from pytempest.deadletters.base import DeadLetter
from pytempest.errors import ConfigError
from pytempest.metrics.registry import check_buckets
from pytempest.metrics.target import MetricTarget
from pytempest.model.pipeline import Graph, Pipeline
from pytempest.model.policy import FailurePolicy
from pytempest.sources.base import Source

TOPOLOGY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")

DEFAULT_FAILURE_POLICY = FailurePolicy.retry(3, delay_ms=1000)
DEFAULT_MSG_TIMEOUT_MS = 30_000
DEFAULT_MAX_PENDING = 1000
DEFAULT_GRACEFUL_SHUTDOWN_MS = 30_000
DEFAULT_FLUSH_INTERVAL_MS = 5_000


def _positive(name: str, value: Any, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number of the unit it names; got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}; got {value}")
    return value


class Topology:
    """What to run: a pipeline over a source, with its options.

    Args:
        name: used in metric names and Redis keys (letters, digits, ``_``, ``-``).
        pipeline: the task graph; it is checked here (``PipelineError`` on a broken graph).
        source: where messages come from.
        failure_policy: what happens to a message that fails or times out
            (default ``retry(3, delay_ms=1000)``).
        msg_timeout_ms: a message not done this long after it was read fails
            (default 30 000; 0 disables timeouts).
        max_pending: at most this many source messages in flight (default 1000).
        graceful_shutdown_ms: on SIGTERM, how long in-flight messages may finish.
        dead_letter: where messages go when retries are exhausted (default: none, in
            which case they are acked with an ERROR log line and ``retry.dropped``).
        metric_targets: where metrics are flushed (see ``pytempest.metrics``).
        metric_flush_interval_ms: how often metrics are flushed to the targets.
        metric_buckets_ms: bucket bounds (ms, strictly increasing) of every timer
            histogram (``task.handle``, the end-to-end latency ...); default: the
            registry's (``pytempest.metrics.registry.DEFAULT_BUCKETS_MS``).
    """

    def __init__(
        self,
        name: str,
        pipeline: Pipeline,
        source: Source,
        *,
        failure_policy: FailurePolicy = DEFAULT_FAILURE_POLICY,
        msg_timeout_ms: int = DEFAULT_MSG_TIMEOUT_MS,
        max_pending: int = DEFAULT_MAX_PENDING,
        graceful_shutdown_ms: int = DEFAULT_GRACEFUL_SHUTDOWN_MS,
        dead_letter: DeadLetter | None = None,
        metric_targets: Sequence[MetricTarget] = (),
        metric_flush_interval_ms: int = DEFAULT_FLUSH_INTERVAL_MS,
        metric_buckets_ms: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(name, str) or not TOPOLOGY_NAME.match(name):
            raise ConfigError(
                f"topology name {name!r} must be 1-64 letters, digits, '_' or '-' "
                "(it is used in metric names and Redis keys)"
            )
        if not isinstance(pipeline, Pipeline):
            raise ConfigError(f"topology {name!r}: pipeline must be a Pipeline; got {pipeline!r}")
        if not isinstance(source, Source):
            raise ConfigError(f"topology {name!r}: source must be a Source; got {source!r}")
        if not isinstance(failure_policy, FailurePolicy):
            raise ConfigError(
                f"topology {name!r}: failure_policy must be a FailurePolicy "
                f"(e.g. FailurePolicy.retry(3, delay_ms=500)); got {failure_policy!r}"
            )
        if dead_letter is not None and not isinstance(dead_letter, DeadLetter):
            raise ConfigError(f"topology {name!r}: dead_letter must be a DeadLetter; got {dead_letter!r}")
        self.name = name
        self.pipeline = pipeline
        self.graph: Graph = pipeline.build()
        self.source = source
        self.failure_policy = failure_policy
        self.msg_timeout_ms = _positive("msg_timeout_ms", msg_timeout_ms, allow_zero=True)
        self.max_pending = _positive("max_pending", max_pending)
        self.graceful_shutdown_ms = _positive("graceful_shutdown_ms", graceful_shutdown_ms, True)
        self.dead_letter = dead_letter
        for target in metric_targets:
            if not isinstance(target, MetricTarget):
                raise ConfigError(f"topology {name!r}: metric targets must be MetricTarget; got {target!r}")
        self.metric_targets = list(metric_targets)
        self.metric_flush_interval_ms = _positive("metric_flush_interval_ms", metric_flush_interval_ms)
        self.metric_buckets_ms: tuple[float, ...] | None = None
        if metric_buckets_ms is not None:
            self.metric_buckets_ms = check_buckets(metric_buckets_ms, f"topology {name!r}: metric_buckets_ms")

    def replace(self, **changes: Any) -> Topology:
        """A copy with some options changed (checked like the constructor's)."""
        options: dict[str, Any] = {
            "failure_policy": self.failure_policy,
            "msg_timeout_ms": self.msg_timeout_ms,
            "max_pending": self.max_pending,
            "graceful_shutdown_ms": self.graceful_shutdown_ms,
            "dead_letter": self.dead_letter,
            "metric_targets": self.metric_targets,
            "metric_flush_interval_ms": self.metric_flush_interval_ms,
            "metric_buckets_ms": self.metric_buckets_ms,
        }
        name = changes.pop("name", self.name)
        pipeline = changes.pop("pipeline", self.pipeline)
        source = changes.pop("source", self.source)
        unknown = set(changes) - set(options)
        if unknown:
            raise ConfigError(f"Topology.replace(): unknown option(s) {sorted(unknown)}")
        options.update(changes)
        return Topology(name, pipeline, source, **options)

    def copy(self) -> Topology:
        """A shallow copy (shares tasks and source)."""
        return copy.copy(self)

    def __repr__(self) -> str:
        return (
            f"<Topology {self.name!r} tasks={list(self.graph.names)} "
            f"source={self.source.describe()} policy={self.failure_policy}>"
        )
