"""List, requeue and purge the entries of a Redis dead letter (stream or list).

These are the library functions behind ``pytempest deadletter``. They use a plain
(synchronous) Redis client and work on either kind of dead letter: the kind is read
from the key's type. They raise :class:`~pytempest.errors.SourceConnectionError` when
Redis cannot be reached, :class:`~pytempest.errors.DeadLetterError` when the key is not
a dead letter or Redis refuses a command, :class:`~pytempest.errors.ConfigError` for
bad arguments.

Requeueing sends a record's body back to its source as a new message: a stream entry
(``XADD <key> * <field> <body>``), a list push (``LPUSH``: the list source takes from
the other end, so it waits behind what is queued) or a sorted-set member (score: now in
ms, so it is due at once). The target is the record's source (``redis_stream:orders``)
unless ``to``/``to_kind`` say otherwise. Writing the message and removing the
dead-letter entry happen in one ``MULTI``; on Redis Cluster both keys must then share a
hash slot. The requeued message starts with a delivery count of 1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from pytempest.deadletters.base import DeadLetterRecord
from pytempest.deadletters.redis import record_from_fields, record_from_list_entry
from pytempest.errors import ConfigError, DeadLetterError
from pytempest.model.message import now_ms
from pytempest.redis.connection import check_url, connect_sync, connection_error, connection_problem, mask_url

__all__ = ["DeadLetterEntry", "RequeueResult", "list_entries", "purge", "requeue"]

TargetKind = Literal["stream", "list", "zset"]
SOURCE_KINDS: dict[str, TargetKind] = {
    "redis_stream": "stream",
    "redis_list": "list",
    "redis_sorted_set": "zset",
}
PAGE = 500


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One dead-letter entry: its id in the dead letter and the record.

    ``entry_id`` is the stream entry id, or for a list ``h:`` and the first 12 hex
    digits of the SHA-1 of the entry (stable while the list changes).
    """

    entry_id: str
    record: DeadLetterRecord
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class RequeueResult:
    """What :func:`requeue` did: ids requeued (and where), ids not found or skipped."""

    requeued: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _client(url: str) -> Any:
    return connect_sync(check_url(url, "deadletter"))


def _call(url: str, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except redis.RedisError as exc:
        if connection_problem(exc):
            raise connection_error(url, exc, f"deadletter {what}") from exc
        raise DeadLetterError(f"deadletter {what} at {mask_url(url)}: {type(exc).__name__}: {exc}") from exc


def _kind(client: Any, url: str, key: str) -> Literal["stream", "list"]:
    kind = _call(url, "type", client.type, key)
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind in ("stream", "list"):
        return kind  # type: ignore[return-value]
    if kind == "none":
        raise DeadLetterError(f"dead letter {key!r} at {mask_url(url)} does not exist (or is empty)")
    raise DeadLetterError(f"{key!r} at {mask_url(url)} is a {kind}, not a dead letter (a stream or a list)")


def _list_id(raw: bytes) -> str:
    return "h:" + hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:12]


def _iter(client: Any, url: str, key: str, kind: str) -> Iterator[DeadLetterEntry]:
    if kind == "stream":
        start = "-"
        while True:
            page = _call(url, "read", client.xrange, key, start, "+", PAGE)
            for raw_id, fields in page:
                entry_id = raw_id.decode()
                yield DeadLetterEntry(entry_id, record_from_fields(fields), raw_id)
            if len(page) < PAGE:
                return
            start = "(" + page[-1][0].decode()
    else:
        offset = 0
        while True:
            page = _call(url, "read", client.lrange, key, offset, offset + PAGE - 1)
            for raw in page:
                yield DeadLetterEntry(_list_id(raw), record_from_list_entry(raw), raw)
            if len(page) < PAGE:
                return
            offset += PAGE


def list_entries(url: str, key: str, *, count: int = 100) -> list[DeadLetterEntry]:
    """The oldest ``count`` entries of the dead letter ``key`` (0: all)."""
    client = _client(url)
    try:
        out = []
        for entry in _iter(client, url, key, _kind(client, url, key)):
            out.append(entry)
            if count and len(out) >= count:
                break
        return out
    finally:
        client.close()


