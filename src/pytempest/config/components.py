"""Build a source, dead letter or metric target from a config table.

The options of a part are declared by its class's constructor: every keyword parameter
is a TOML key of the same name, with the type of its annotation. So unknown keys are
found with :func:`inspect.signature` (with a "did you mean"), simple types are checked
against the annotations (int, float, str, bool, arrays, tables), and values whose type
has a ``parse(text)`` classmethod (``AckPolicy``) are parsed from strings. Anything else
goes to the constructor, whose own ``ConfigError`` is reported with the file, line and
key path.

Two class-level conventions let the config reach a part:

* ``config_aliases: ClassVar[dict[str, str]]`` maps the original Tempest's key names to
  the constructor's (``{"uri": "url"}``);
* ``options() -> dict[str, Any]`` returns the keyword arguments the instance was built
  with, so a ``[source]`` table without a kind can override some of them and rebuild the
  code's source (``type(s)(**{**s.options(), **overrides})``).
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import os
import types
import typing
from typing import Any

from pytempest.config import kinds
from pytempest.config.loader import ComponentSpec
from pytempest.config.settings import describe_value, mask_secrets
from pytempest.errors import ConfigError
from pytempest.model.policy import AckPolicy, FailurePolicy

SECRET_WORDS = ("password", "secret", "token", "url", "uri")

_HINTS: dict[type, str] = {
    AckPolicy: 'an ack policy: "individual", "none" or "batch(n, ack_interval_ms=...)"',
    FailurePolicy: 'a failure policy: "none", "best_effort" or "retry(n, delay_ms=...)"',
}
_SIMPLE: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_LISTS = (list, tuple, set, frozenset, cabc.Sequence, cabc.Iterable, cabc.Collection, cabc.MutableSequence)
_DICTS = (dict, cabc.Mapping, cabc.MutableMapping)


def build(spec: ComponentSpec, code_part: object | None, defaults: dict[str, Any] | None = None) -> Any:
    """The part ``spec`` describes.

    With a kind: a new instance of that kind's class. Without: the class of ``code_part``
    rebuilt from ``code_part.options()`` with the table's keys on top. ``defaults`` fill
    constructor parameters neither gives (e.g. a Redis dead letter's ``url``).
    """
    if spec.kind is not None:
        try:
            cls = kinds.load_class(spec.family, spec.kind)
        except ConfigError as exc:
            raise spec.error("kind", str(exc)) from None
        base: dict[str, Any] = {}
    else:
        if code_part is None:
            raise spec.error(None, f"the code has no {spec.family} to override: add kind = ... to choose one")
        cls = type(code_part)
        options = getattr(code_part, "options", None)
        if not callable(options):
            raise spec.error(
                None,
                f"{cls.__name__} cannot take options from a config file (it has no options() "
                f"method): add kind = ... to replace the code's {spec.family}",
            )
        base = dict(options())
    label = f"{spec.kind or kinds.kind_of(spec.family, code_part) or cls.__name__} {spec.family}"
    params = _parameters(cls)
    given = _canonical(spec, cls, params, label)
    hints = _type_hints(cls)
    converted = {key: coerce(value, hints.get(key), spec, key) for key, value in given.items()}
    kwargs = {**{k: v for k, v in (defaults or {}).items() if k in params}, **base, **converted}
    missing = [
        name for name, p in params.items() if p.default is inspect.Parameter.empty and name not in kwargs
    ]
    if missing:
        needed = ", ".join(n for n, p in params.items() if p.default is inspect.Parameter.empty)
        raise spec.error(None, f"missing key {missing[0]!r}: a {label} needs {needed}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        text = mask_secrets(str(exc))
        raise spec.error(_mentioned(text, given, spec), text) from None
    except (TypeError, ValueError) as exc:
        text = mask_secrets(str(exc))
        raise spec.error(
            _mentioned(text, given, spec), f"{cls.__name__} rejected these options: {text}"
        ) from None


def _mentioned(message: str, given: dict[str, Any], spec: ComponentSpec) -> str | None:
    """The given key a constructor's error message talks about (to point at its line)."""
    found: list[tuple[int, str]] = []
    for name in given:
        spelled = next((k for k in spec.options if k == name), None) or name
        for form in (name, name.replace("_", " "), name.removesuffix("s").replace("_", " ")):
            if form and form in message:
                found.append((len(form), spelled))
    if not found:
        return None
    key = max(found)[1]
    return key if key in spec.options else None


def option_names(cls: type) -> list[str]:
    """The TOML keys ``cls`` takes (its constructor's keyword parameters)."""
    return list(_parameters(cls))


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return {}
    kinds_ = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: p for name, p in signature.parameters.items() if p.kind in kinds_}


def _accepts_any_key(cls: type) -> bool:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


