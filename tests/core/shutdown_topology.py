"""A topology for the shutdown tests, run by ``pytempest run`` in a subprocess.

Environment: ``PT_EVENTS`` (a file that gets "start <body>", "end <body>", "acked <id>"
lines), ``PT_SLEEP_S`` (how long the task sleeps), ``PT_GRACE_MS``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from pytempest import Pipeline, Topology, task
from pytempest.sources import MemorySource

EVENTS = os.environ.get("PT_EVENTS", os.devnull)


def record(line: str) -> None:
    with open(EVENTS, "a", encoding="utf-8") as f:
        f.write(line + "\n")


class RecordingSource(MemorySource):
    async def ack(self, ids: Sequence[str]) -> None:
        for i in ids:
            record(f"acked m{i}")
        await super().ack(ids)


@task("slow", threaded=True)
def slow(body: bytes) -> None:
    record(f"start {body.decode()}")
    time.sleep(float(os.environ.get("PT_SLEEP_S", "0.3")))
    record(f"end {body.decode()}")


def topology() -> Topology:
    return Topology(
        "shutdown",
        Pipeline().task(slow),
        RecordingSource([f"m{i}" for i in range(20)]),
        max_pending=4,
        graceful_shutdown_ms=int(os.environ.get("PT_GRACE_MS", "10000")),
    )
