"""Test-only failpoints: the process SIGKILLs itself at a named step of a message's life.

The reliability suite (``reliability/``, scenario A3) sets::

    PYTEMPEST_FAILPOINTS="engine.before_ack@3"            # die the 3rd time the step is reached
    PYTEMPEST_FAILPOINTS_FILE=/tmp/hits.txt               # first append "<point> <pid> <hit>"

and checks that the window was hit and that nothing was lost. The points:

========================== ==================================================================
``source.after_read``      a Redis stream read returned entries; they are pending at the
                           source and not handed to the engine yet
``engine.after_dispatch``  a task batch was handed to the executor (the message is in
                           flight, its result not back)
``engine.before_ack``      the acker is about to ack ids of messages that are done
                           (their last result arrived; the ack is not sent)
``engine.after_dead_letter`` the dead letter accepted records; their messages are not acked
``source.after_dead_letter`` a pending handler's dead-letter write succeeded; the entries
                           are not acked
========================== ==================================================================

When ``PYTEMPEST_FAILPOINTS`` is unset, :data:`ARMED` is empty and every hook is one
truth test (``if failpoints.ARMED:``). Never set it in production.
"""

from __future__ import annotations

import os
import signal

ENV = "PYTEMPEST_FAILPOINTS"
FILE_ENV = "PYTEMPEST_FAILPOINTS_FILE"
POINTS = (
    "source.after_read",
    "engine.after_dispatch",
    "engine.before_ack",
    "engine.after_dead_letter",
    "source.after_dead_letter",
)


def parse(spec: str) -> dict[str, int]:
    """``"a@3,b"`` -> ``{"a": 3, "b": 1}``; unknown points are a ValueError."""
    armed: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, at = part.partition("@")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown failpoint {name!r}; known: {', '.join(POINTS)}")
        if at and (not at.isdigit() or int(at) < 1):
            raise ValueError(f"{ENV}: {part!r}: the hit number after '@' must be >= 1")
        armed[name] = int(at or 1)
    return armed


ARMED: dict[str, int] = parse(os.environ.get(ENV, ""))
"""Armed points and the hit at which each kills the process (empty: all off)."""

_hits: dict[str, int] = {}


def hit(name: str) -> None:
    """Count a pass through ``name``; SIGKILL this process at its armed hit."""
    at = ARMED.get(name)
    if at is None:
        return
    count = _hits[name] = _hits.get(name, 0) + 1
    if count < at:
        return
    path = os.environ.get(FILE_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name} {os.getpid()} {count}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