def _canonical(
    spec: ComponentSpec, cls: type, params: dict[str, inspect.Parameter], label: str
) -> dict[str, Any]:
    """The table's keys renamed by ``cls.config_aliases``; unknown keys are errors."""
    alias: dict[str, str] = dict(getattr(cls, "config_aliases", {}) or {})
    out: dict[str, Any] = {}
    came_from: dict[str, str] = {}
    open_ended = _accepts_any_key(cls)
    for key, value in spec.options.items():
        name = alias.get(key, key)
        if name not in params and not open_ended:
            hint = kinds.did_you_mean(key, list(params) + list(alias))
            known = ", ".join(params) or "none"
            raise spec.error(key, f"unknown key for a {label}{hint} (its keys: {known})")
        if name in out:
            previous = came_from[name]
            if previous in spec.origins and key not in spec.origins:
                continue  # the environment wins over the file
            if key not in spec.origins or previous in spec.origins:
                raise spec.error(key, f"given twice: as {key!r} and as {previous!r}")
        out[name] = value
        came_from[name] = key
    return out


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except Exception:  # unresolvable annotations: leave the checks to the constructor
        return {}


def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_WORDS)


def coerce(value: Any, hint: Any, spec: ComponentSpec, key: str) -> Any:
    """``value`` checked (and parsed where the type says how) against ``hint``."""
    if hint is None or hint is Any:
        return value
    members = typing.get_args(hint) if _is_union(hint) else (hint,)
    checkable = True
    for member in members:
        if member is type(None):
            continue
        ok, result = _try(value, member, spec, key)
        if ok:
            return result
        if result is _UNKNOWN:
            checkable = False
    if not checkable:
        return value  # a type we cannot check here: the constructor will
    expected = " or ".join(dict.fromkeys(_describe(m) for m in members if m is not type(None)))
    raise spec.error(key, f"expected {expected}; got {describe_value(value, _is_secret(key))}")


_UNKNOWN = object()


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _try(value: Any, member: Any, spec: ComponentSpec, key: str) -> tuple[bool, Any]:
    """(True, converted) when ``value`` fits ``member``; (False, _UNKNOWN) when it cannot be told."""
    origin = typing.get_origin(member) or member
    if origin is typing.Literal:
        return value in typing.get_args(member), value
    if member in _SIMPLE:
        if member is float:
            return isinstance(value, int | float) and not isinstance(value, bool), value
        if member is int:
            return isinstance(value, int) and not isinstance(value, bool), value
        return isinstance(value, member), value
    if member is bytes:
        return isinstance(value, str), value.encode() if isinstance(value, str) else value
    if origin is os.PathLike:
        return isinstance(value, str), value
    if origin in _LISTS:
        if not isinstance(value, list):
            return False, None
        args = typing.get_args(member)
        if len(args) == 1:
            value = [coerce(item, args[0], spec, key) for item in value]
        return True, tuple(value) if origin is tuple else value
    if origin in _DICTS:
        return isinstance(value, dict), value
    if isinstance(member, type):
        return _try_class(value, member, spec, key)
    return False, _UNKNOWN


def _try_class(value: Any, cls: type, spec: ComponentSpec, key: str) -> tuple[bool, Any]:
    if isinstance(value, cls):
        return True, value
    if cls is AckPolicy and isinstance(value, dict) and "type" in value:
        value = _original_ack_policy(value, spec, key)
    parse = getattr(cls, "parse", None)
    if isinstance(value, str) and callable(parse):
        try:
            return True, parse(value)
        except ConfigError as exc:
            raise spec.error(key, str(exc)) from None
    from_config = getattr(cls, "from_config", None)
    if isinstance(value, dict) and callable(from_config):
        try:
            return True, from_config(value)
        except ConfigError as exc:
            raise spec.error(key, str(exc)) from None
    if callable(parse) or callable(from_config):
        return False, None
    return False, _UNKNOWN


def _original_ack_policy(value: dict[str, Any], spec: ComponentSpec, key: str) -> str:
    """The original Tempest's ``{ type = "Batch", value = 10 }`` as our policy text."""
    kind = str(value.get("type", "")).lower()
    if kind == "batch" and isinstance(value.get("value"), int):
        return f"batch({value['value']})"
    if kind in ("individual", "none") and set(value) == {"type"}:
        return kind
    raise spec.error(key, f'unknown ack policy table {value!r}; write e.g. "batch(100, ack_interval_ms=500)"')


def _describe(hint: Any) -> str:
    if _is_union(hint):
        return " or ".join(dict.fromkeys(_describe(m) for m in typing.get_args(hint) if m is not type(None)))
    origin = typing.get_origin(hint) or hint
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    if hint is bytes or origin is os.PathLike:
        return "a string"
    if origin in _LISTS:
        return "an array"
    if origin in _DICTS:
        return "a table"
    if hint in _HINTS:
        return _HINTS[hint]
    return getattr(hint, "__name__", str(hint))
