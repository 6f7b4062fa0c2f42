"""The codecs: size and depth limits, the errors they raise, what those errors show."""

from __future__ import annotations

import msgpack
import pytest

from pytempest.codecs import JsonCodec, MsgpackCodec, PayloadError, codec, depth_of, prefix
from pytempest.errors import ConfigError, TaskError


def refuse(c: object, body: bytes) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        c.decode(body)  # type: ignore[attr-defined]
    return info.value


def test_values_round_trip_within_the_limits() -> None:
    value = {"id": 7, "items": [{"sku": "a", "n": 2}], "note": None}
    for c in (JsonCodec(), MsgpackCodec()):
        assert c.decode(c.encode(value)) == value
    assert MsgpackCodec().decode(MsgpackCodec().encode({"b": b"\x00\xff"})) == {"b": b"\x00\xff"}


def test_too_large_is_refused_before_decoding_and_shows_only_a_prefix() -> None:
    body = b'{"a": "' + b"S" * 100_000 + b'"}'
    error = refuse(JsonCodec(max_bytes=1000), body)
    assert error.reason == "too_large" and isinstance(error, TaskError)
    assert "100009 bytes is over max_bytes=1000" in str(error)
    assert "S" * 40 not in str(error) and len(str(error)) < 200


@pytest.mark.parametrize(
    "body",
    [b'{"a": ', b"\xff\xfe", b"NaN", b'{"a": Infinity}', b"[1] [2]", b"[" * 50_000, b"[[[[[[1]]]]]]"],
)
def test_malformed_or_too_deep_json_is_a_decode_error(body: bytes) -> None:
    error = refuse(JsonCodec(max_depth=5), body)
    assert error.reason == "decode_error" and "does not decode" in str(error)
    assert len(str(error)) < 300


@pytest.mark.parametrize(
    "body",
    [b"\xc1", b"\x91" * 5000, msgpack.packb({1: 2}), msgpack.packb(msgpack.ExtType(1, b"x")), b"\x92\x01",
     msgpack.packb(1) + b"x", b"\xdd\xff\xff\xff\xff", msgpack.packb([[[[[[1]]]]]])],
)  # fmt: skip
def test_malformed_or_too_deep_msgpack_is_a_decode_error(body: bytes) -> None:
    error = refuse(MsgpackCodec(max_depth=5), body)
    assert error.reason == "decode_error" and "does not decode" in str(error)


def test_depth_is_measured_without_recursion() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(100_000):
        child: list[object] = []
        node.append(child)
        node = child
    assert depth_of(deep, 10) == 11  # stops counting past the limit
    assert depth_of({"a": [1, {"b": 2}]}, 10) == 3 and depth_of(5, 10) == 0


def test_limits_and_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_bytes must be a whole number >= 1"):
        JsonCodec(max_bytes=0)
    with pytest.raises(ConfigError, match="max_depth"):
        MsgpackCodec(max_depth=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="json, msgpack"):
        codec("yaml")
    assert codec("msgpack", max_bytes=10).max_bytes == 10
    assert prefix(b"abc") == "b'abc'" and prefix(b"x" * 40).endswith("...")
