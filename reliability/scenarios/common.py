"""What the scenarios share: pass-criteria helpers and reading Redis records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from pytempest.deadletters.base import DeadLetterRecord
from pytempest.deadletters.redis import record_from_fields

from ..checker import Report
from ..lab import Check, Lab, Result


def check(name: str, ok: bool, detail: object = "") -> Check:
    return Check(name, bool(ok), str(detail))


def at_most(name: str, value: float | None, limit: float, unit: str = "") -> Check:
    """``value <= limit`` (a missing value fails)."""
    ok = value is not None and value <= limit
    return Check(name, ok, f"{value}{unit} (limit {limit}{unit})")


def equal(name: str, value: object, expected: object) -> Check:
    return Check(name, value == expected, f"{value!r} (expected {expected!r})")


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yields a list that gets the elapsed seconds when the block ends."""
    out: list[float] = []
    start = time.monotonic()
    try:
        yield out
    finally:
        out.append(time.monotonic() - start)


def result(sid: str, title: str, report: Report, checks: list[Check], began: float, *notes: str) -> Result:
    return Result(sid, title, report, checks, time.monotonic() - began, list(notes))


def dead_letter_records(lab: Lab) -> list[tuple[int, DeadLetterRecord]]:
    """(entry time ms, record) of every dead letter of the lab."""
    out = []
    for raw_id, fields in lab.main.xrange(lab.dlq_key):
        out.append((int(raw_id.split(b"-")[0]), record_from_fields(fields)))
    return out


def sink_times(lab: Lab) -> dict[int, list[int]]:
    """seq -> entry times (ms) in the sink stream."""
    out: dict[int, list[int]] = {}
    for raw_id, fields in lab.main.xrange(lab.sink_key):
        out.setdefault(int(fields[b"seq"]), []).append(int(raw_id.split(b"-")[0]))
    return out


def count_lines(text: str, *needles: str) -> int:
    return sum(1 for line in text.splitlines() if any(n in line for n in needles))


def pending_of(client: redis.Redis, key: str, group: str, consumer: str | None = None) -> list[Any]:
    """Every pending entry of ``group`` (of one ``consumer``) as XPENDING rows."""
    if not client.exists(key):
        return []
    rows: list[Any] = []
    start = "-"
    while True:
        page = client.xpending_range(key, group, start, "+", 1000, consumer)
        rows.extend(page)
        if len(page) < 1000:
            return rows
        start = "(" + page[-1]["message_id"].decode()
