"""Decode message bodies safely: JSON and msgpack with a size limit and a depth limit.

Bodies are bytes (DESIGN.md section 1); a codec is a helper a task calls, never required::

    from pytempest.codecs import JsonCodec

    orders = JsonCodec(max_bytes=1 << 20, max_depth=32)

    @task("parse")
    def parse(body: bytes) -> list[bytes]:
        order = orders.decode(body)  # PayloadError: dead-lettered at once, never retried
        return [orders.encode({"id": order["id"], "total": order["total"]})]

What a codec refuses, it refuses with :class:`~pytempest.errors.PayloadError`:

* ``too_large``: the body is longer than ``max_bytes``. It is checked before decoding, so
  a huge body never becomes a huge object tree.
* ``decode_error``: the body is not valid JSON / msgpack (for JSON also ``NaN`` and
  ``Infinity``, which JSON does not have; for msgpack extension types and non-string
  map keys), or it decodes to containers nested deeper than ``max_depth``.

The error names the size and the first :data:`PREFIX_BYTES` bytes of the body, escaped
(``b'{"id": 1, "items": [\\x00...'``), never the whole body: log lines and dead-letter
records stay small and do not carry a hostile payload. The engine does not retry a
``PayloadError`` (retrying cannot fix the bytes): the source message is dead-lettered
after one attempt with the error's reason, whatever the failure policy's retry count
(see ``docs/guarantees.md``). Nothing here uses pickle, marshal or YAML: data never
becomes code.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import msgpack

from pytempest.errors import ConfigError, PayloadError

__all__ = ["PREFIX_BYTES", "Codec", "JsonCodec", "MsgpackCodec", "PayloadError", "codec", "prefix"]

PREFIX_BYTES = 32
"""How many bytes of a refused body its error shows."""

DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_MAX_DEPTH = 32


def prefix(body: bytes, limit: int = PREFIX_BYTES) -> str:
    """The first ``limit`` bytes of ``body`` as an escaped literal, ``...`` when cut."""
    head = repr(bytes(body[:limit]))
    return head + "..." if len(body) > limit else head


def depth_of(value: Any, limit: int) -> int:
    """How deeply lists and dicts nest in ``value`` (a scalar is 0), counting no further
    than ``limit + 1``; iterative, so a deep value cannot exhaust the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        d += 1
        if d > deepest:
            deepest = d
            if d > limit:
                return d
        stack.extend((c, d) for c in children if isinstance(c, dict | list | tuple))
    return deepest


class Codec:
    """Base of the codecs: the limits, the checks and the error texts.

    Args:
        max_bytes: longer bodies are refused before decoding (``too_large``).
        max_depth: decoded values nested deeper are refused (``decode_error``).
    """

    name: ClassVar[str] = "codec"

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        for key, value in (("max_bytes", max_bytes), ("max_depth", max_depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{self.name} codec: {key} must be a whole number >= 1; got {value!r}")
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    def decode(self, body: bytes) -> Any:
        """The value in ``body``; :class:`PayloadError` when it is refused."""
        size = len(body)
        if size > self.max_bytes:
            raise PayloadError(
                f"{self.name} payload of {size} bytes is over max_bytes={self.max_bytes}; "
                f"not decoded; it starts with {prefix(body)}",
                "too_large",
            )
        try:
            value = self._decode(body)
        except RecursionError:
            raise self._refused(body, "it is nested too deeply to decode") from None
        except Exception as exc:
            detail = _short(str(exc))
            raise self._refused(
                body, f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
            ) from None
        depth = depth_of(value, self.max_depth)
        if depth > self.max_depth:
            raise self._refused(body, f"it nests deeper than max_depth={self.max_depth}")
        return value

    def encode(self, value: Any) -> bytes:
        """``value`` as bytes of this codec."""
        raise NotImplementedError

    def _decode(self, body: bytes) -> Any:
        raise NotImplementedError

    def _refused(self, body: bytes, why: str) -> PayloadError:
        return PayloadError(
            f"{self.name} payload of {len(body)} bytes does not decode: {why}; it starts with {prefix(body)}",
            "decode_error",
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_bytes={self.max_bytes}, max_depth={self.max_depth})"


class JsonCodec(Codec):
    """UTF-8 JSON (RFC 8259: no ``NaN``/``Infinity``)."""

    name = "json"

    def _decode(self, body: bytes) -> Any:
        return json.loads(body, parse_constant=_no_constant)

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


class MsgpackCodec(Codec):
    """msgpack: strings as ``str``, binary as ``bytes``, map keys strings or bytes, no
    extension types."""

    name = "msgpack"

    def _decode(self, body: bytes) -> Any:
        return msgpack.unpackb(body, raw=False, strict_map_key=True, ext_hook=_no_ext)

    def encode(self, value: Any) -> bytes:
        out: bytes = msgpack.packb(value, use_bin_type=True)
        return out


def codec(name: str, **limits: int) -> Codec:
    """The codec called ``name`` (``json`` or ``msgpack``) with ``limits``."""
    kinds: dict[str, type[Codec]] = {"json": JsonCodec, "msgpack": MsgpackCodec}
    if name not in kinds:
        raise ConfigError(f"codec must be one of {', '.join(kinds)}; got {name!r}")
    return kinds[name](**limits)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
