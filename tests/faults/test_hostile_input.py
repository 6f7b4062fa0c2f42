"""E1, E2: oversized and malformed payloads, through the codecs, in real processes."""

from __future__ import annotations

from reliability.lab import Lab
from reliability.scenarios import codec

from .conftest import passed


def test_e1_oversized_messages_are_refused_before_decoding(lab: Lab) -> None:
    passed(codec.e1_oversized(lab, True))


def test_e2_malformed_json_and_msgpack_are_dead_lettered_once(lab: Lab) -> None:
    passed(codec.e2_malformed(lab, True))
