"""Every setting of pytempest, declared once: key, type, default, unit, doc, env var, flag.

``Topology.toml`` keys, ``PYTEMPEST_*`` environment variables, command-line flags, their
``--help`` text and ``docs/configuration.md`` all come from :data:`SETTINGS`. The options
of a source, dead letter or metric target are declared by that class's constructor
(see :mod:`pytempest.config.components`); the keys here are the ones pytempest itself
reads.

Precedence, lowest first: the code < ``Topology.toml`` < environment < command line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytempest.errors import ConfigError
from pytempest.metrics.registry import DEFAULT_BUCKETS_MS, check_buckets
from pytempest.model.policy import FailurePolicy
from pytempest.topology import (
    DEFAULT_FAILURE_POLICY,
    DEFAULT_FLUSH_INTERVAL_MS,
    DEFAULT_GRACEFUL_SHUTDOWN_MS,
    DEFAULT_MAX_PENDING,
    DEFAULT_MSG_TIMEOUT_MS,
    TOPOLOGY_NAME,
)

SECTIONS = ("", "source", "dead_letter", "metric", "task", "run")
"""Where a setting lives: top level, a TOML table, ``[[task]]``, or ``run`` (env/CLI only)."""

TYPE_NAMES: dict[type, str] = {int: "an integer", str: "a string", bool: "true or false", float: "a number"}


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting. ``key`` is its TOML path (``max_pending``, ``metric.flush_interval_ms``,
    ``task.workers``); ``run.*`` settings have no TOML key (environment and flags only)."""

    key: str
    type: type
    doc: str
    default: Any = None
    default_doc: str | None = None
    unit: str | None = None
    env: str | None = None
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    parse: Callable[[str], object] | None = None
    secret: bool = False
    validate: Callable[[Any], object] | None = None
    """Checks a value of the right type further (raises ``ConfigError``)."""
    type_doc: str | None = None
    """The type as the docs show it, when the Python type says too little (``list``)."""

    @property
    def section(self) -> str:
        """The TOML table of the key (``""`` for top level)."""
        return self.key.rpartition(".")[0]

    @property
    def name(self) -> str:
        """The key inside its table."""
        return self.key.rpartition(".")[2]

    @property
    def in_toml(self) -> bool:
        """Whether ``Topology.toml`` may set it."""
        return self.section != "run"

    def shown_default(self) -> str:
        """The default as the docs and ``--help`` show it."""
        if self.default_doc is not None:
            return self.default_doc
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, int):
            return f"{self.default:_}" if self.default >= 10_000 else str(self.default)
        return "" if self.default is None else str(self.default)

    def help(self) -> str:
        """The ``--help`` text: doc, unit, default, and the other places to set it."""
        parts = [self.doc.rstrip(".") + "."]
        extra = []
        if self.unit:
            extra.append(self.unit)
        if self.shown_default():
            extra.append(f"default {self.shown_default()}")
        if self.env:
            extra.append(f"env {self.env}")
        if self.in_toml:
            extra.append(f"Topology.toml {self.key}")
        if extra:
            parts.append(f"[{'; '.join(extra)}]")
        return " ".join(parts)

    def check(self, value: object) -> Any:
        """``value`` if it has the declared type and range, else a ``ConfigError`` message
        (without location: the caller adds where the value came from)."""
        if not _is_type(value, self.type):
            expected = TYPE_NAMES.get(self.type) or (
                f"an {self.type_doc}" if self.type_doc else self.type.__name__
            )
            if self.unit:
                expected += f" ({self.unit})"
            raise ConfigError(f"expected {expected}; got {describe_value(value, self.secret)}")
        if self.minimum is not None and isinstance(value, int) and value < self.minimum:
            raise ConfigError(f"must be >= {self.minimum}; got {value}")
        if self.choices and isinstance(value, str):
            canonical = {c.lower(): c for c in self.choices}.get(value.lower())
            if canonical is None:
                raise ConfigError(f"must be one of {', '.join(self.choices)}; got {value!r}")
            value = canonical
        if self.parse is not None and isinstance(value, str):
            self.parse(value)
        if self.validate is not None:
            self.validate(value)
        return value

    def from_text(self, text: str) -> Any:
        """Convert an environment variable's text to the declared type, then :meth:`check`."""
        value: object = text
        if self.type is int:
            try:
                value = int(text.strip().replace("_", ""))
            except ValueError:
                raise ConfigError(f"expected {TYPE_NAMES[int]}; got {text!r}") from None
        elif self.type is bool:
            lowered = text.strip().lower()
            if lowered not in _BOOLS:
                raise ConfigError(f"expected true or false (or 1/0, yes/no); got {text!r}")
            value = _BOOLS[lowered]
        return self.check(value)


