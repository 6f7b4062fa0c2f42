"""Read ``Topology.toml`` against a strict schema, then layer the environment and flags on it.

:func:`load_config` knows nothing of the topology: it checks every key and type it can
on its own and returns a :class:`Config`. :func:`pytempest.config.apply_config` then
checks what needs the code (task names, the options of the source's class) and builds
the configured topology. Nothing here opens a connection.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytempest.config import kinds
from pytempest.config.locate import KeyPath, LineIndex, Locator, format_path
from pytempest.config.settings import BY_KEY, Setting, aliases, describe_value, mask_secrets, section
from pytempest.errors import ConfigError

TOP_TABLES = ("source", "dead_letter", "metric", "task")

OBSOLETE: Mapping[str, str] = {
    "host": "the original Tempest's topology server address; pytempest's distributed runtime "
    "talks through Redis (set redis_url instead)",
    "port": "the original Tempest's topology server port; pytempest's distributed runtime "
    "talks through Redis (set redis_url instead)",
}


@dataclass(frozen=True, slots=True)
class Value:
    """A resolved setting and where it came from (``Topology.toml:3``, ``env PYTEMPEST_X``,
    ``--flag``)."""

    value: Any
    origin: str


@dataclass
class ComponentSpec:
    """A ``[source]``, ``[dead_letter]`` or metric target table: a kind (None: keep the
    code's kind and override its options) and the options given for it."""

    family: str
    path: KeyPath
    kind: str | None
    options: dict[str, Any]
    origins: dict[str, str]
    """Options that did not come from the file (``{"url": "env PYTEMPEST_SOURCE_URL"}``)."""
    locator: Locator
    in_config_table: set[str] = field(default_factory=set)

    def error(self, key: str | None, message: str) -> ConfigError:
        """A ``ConfigError`` located at ``key`` of this table (or the table itself)."""
        if key is not None and key in self.origins:
            return ConfigError(f"{self.origins[key]}: {format_path((*self.path, key))}: {message}")
        return self.locator.error(self.key_path(key), message)

    def key_path(self, key: str | None) -> KeyPath:
        """The TOML path of ``key`` (keys read from ``[source.config]`` point there)."""
        if key is None:
            return self.path
        if key in self.in_config_table:
            return (*self.path, "config", key)
        return (*self.path, key)

    def __repr__(self) -> str:
        return mask_secrets(f"ComponentSpec({self.family} kind={self.kind!r} options={self.options!r})")


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """The ``[[task]]`` settings of one task. ``None`` means "the task's own" (the value its
    code declares); the distributed runtime reads ``workers``, ``poll_interval_ms`` and
    ``max_backoff_ms``, which the in-process runtime does not use."""

    name: str
    workers: int = 1
    batch: int | None = None
    threaded: bool | None = None
    concurrency: int | None = None
    poll_interval_ms: int = 0
    max_backoff_ms: int = 1000
    origin: str = field(default="", compare=False, repr=False)


@dataclass
class Config:
    """Everything a ``Topology.toml``, the environment and the flags set.

    ``values`` holds the scalar settings by key (``max_pending``,
    ``metric.flush_interval_ms``, ``run.log_level`` ...), only those given somewhere;
    ``tasks`` the ``[[task]]`` entries by task name.
    """

    path: Path | None = None
    values: dict[str, Value] = field(default_factory=dict)
    source: ComponentSpec | None = None
    dead_letter: ComponentSpec | None = None
    metric_targets: list[ComponentSpec] | None = None
    tasks: dict[str, TaskSettings] = field(default_factory=dict)
    locator: Locator = field(default_factory=lambda: Locator(None))

    def get(self, key: str, default: Any = None) -> Any:
        """The value of setting ``key``, or ``default`` when nothing set it."""
        found = self.values.get(key)
        return default if found is None else found.value

    def origin(self, key: str) -> str:
        """Where setting ``key`` came from (``"code"`` when nothing set it)."""
        found = self.values.get(key)
        return "code" if found is None else found.origin

    def __repr__(self) -> str:
        shown = {k: v.value for k, v in self.values.items()}
        return mask_secrets(f"Config(path={self.path}, values={shown!r}, source={self.source!r})")


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Config:
    """Read ``path`` (or ``$PYTEMPEST_CONFIG``; none: no file), then apply ``PYTEMPEST_*``
    variables from ``env`` (default ``os.environ``), then ``flags`` (setting key -> value,
    e.g. ``{"max_pending": 10}``; None values are ignored).

    Raises :class:`ConfigError` naming the file, line and key path of the first problem.
    """
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    config = Config()
    if path is None and env.get("PYTEMPEST_CONFIG"):
        path = env["PYTEMPEST_CONFIG"]
        config.values["run.config"] = Value(str(path), "env PYTEMPEST_CONFIG")
    elif path is not None:
        config.values["run.config"] = Value(str(path), "argument")
    if path is not None:
        _read_file(config, Path(path))
    _apply_env(config, env)
    _apply_flags(config, flags)
    return config


def _read_file(config: Config, path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = str(exc).rpartition("line ")[2].partition(",")[0]
        where = f"{path}:{line}" if line.isdigit() else str(path)
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    config.path = path
    config.locator = Locator(path, LineIndex(text))
    _Reader(config).read(data)


class _Reader:
    """Checks a parsed TOML document and fills a :class:`Config`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loc = config.locator
        self.spelled: dict[KeyPath, str] = {}  # canonical path -> the key as the file wrote it

    def at(self, path: KeyPath, name: str) -> KeyPath:
        """The path of canonical key ``name`` in table ``path`` as the file spells it."""
        return (*path, self.spelled.get((*path, name), name))

    def read(self, data: dict[str, Any]) -> None:
        allowed = [s.name for s in section("")] + list(TOP_TABLES)
        table = self.canonical(data, (), allowed, aliases(""))
        for key, value in table.items():
            if key in TOP_TABLES:
                continue
            self.scalar(BY_KEY[key], value, self.at((), key))
        if "source" in table:
            self.config.source = self.component("source", table["source"], ("source",))
        if "dead_letter" in table:
            self.config.dead_letter = self.component("dead letter", table["dead_letter"], ("dead_letter",))
        if "metric" in table:
            self.metric(table["metric"])
        if "task" in table:
            self.tasks(table["task"])

    def canonical(
        self, data: object, path: KeyPath, allowed: list[str], alias: Mapping[str, str]
    ) -> dict[str, Any]:
        """``data`` (must be a table) with aliases renamed; unknown keys are errors."""
        if not isinstance(data, dict):
            raise self.loc.error(path, f"expected a table; got {describe_value(data)}")
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = alias.get(key, key)
            if name not in allowed:
                if key in OBSOLETE and not path:
                    raise self.loc.error((*path, key), f"not a pytempest key: {OBSOLETE[key]}")
                hint = kinds.did_you_mean(key, allowed + list(alias))
                raise self.loc.error(
                    (*path, key), f"unknown key{hint} (keys here: {', '.join(sorted(allowed))})"
                )
            if name in out:
                other = next(k for k in data if k != key and alias.get(k, k) == name)
                raise self.loc.error((*path, key), f"given twice: as {key!r} and as {other!r}")
            out[name] = value
            self.spelled[(*path, name)] = key
        return out

    def scalar(self, setting: Setting, value: object, path: KeyPath) -> None:
        try:
            setting.check(value)
        except ConfigError as exc:
            raise self.loc.error(path, str(exc)) from None
        self.config.values[setting.key] = Value(value, self.loc.where(path))

    def component(self, family: str, data: object, path: KeyPath) -> ComponentSpec:
        if not isinstance(data, dict):
            raise self.loc.error(path, f"expected a table; got {describe_value(data)}")
        kind: str | None = None
        options: dict[str, Any] = {}
        in_config: set[str] = set()
        for key, value in data.items():
            if key in ("kind", "type"):
                if kind is not None:
                    raise self.loc.error((*path, key), "the kind is given twice (kind and type)")
                try:
                    kind = kinds.check_kind(family, value)
                except ConfigError as exc:
                    raise self.loc.error((*path, key), str(exc)) from None
            elif key == "config" and path in (("source",), ("dead_letter",)):
                # The original Tempest's [source.config] table: its keys are source options.
                if not isinstance(value, dict):
                    raise self.loc.error((*path, key), f"expected a table; got {describe_value(value)}")
                for sub, sub_value in value.items():
                    if sub in options:
                        raise self.loc.error((*path, key, sub), f"given both in [{path[0]}] and here")
                    options[sub] = sub_value
                    in_config.add(sub)
            else:
                if key in options:
                    raise self.loc.error((*path, key), f"given both here and in [{path[0]}.config]")
                options[key] = value
        return ComponentSpec(family, path, kind, options, {}, self.loc, in_config)

    def metric(self, data: object) -> None:
        allowed = [s.name for s in section("metric")]
        table = self.canonical(data, ("metric",), allowed, aliases("metric"))
        for name in ("flush_interval_ms", "buckets_ms"):
            if name in table:
                self.scalar(BY_KEY[f"metric.{name}"], table[name], self.at(("metric",), name))
        if "targets" in table:
            key = str(self.at(("metric",), "targets")[-1])
            targets = table["targets"]
            if not isinstance(targets, list):
                raise self.loc.error(
                    ("metric", key), f"expected an array of tables; got {describe_value(targets)}"
                )
            specs = []
            for i, entry in enumerate(targets):
                spec = self.component("metric target", entry, ("metric", key, i))
                if spec.kind is None:
                    raise self.loc.error(
                        ("metric", key, i), 'a metric target needs a kind (e.g. { kind = "console" })'
                    )
                specs.append(spec)
            self.config.metric_targets = specs

    def tasks(self, data: object) -> None:
        if not isinstance(data, list):
            raise self.loc.error(("task",), f"expected [[task]] tables; got {describe_value(data)}")
        allowed = [s.name for s in section("task")]
        for i, entry in enumerate(data):
            path: KeyPath = ("task", i)
            table = self.canonical(entry, path, allowed, aliases("task"))
            if "name" not in table:
                raise self.loc.error(path, "a [[task]] needs a name (the task it applies to)")
            for key, value in table.items():
                try:
                    BY_KEY[f"task.{key}"].check(value)
                except ConfigError as exc:
                    raise self.loc.error(self.at(path, key), str(exc)) from None
            name = table["name"]
            if name in self.config.tasks:
                first = self.config.tasks[name].origin
                raise self.loc.error((*path, "name"), f"task {name!r} has a [[task]] already (at {first})")
            self.config.tasks[name] = TaskSettings(**table, origin=self.loc.where((*path, "name")))


def _apply_env(config: Config, env: Mapping[str, str]) -> None:
    for setting in BY_KEY.values():
        var = setting.env
        if var is None or var == "PYTEMPEST_CONFIG" or not env.get(var):
            continue
        try:
            value = setting.from_text(env[var])
        except ConfigError as exc:
            raise ConfigError(f"environment variable {var}: {exc}") from None
        origin = f"env {var}"
        if setting.key in ("source.url", "dead_letter.url"):
            _set_url(config, setting.section, value, origin)
        else:
            config.values[setting.key] = Value(value, origin)


def _set_url(config: Config, table: str, url: str, origin: str) -> None:
    family = "source" if table == "source" else "dead letter"
    spec = getattr(config, table)
    if spec is None:
        spec = ComponentSpec(family, (table,), None, {}, {}, config.locator)
        setattr(config, table, spec)
    spec.options["url"] = url
    spec.origins["url"] = origin


def _apply_flags(config: Config, flags: Mapping[str, Any]) -> None:
    for key, value in flags.items():
        setting = BY_KEY.get(key)
        if setting is None or setting.flag is None:
            raise ConfigError(f"no command-line flag sets {key!r}")
        try:
            checked = setting.check(value)
        except ConfigError as exc:
            raise ConfigError(f"{setting.flag}: {exc}") from None
        config.values[key] = Value(checked, setting.flag)
