"""A3: the process SIGKILLs itself at each step of a message's life (``PYTEMPEST_FAILPOINTS``).

For each failpoint a fresh set of keys: produce, run ``pytempest run`` armed at that point,
check it died by SIGKILL and wrote the point to the failpoint file (the window was hit),
measure what was unacked at the source at that moment (the window), start it again
unarmed until idle, and check that nothing was lost and that what was done twice (sink
writes, dead-letter records) stays within the window.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

from ..lab import Check, Lab, Result
from .common import at_most, check, equal, pending_of, result


@dataclass(frozen=True)
class Point:
    name: str
    at: int
    poison: bool = False
    """A poison message (retry(0) and a dead letter) so the dead-letter step is reached."""


POINTS = (
    Point("source.after_read", 3),
    Point("engine.after_dispatch", 120),
    Point("engine.before_ack", 3),
    Point("engine.after_dead_letter", 1, poison=True),
)


def run_failpoints(lab: Lab, quick: bool) -> Result:
    began = time.monotonic()
    n = 400 if quick else 4000
    checks: list[Check] = []
    total = None
    for i, point in enumerate(POINTS):
        sub = Lab(lab.tmp / f"fp{i}", lab.main_url, f"{lab.prefix}-fp{i}")
        try:
            point_checks, report = _one(sub, point, n)
        finally:
            sub.close()
        checks.extend(point_checks)
        if total is None:
            total = report
        else:
            for name in ("produced", "completed", "dead_lettered", "stuck", "lost", "dup_sink", "dup_task",
                         "dup_dead_letter"):  # fmt: skip
                setattr(total, name, getattr(total, name) + getattr(report, name))
    assert total is not None
    return result("A3", "SIGKILL at each step of a message's life", total, checks, began)


def _one(lab: Lab, point: Point, n: int) -> tuple[list[Check], object]:
    poison = 5
    producer = lab.producer(acts={poison: "raise"} if point.poison else None)
    producer.burst(n)
    hits = lab.tmp / "failpoints.txt"
    env = {"PTR_ACK": "batch(50, ack_interval_ms=20)", "PTR_MAX_PENDING": "50", "PTR_READ_COUNT": "50"}
    if point.poison:
        env |= {"PTR_POLICY": "retry(0)", "PTR_DLQ_KEY": lab.dlq_key}
    armed = lab.run(
        PYTEMPEST_FAILPOINTS=f"{point.name}@{point.at}", PYTEMPEST_FAILPOINTS_FILE=str(hits), **env
    )
    code = armed.wait(120)
    lines = hits.read_text().split() if hits.exists() else []
    client = lab.source_client()
    try:
        window = len(pending_of(client, lab.source_key, lab.group))
    finally:
        client.close()
    dead_before = lab.dead_letter_count()
    again = lab.run("--until-idle", **env)
    code_again = again.wait(180)
    report = lab.check(producer)
    label = point.name
    checks: list[Check] = [
        equal(f"{label}: killed by its failpoint", code, -signal.SIGKILL),
        check(
            f"{label}: the window was hit",
            lines[:1] == [point.name] and lines[1:2] == [str(armed.pid)],
            " ".join(lines),
        ),
        equal(f"{label}: the restart's exit code", code_again, 0),
        check(f"{label}: every message acked at the source", lab.drained(n), lab.group_info()),
        equal(f"{label}: lost", report.lost, 0),
        equal(f"{label}: completed", report.completed, n - (1 if point.poison else 0)),
        at_most(
            f"{label}: completions duplicated (window: {window} unacked at the kill)", report.dup_sink, window
        ),
        at_most(f"{label}: completions duplicated <= max_pending", report.dup_sink, 50),
    ]
    if point.poison:
        checks.append(equal(f"{label}: dead-lettered before the kill", dead_before, 1))
        checks.append(at_most(f"{label}: dead-letter records duplicated", report.dup_dead_letter, 1))
        checks.append(equal(f"{label}: dead-lettered messages", report.dead_lettered, 1))
    return checks, report