def _select(
    client: Any, url: str, key: str, kind: str, ids: Sequence[str] | None, all_entries: bool
) -> tuple[list[DeadLetterEntry], list[str]]:
    if all_entries == bool(ids):
        raise ConfigError("deadletter: give either entry ids or all=True (--all), not both or neither")
    wanted = set(ids or ())
    chosen = [e for e in _iter(client, url, key, kind) if all_entries or e.entry_id in wanted]
    found = {e.entry_id for e in chosen}
    return chosen, [i for i in (ids or ()) if i not in found]


def _target(
    entry: DeadLetterEntry, to: str | None, to_kind: TargetKind | None
) -> tuple[str, TargetKind] | str:
    """(key, kind) to requeue to, or why it cannot be requeued."""
    source_kind, _, source_key = entry.record.source.partition(":")
    kind = to_kind or SOURCE_KINDS.get(source_kind)
    key = to or (source_key if source_kind in SOURCE_KINDS else "")
    if not key or kind is None:
        return f"its source {entry.record.source!r} is not a Redis source: give to= and to_kind="
    return key, kind


def requeue(
    url: str,
    key: str,
    ids: Sequence[str] | None = None,
    *,
    all_entries: bool = False,
    to: str | None = None,
    to_kind: TargetKind | None = None,
    field_name: str = "body",
) -> RequeueResult:
    """Send entries (``ids``, or every one with ``all_entries``) back to their source.

    ``to`` and ``to_kind`` (``stream``, ``list`` or ``zset``) override the target;
    ``field_name`` is the stream field the body goes in. Returns what was requeued
    (entry id, target), which ids were not found and which were skipped (and why).
    """
    if to_kind is not None and to_kind not in ("stream", "list", "zset"):
        raise ConfigError(f"deadletter requeue: to_kind must be stream, list or zset; got {to_kind!r}")
    client = _client(url)
    result = RequeueResult()
    try:
        kind = _kind(client, url, key)
        chosen, result.missing = _select(client, url, key, kind, ids, all_entries)
        for i in range(0, len(chosen), PAGE):
            # MULTI over the target key and the dead-letter key: the message is written
            # back and its dead-letter entry removed together.
            pipe = client.pipeline(transaction=True)
            done: list[tuple[str, str]] = []
            for entry in chosen[i : i + PAGE]:
                target = _target(entry, to, to_kind)
                if isinstance(target, str):
                    result.skipped.append((entry.entry_id, target))
                    continue
                target_key, target_kind = target
                body = entry.record.body
                if target_kind == "stream":
                    pipe.xadd(target_key, {field_name: body})
                elif target_kind == "list":
                    pipe.lpush(target_key, body)
                else:
                    pipe.zadd(target_key, {body: now_ms()})
                if kind == "stream":
                    pipe.xdel(key, entry.raw)
                else:
                    pipe.lrem(key, 1, entry.raw)
                done.append((entry.entry_id, f"{target_kind}:{target_key}"))
            if done:
                _call(url, "requeue", pipe.execute)
                result.requeued.extend(done)
        return result
    finally:
        client.close()


def purge(url: str, key: str, ids: Sequence[str] | None = None, *, all_entries: bool = False) -> int:
    """Delete entries (``ids``, or the whole dead letter with ``all_entries``); return how many."""
    client = _client(url)
    try:
        kind = _kind(client, url, key)
        if all_entries and not ids:
            size = _call(url, "purge", client.xlen if kind == "stream" else client.llen, key)
            _call(url, "purge", client.delete, key)
            return int(size)
        chosen, _missing = _select(client, url, key, kind, ids, all_entries)
        if not chosen:
            return 0
        pipe = client.pipeline(transaction=True)
        for entry in chosen:
            if kind == "stream":
                pipe.xdel(key, entry.raw)
            else:
                pipe.lrem(key, 1, entry.raw)
        return sum(int(n) for n in _call(url, "purge", pipe.execute))
    finally:
        client.close()
