"""The one place that maps config kind strings to classes.

Classes are named by dotted path and imported only when a kind is used, so reading a
``Topology.toml`` does not import redis-py or prometheus-client unless it asks for them.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping

from pytempest.errors import ConfigError

SOURCES: Mapping[str, str] = {
    "memory": "pytempest.sources.memory:MemorySource",
    "file": "pytempest.sources.file:FileSource",
    "redis_stream": "pytempest.sources.redis_stream:RedisStreamSource",
    "redis_list": "pytempest.sources.redis_list:RedisListSource",
    "redis_sorted_set": "pytempest.sources.redis_sorted_set:RedisSortedSetSource",
}

DEAD_LETTERS: Mapping[str, str] = {
    "memory": "pytempest.deadletters.memory:MemoryDeadLetter",
    "file": "pytempest.deadletters.file:FileDeadLetter",
    "redis_stream": "pytempest.deadletters.redis:RedisStreamDeadLetter",
    "redis_list": "pytempest.deadletters.redis:RedisListDeadLetter",
}

METRIC_TARGETS: Mapping[str, str] = {
    "console": "pytempest.metrics.console:ConsoleTarget",
    "log": "pytempest.metrics.log:LogTarget",
    "file": "pytempest.metrics.file:FileTarget",
    "statsd": "pytempest.metrics.statsd:StatsdTarget",
    "prometheus": "pytempest.metrics.prometheus:PrometheusTarget",
}

FAMILIES: Mapping[str, Mapping[str, str]] = {
    "source": SOURCES,
    "dead letter": DEAD_LETTERS,
    "metric target": METRIC_TARGETS,
}
"""Each family of pluggable parts, by the name error messages use."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_kind(family: str, kind: object) -> str:
    """``kind`` if ``family`` has it, else a ``ConfigError`` listing the kinds."""
    kinds = FAMILIES[family]
    if not isinstance(kind, str):
        raise ConfigError(f"kind must be a string naming a {family}; got {kind!r}")
    if kind not in kinds:
        raise ConfigError(
            f"unknown {family} kind {kind!r}{did_you_mean(kind, kinds)} (kinds: {', '.join(kinds)})"
        )
    return kind


def load_class(family: str, kind: str) -> type:
    """Import and return the class of ``kind`` (a ``ConfigError`` when it cannot be imported)."""
    path = FAMILIES[family][check_kind(family, kind)]
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{family} kind {kind!r} is not available in this installation "
            f"({module_name} cannot be imported: {exc})"
        ) from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise ConfigError(f"{family} kind {kind!r}: {module_name} has no class {attr}")
    return cls


def kind_of(family: str, obj: object) -> str | None:
    """The kind string of ``obj``'s class in ``family``, or None for a class not listed."""
    path = f"{type(obj).__module__}:{type(obj).__qualname__}"
    return next((kind for kind, p in FAMILIES[family].items() if p == path), None)


def is_redis(kind: str | None) -> bool:
    """Whether ``kind`` names a Redis-backed part (its ``url`` may default from the source)."""
    return kind is not None and kind.startswith("redis_")
