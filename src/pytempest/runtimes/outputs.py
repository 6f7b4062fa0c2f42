"""Task outputs and failures: checking what ``handle`` returned, describing what it raised.

Shared by every runtime (inline, threaded, async, cohort, distributed workers) so that a
task behaves the same wherever it runs.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from typing import Any

from pytempest.engine.executor import TaskFailure
from pytempest.errors import PayloadError, TaskError
from pytempest.model.task import Task

TRACEBACK_LIMIT = 8000


def failure_of(exc: BaseException) -> TaskFailure:
    """Describe an exception raised by a task."""
    text = "".join(traceback.format_exception(exc))
    if len(text) > TRACEBACK_LIMIT:
        text = "..." + text[-TRACEBACK_LIMIT:]
    reason = exc.reason if isinstance(exc, PayloadError) else ""
    return TaskFailure(type(exc).__name__, str(exc), text, isinstance(exc, TaskError), reason)


def _bad_output(task: Task, value: object) -> TypeError:
    return TypeError(
        f"task {task.name!r} returned {type(value).__name__} {_short(value)}; handle() must "
        "return None or an iterable of bytes or str (e.g. [body])"
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def normalize_outputs(task: Task, outputs: list[Any]) -> list[bytes]:
    """Encode ``str`` outputs as UTF-8; anything but bytes-like or str is a TypeError."""
    out: list[bytes] = []
    for o in outputs:
        if type(o) is bytes:
            out.append(o)
        elif isinstance(o, str):
            out.append(o.encode("utf-8"))
        elif isinstance(o, bytes | bytearray | memoryview):
            out.append(bytes(o))
        else:
            raise TypeError(
                f"task {task.name!r} emitted {type(o).__name__} {_short(o)}; every output "
                "must be bytes or str"
            )
    return out


def collect(task: Task, result: object, outputs: list[Any]) -> None:
    """Append what one ``handle`` call returned to ``outputs`` (no per-item checks yet)."""
    if result is None:
        return
    if type(result) is list:
        outputs.extend(result)
    elif isinstance(result, bytes | str | bytearray | memoryview | dict) or not isinstance(result, Iterable):
        raise _bad_output(task, result)
    else:
        outputs.extend(result)


_LISTS = frozenset({list})
_BYTES = frozenset({bytes})


def assemble_outputs(task: Task, results: list[Any]) -> list[bytes]:
    """The outputs of some ``handle`` calls as one new, checked list of bytes.

    This runs for every task message batch, so the common shapes (nothing, lists of
    bytes) take paths that stay in C; anything else goes through :func:`collect` and
    :func:`normalize_outputs`, which raise the errors that name the task.
    """
    nones = results.count(None)
    if nones == len(results):
        return []
    present = [r for r in results if r is not None] if nones else results
    outputs: list[Any]
    if len(present) == 1 and type(present[0]) is list:
        outputs = present[0].copy()  # a copy: the task may return the same list again
    elif set(map(type, present)) == _LISTS:
        outputs = []
        for result in present:
            outputs += result
    else:
        outputs = []
        for result in present:
            collect(task, result, outputs)
    if outputs and set(map(type, outputs)) != _BYTES:
        return normalize_outputs(task, outputs)
    return outputs
