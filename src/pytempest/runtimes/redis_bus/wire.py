"""The wire format of the distributed runtime: msgpack, versioned, never pickle.

A stream entry has one field, ``d``, holding a msgpack array whose first element is the
wire version (:data:`WIRE_VERSION`). Several task messages travel in one entry (the
topology packs what one engine tick produced for a task), so the Redis cost is paid per
entry, not per message.

Task entry, in ``{pt:<topology>}:task:<task>``::

    [version, instance, sent_ms, [[ref, source_id, attempt, task_index, seq, [body, ...]], ...]]

Result entry, in ``{pt:<topology>}:results:<instance>``::

    [version, worker, [[ref, [output, ...], handled, skipped, elapsed_ms, failure], ...]]

``ref`` is a number the topology instance gave the batch when it sent it; the result
echoes it, so a result maps back to exactly the batch that was sent and a second result
for the same ``ref`` (a redelivered entry) is recognised and dropped. ``failure`` is
``None`` or ``[error_type, message, traceback, expected]``. A decoder that meets another
version raises :class:`~pytempest.errors.WireError` naming both versions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgpack

from pytempest.engine.executor import TaskFailure
from pytempest.errors import WireError

WIRE_VERSION = 1
FIELD = b"d"
MARKER_FIELD = b"start"
"""The field of the first entry a topology instance writes to its own result stream."""

TaskItem = list[Any]
"""``[ref, source_id, attempt, task_index, seq, bodies]`` (a list: cheapest to pack)."""
ResultItem = list[Any]
"""``[ref, outputs, handled, skipped, elapsed_ms, failure]``."""

_packb = msgpack.packb
_unpackb = msgpack.unpackb


def encode_tasks(instance: str, sent_ms: int, items: Sequence[TaskItem]) -> bytes:
    """One task entry's ``d`` field."""
    return _packb([WIRE_VERSION, instance, sent_ms, items])  # type: ignore[no-any-return]


def encode_results(worker: str, items: Sequence[ResultItem]) -> bytes:
    """One result entry's ``d`` field."""
    return _packb([WIRE_VERSION, worker, items])  # type: ignore[no-any-return]


def _unpack(fields: Mapping[bytes, bytes], where: str, size: int) -> list[Any]:
    data = fields.get(FIELD)
    if data is None:
        raise WireError(f"{where}: entry has no {FIELD.decode()!r} field (fields: {sorted(fields)!r})")
    try:
        value = _unpackb(data, raw=False)
    except Exception as exc:
        raise WireError(f"{where}: entry is not valid msgpack: {exc}") from None
    if not isinstance(value, list) or not value:
        raise WireError(f"{where}: entry must be a msgpack array; got {type(value).__name__}")
    version = value[0]
    if version != WIRE_VERSION:
        raise WireError(
            f"{where}: entry has wire version {version!r}; this pytempest speaks version {WIRE_VERSION} "
            "(run the same pytempest version in the topology and its workers)"
        )
    if len(value) != size:
        raise WireError(f"{where}: version {WIRE_VERSION} entry must have {size} parts; got {len(value)}")
    return value


def decode_tasks(fields: Mapping[bytes, bytes], where: str) -> tuple[str, int, list[TaskItem]]:
    """``(instance, sent_ms, items)`` of a task entry; ``WireError`` when malformed."""
    _, instance, sent_ms, items = _unpack(fields, where, 4)
    if not isinstance(instance, str) or not isinstance(sent_ms, int) or not isinstance(items, list):
        raise WireError(f"{where}: task entry header has wrong types")
    for item in items:
        if not (isinstance(item, list) and len(item) == 6 and isinstance(item[5], list)):
            raise WireError(
                f"{where}: task item must be [ref, id, attempt, task, seq, bodies]; got {item!r:.80}"
            )
    return instance, sent_ms, items


def decode_results(fields: Mapping[bytes, bytes], where: str) -> tuple[str, list[ResultItem]]:
    """``(worker, items)`` of a result entry; ``WireError`` when malformed."""
    _, worker, items = _unpack(fields, where, 3)
    if not isinstance(worker, str) or not isinstance(items, list):
        raise WireError(f"{where}: result entry header has wrong types")
    for item in items:
        if not (isinstance(item, list) and len(item) == 6 and isinstance(item[1], list)):
            raise WireError(f"{where}: result item must have 6 parts; got {item!r:.80}")
    return worker, items


def failure_to_wire(failure: TaskFailure | None) -> list[Any] | None:
    """A :class:`TaskFailure` as a msgpack-able list."""
    if failure is None:
        return None
    out = [failure.error_type, failure.message, failure.traceback, failure.expected]
    return [*out, failure.reason] if failure.reason else out


def failure_from_wire(value: Any) -> TaskFailure | None:
    """The inverse of :func:`failure_to_wire` (tolerates a malformed value)."""
    if value is None:
        return None
    if isinstance(value, list) and len(value) in (4, 5):
        reason = str(value[4]) if len(value) == 5 else ""
        return TaskFailure(str(value[0]), str(value[1]), str(value[2]), bool(value[3]), reason)
    return TaskFailure("WireError", f"malformed failure on the wire: {value!r:.200}")


def item_bytes(bodies: Sequence[bytes]) -> int:
    """The payload size of a list of bodies (what the message size limit counts)."""
    return sum(map(len, bodies))


def chunk_results(items: list[ResultItem], sizes: list[int], max_bytes: int) -> Iterator[list[ResultItem]]:
    """Split result items into entries of at most ``max_bytes`` of outputs each (an item
    is never split; one larger than the limit was already turned into a failure)."""
    chunk: list[ResultItem] = []
    total = 0
    for item, size in zip(items, sizes, strict=True):
        if chunk and total + size > max_bytes:
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += size
    if chunk:
        yield chunk