_BOOLS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def _is_type(value: object, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")


def mask_secrets(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


def describe_value(value: object, secret: bool = False) -> str:
    """``value`` for an error message: its TOML type and its (masked) text."""
    if secret and isinstance(value, str):
        return "a string (hidden: it is a secret)"
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
             dict: "a table"}  # fmt: skip
    kind = next((name for t, name in kinds.items() if isinstance(value, t)), type(value).__name__)
    shown = mask_secrets(repr(value))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{kind} {shown}"


def _check_name(text: str) -> object:
    if not TOPOLOGY_NAME.match(text):
        raise ConfigError(
            f"{text!r} must be 1-64 letters, digits, '_' or '-' (it is used in metric names and Redis keys)"
        )
    return text


SETTINGS: tuple[Setting, ...] = (
    # -- top level: the topology ---------------------------------------------------------
    Setting("name", str, "Topology name: used in metric names and Redis keys.",
            default_doc="the code's", env="PYTEMPEST_NAME", flag="--name", parse=_check_name),
    Setting("max_pending", int, "At most this many source messages in flight; the source is not polled beyond it.",
            default=DEFAULT_MAX_PENDING, default_doc=f"the code's, else {DEFAULT_MAX_PENDING}", unit="messages",
            env="PYTEMPEST_MAX_PENDING", flag="--max-pending", minimum=1),
    Setting("msg_timeout_ms", int, "A source message not done this long after it was read fails (0: never).",
            default=DEFAULT_MSG_TIMEOUT_MS, default_doc=f"the code's, else {DEFAULT_MSG_TIMEOUT_MS:_}", unit="ms",
            env="PYTEMPEST_MSG_TIMEOUT_MS", flag="--msg-timeout-ms", minimum=0),
    Setting("graceful_shutdown_ms", int, "On the first SIGTERM/SIGINT, how long in-flight messages may finish.",
            default=DEFAULT_GRACEFUL_SHUTDOWN_MS, default_doc=f"the code's, else {DEFAULT_GRACEFUL_SHUTDOWN_MS:_}",
            unit="ms", env="PYTEMPEST_GRACEFUL_SHUTDOWN_MS", flag="--graceful-shutdown-ms",
            aliases=("graceful_shutdown",), minimum=0),
    Setting("failure_policy", str, 'What happens to a failed message: "none", "best_effort" or "retry(n, delay_ms=...)".',
            default_doc=f'the code\'s, else "{DEFAULT_FAILURE_POLICY}"', env="PYTEMPEST_FAILURE_POLICY",
            flag="--failure-policy", parse=FailurePolicy.parse),
    Setting("redis_url", str, "The Redis of the distributed runtime (run --processes, topology, task, status); a password in it is masked.",
            default_doc="the source's url when it is a Redis source, else redis://127.0.0.1:6379/0",
            env="PYTEMPEST_REDIS_URL", flag="--redis-url", secret=True),
    # -- [source], [dead_letter]: the kind; other keys are the class's constructor options
    Setting("source.kind", str, "Source kind; with a kind the table replaces the code's source, without one its keys override the code's source options.",
            default_doc="the code's source"),
    Setting("source.url", str, "Redis URL of a Redis source (keep passwords out of files: set it in the environment).",
            env="PYTEMPEST_SOURCE_URL", secret=True),
    Setting("dead_letter.kind", str, "Dead letter kind; with a kind the table replaces the code's dead letter.",
            default_doc="the code's dead letter (none by default)"),
    Setting("dead_letter.url", str, "Redis URL of a Redis dead letter.",
            default_doc="the source's url when the source is a Redis one", env="PYTEMPEST_DEAD_LETTER_URL", secret=True),
    # -- [metric] ------------------------------------------------------------------------
    Setting("metric.flush_interval_ms", int, "How often metrics are flushed to the targets.",
            default=DEFAULT_FLUSH_INTERVAL_MS, default_doc=f"the code's, else {DEFAULT_FLUSH_INTERVAL_MS:_}", unit="ms",
            env="PYTEMPEST_METRIC_FLUSH_INTERVAL_MS", flag="--metric-flush-interval-ms",
            aliases=("flush_interval",), minimum=1),
    Setting("metric.buckets_ms", list, "Bucket bounds of every timer histogram (task.handle, end-to-end latency ...), strictly increasing.",
            default_doc="the code's, else " + str(list(DEFAULT_BUCKETS_MS)).replace(".0,", ",").replace(".0]", "]"),
            unit="ms", type_doc="array of numbers", validate=lambda v: check_buckets(v, "buckets")),
    Setting("metric.targets", list, "Metric targets, each a table with a kind and that target's options; replaces the code's targets.",
            default_doc="the code's targets", aliases=("target",)),
    # -- [[task]] ------------------------------------------------------------------------
    Setting("task.name", str, "The task these settings apply to (must be a task of the pipeline)."),
    Setting("task.workers", int, "Distributed runtime: worker processes for this task.", default=1, minimum=1),
    Setting("task.batch", int, "At most this many task messages per worker call (and per read in the distributed runtime).",
            default_doc="the task's own (Task.batch, 1000)", unit="messages", aliases=("poll_count",), minimum=1),
    Setting("task.threaded", bool, "Run a sync handle() in a thread pool so blocking I/O does not stall the others.",
            default_doc="the task's own (Task.threaded, false)"),
    Setting("task.concurrency", int, "At most this many async handle() calls of the task at once.",
            default_doc="the task's own (Task.concurrency, 64)", minimum=1),
    Setting("task.poll_interval_ms", int, "Distributed runtime: wait between reads while messages keep coming.",
            default=0, unit="ms", aliases=("poll_interval",), minimum=0),
    Setting("task.max_backoff_ms", int, "Distributed runtime: longest wait between reads when the task's stream is empty.",
            default=1000, unit="ms", aliases=("max_backoff",), minimum=0),
    # -- run: this process only (environment and command line) -----------------------------
    Setting("run.config", str, "The Topology.toml to read.", default_doc="none", env="PYTEMPEST_CONFIG", flag="--config"),
    Setting("run.log_level", str, "Log level.", default="INFO", env="PYTEMPEST_LOG_LEVEL", flag="--log-level",
            choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Setting("run.log_format", str, "Log line format.", default="text", env="PYTEMPEST_LOG_FORMAT", flag="--log-format",
            choices=("text", "json")),
)  # fmt: skip

BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


def section(name: str) -> list[Setting]:
    """The settings of one section (``""`` is the top level)."""
    return [s for s in SETTINGS if s.section == name]


def with_flags() -> list[Setting]:
    """Settings a command-line flag can set (in declaration order)."""
    return [s for s in SETTINGS if s.flag]


def aliases(section_name: str) -> dict[str, str]:
    """Original Tempest key names of a section mapped to ours."""
    return {alias: s.name for s in section(section_name) for alias in s.aliases}
