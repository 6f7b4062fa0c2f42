"""Word count over a bundled text, with no server: a file source and two tasks in process.

    pytempest run examples/wordcount.py:topology --until-idle

Each line of ``data/tempest.txt`` is a source message. ``split`` emits its words,
``count`` counts them. A line is acked (its offset checkpointed next to a copy of the
text in a temporary folder) only once every word of it was counted.
"""

from __future__ import annotations

import collections
import shutil
import tempfile
import threading
from pathlib import Path

from pytempest import FailurePolicy, Pipeline, Task, Topology, task
from pytempest.sources import FileSource

TEXT = Path(__file__).parent / "data" / "tempest.txt"
COUNTS: collections.Counter[bytes] = collections.Counter()
_lock = threading.Lock()


class Split(Task):
    """Lower-cases a line and emits its words."""

    name = "split"

    def handle(self, body: bytes) -> list[bytes]:
        words = [w.strip(b".,;:!?'\"()-") for w in body.lower().split()]
        return [w for w in words if w]


@task("count")
def count(word: bytes) -> None:
    """Counts one word."""
    with _lock:
        COUNTS[word] += 1


def topology() -> Topology:
    """A fresh copy of the text in a temporary folder, so every run starts at line one."""
    work = Path(tempfile.mkdtemp(prefix="pytempest-wordcount-"))
    shutil.copy(TEXT, work / "tempest.txt")
    pipeline = Pipeline().task(Split()).task(count).edge("split", "count")
    return Topology(
        "wordcount",
        pipeline,
        source=FileSource(work / "tempest.txt"),
        failure_policy=FailurePolicy.retry(3, delay_ms=100),
        msg_timeout_ms=5_000,
    )


def top_words(n: int = 10) -> list[tuple[bytes, int]]:
    """The most frequent words counted so far."""
    return COUNTS.most_common(n)
