"""Apply a :class:`~pytempest.config.loader.Config` to the topology the code declares.

The result is a new :class:`Topology` (the code's object is not changed): top-level
options replaced, the source replaced (``[source]`` with a kind) or rebuilt with some
options overridden (without a kind), the dead letter and metric targets set, and copies
of the tasks a ``[[task]]`` tunes. Nothing here does I/O: constructors only store their
options, connections are made when the engine starts.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pytempest.config import kinds
from pytempest.config.components import build
from pytempest.config.loader import Config, TaskSettings, load_config
from pytempest.errors import ConfigError
from pytempest.model.pipeline import Pipeline
from pytempest.model.policy import FailurePolicy
from pytempest.topology import Topology

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_TOPOLOGY_OPTIONS = {
    "name": "name",
    "max_pending": "max_pending",
    "msg_timeout_ms": "msg_timeout_ms",
    "graceful_shutdown_ms": "graceful_shutdown_ms",
    "metric.flush_interval_ms": "metric_flush_interval_ms",
    "metric.buckets_ms": "metric_buckets_ms",
}


@dataclass
class Configured:
    """A topology with its configuration applied.

    ``tasks`` has an entry for every task of the pipeline, with the values in effect
    (``[[task]]`` where given, else the task's own); ``warnings`` lists configurations
    that run but probably should not (``pytempest validate`` prints them).
    """

    topology: Topology
    config: Config
    tasks: dict[str, TaskSettings]
    warnings: list[str] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        """The Redis of the distributed runtime: ``redis_url``, else a Redis source's url."""
        url = self.config.get("redis_url") or source_url(self.topology.source)
        return str(url or DEFAULT_REDIS_URL)


def configure(
    topology: Topology,
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Configured:
    """:func:`load_config` then :func:`apply_config`: the code < ``path`` < env < flags."""
    return apply_config(topology, load_config(path, env=env, flags=flags))


def apply_config(topology: Topology, config: Config) -> Configured:
    """Check ``config`` against ``topology`` and return the configured topology."""
    _check_task_names(topology, config)
    dead_letter = topology.dead_letter
    if config.dead_letter is not None:
        dead_letter = _dead_letter(config, topology)
    source = topology.source
    if config.source is not None:
        # a Redis stream source's "dead_letter" pending handler writes to the topology's
        source = build(config.source, topology.source, {"dead_letter": dead_letter})
    targets = topology.metric_targets
    if config.metric_targets is not None:
        targets = [build(spec, None) for spec in config.metric_targets]
    changes: dict[str, Any] = {}
    for key, option in _TOPOLOGY_OPTIONS.items():
        if key in config.values:
            changes[option] = config.get(key)
    if "failure_policy" in config.values:
        changes["failure_policy"] = FailurePolicy.parse(config.get("failure_policy"))
    pipeline, tasks = _tune_tasks(topology, config.tasks)
    try:
        configured = topology.replace(
            source=source, dead_letter=dead_letter, metric_targets=targets, pipeline=pipeline, **changes
        )
    except ConfigError as exc:
        where = config.path or "the configuration"
        raise ConfigError(f"{where}: {exc}") from None
    return Configured(configured, config, tasks, _warnings(configured))


def source_url(source: object) -> str | None:
    """The ``url`` a source was built with (Redis sources), else None."""
    options = getattr(source, "options", None)
    url = options().get("url") if callable(options) else None
    url = url or getattr(source, "url", None)
    return url if isinstance(url, str) else None


def _check_task_names(topology: Topology, config: Config) -> None:
    names = topology.graph.names
    for name, settings in config.tasks.items():
        if name not in names:
            hint = kinds.did_you_mean(name, names)
            raise ConfigError(
                f"{settings.origin}: [[task]] name: {name!r} is not a task of topology "
                f"{topology.name!r}{hint} (tasks: {', '.join(names)})"
            )


def _dead_letter(config: Config, topology: Topology) -> Any:
    spec = config.dead_letter
    assert spec is not None
    defaults: dict[str, Any] = {}
    if kinds.is_redis(spec.kind) and "url" not in spec.options and "uri" not in spec.options:
        url = _configured_source_url(config, topology)
        if url is None:
            raise spec.error(
                None,
                f"a {spec.kind} dead letter needs url = ... (or PYTEMPEST_DEAD_LETTER_URL): "
                "the source is not a Redis source, so its url cannot be used",
            )
        defaults["url"] = url
    return build(spec, topology.dead_letter, defaults)


def _configured_source_url(config: Config, topology: Topology) -> str | None:
    """The url the configured source will have (before it is built)."""
    spec = config.source
    if spec is not None:
        for key in ("url", "uri"):
            if isinstance(spec.options.get(key), str):
                return str(spec.options[key])
        if spec.kind is not None:
            return None
    return source_url(topology.source)


def _tune_tasks(
    topology: Topology, given: Mapping[str, TaskSettings]
) -> tuple[Pipeline, dict[str, TaskSettings]]:
    """The pipeline with copies of the tuned tasks, and the settings of every task."""
    graph = topology.graph
    pipeline = Pipeline(release=graph.release)
    effective: dict[str, TaskSettings] = {}
    for task in graph.tasks:
        settings = given.get(task.name, TaskSettings(task.name))
        tuned = task
        for option in ("batch", "threaded", "concurrency"):
            value = getattr(settings, option)
            if value is not None and value != getattr(task, option):
                if tuned is task:
                    tuned = copy.copy(task)
                setattr(tuned, option, value)
        pipeline.task(tuned)
        effective[task.name] = replace(
            settings, batch=tuned.batch, threaded=tuned.threaded, concurrency=tuned.concurrency
        )
    pipeline.edges(*graph.edges())
    return pipeline, effective


def _warnings(topology: Topology) -> list[str]:
    out = []
    policy = topology.failure_policy
    if policy.kind == "retry" and topology.dead_letter is None:
        out.append(
            f"failure policy {policy} with no dead letter: a message whose retries are exhausted "
            "is acked and dropped (an ERROR log line and the retry.dropped counter); set "
            "[dead_letter] to keep such messages"
        )
    return out
