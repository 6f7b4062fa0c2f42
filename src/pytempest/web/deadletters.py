"""The dead letters a dashboard shows: browse entries, requeue them, purge them.

A topology's snapshot names its dead letter (kind, key, masked URL). The director opens
a Redis dead letter (stream or list) through the URL it was given when that URL points
at the same server and database as the published one (``--redis`` or
``--deadletter-redis``): passwords never travel in snapshots. Requeue and purge are the
functions of ``pytempest deadletter`` (:mod:`pytempest.deadletters.admin`), run in a
thread. In process (``pytempest run --dashboard``) the dead letter object itself is at
hand: a Redis one is used through its own URL; a file or memory dead letter can be
browsed, not changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from pytempest.deadletters import admin
from pytempest.deadletters.base import DeadLetter, DeadLetterRecord
from pytempest.errors import DeadLetterError
from pytempest.redis.connection import check_url, connect_sync

PREVIEW_CHARS = 400
REDIS_KINDS = ("redis_stream", "redis_list")


def preview(body: bytes, limit: int = PREVIEW_CHARS) -> str:
    """The start of a body as text (invalid UTF-8 shown as U+FFFD)."""
    text = body[: limit * 4].decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "\u2026"


def entry_json(entry_id: str, record: DeadLetterRecord) -> dict[str, Any]:
    """One entry as the API returns it."""
    return {
        "id": entry_id,
        "source": record.source,
        "source_id": record.source_id,
        "task": record.task,
        "error": record.error,
        "reason": record.reason,
        "attempts": record.attempts,
        "first_failure_ms": record.first_failure_ms,
        "last_failure_ms": record.last_failure_ms,
        "body_preview": preview(record.body),
        "body_bytes": len(record.body),
    }


def same_redis(a: str, b: str) -> bool:
    """Whether two Redis URLs (either may be masked) name the same server and database."""
    try:
        pa, pb = urlsplit(a), urlsplit(b)
        return (pa.scheme, pa.hostname, pa.port or 6379, (pa.path or "/0").strip("/") or "0") == (
            pb.scheme, pb.hostname, pb.port or 6379, (pb.path or "/0").strip("/") or "0",
        )  # fmt: skip
    except ValueError:
        return False


class DeadLetterView:
    """Access to one dead letter: ``available`` says whether it can be read, ``writable``
    whether entries can be requeued and purged; ``reason`` says why not."""

    def __init__(self, info: dict[str, Any] | None, *, available: bool, writable: bool, reason: str = ""):
        self.info = info
        self.available = available
        self.writable = writable
        self.reason = reason

    def describe(self) -> dict[str, Any]:
        """What the page shows above the entries."""
        return {"dead_letter": self.info, "available": self.available, "writable": self.writable,
                "reason": self.reason}  # fmt: skip

    async def entries(self, count: int) -> tuple[int, list[dict[str, Any]]]:
        """``(total, the oldest count entries)``."""
        return 0, []

    async def count(self) -> int | None:
        """How many entries (None when unknown)."""
        return None

    async def requeue(self, ids: Sequence[str], all_entries: bool) -> dict[str, Any]:
        """Send entries back to their source."""
        raise PermissionError(self.reason or "this dead letter cannot be changed from the dashboard")

    async def purge(self, ids: Sequence[str], all_entries: bool) -> dict[str, Any]:
        """Delete entries."""
        raise PermissionError(self.reason or "this dead letter cannot be changed from the dashboard")


class RedisDeadLetterView(DeadLetterView):
    """A Redis stream or list dead letter, reached through ``url``."""

    def __init__(self, info: dict[str, Any], url: str) -> None:
        super().__init__(info, available=True, writable=True)
        self.url = check_url(url, "dashboard dead letter")
        self.key = str(info["key"])

    def _count(self) -> int:
        client = connect_sync(self.url)
        try:
            kind = client.type(self.key)
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            if kind == "stream":
                return int(client.xlen(self.key))
            if kind == "list":
                return int(client.llen(self.key))
            return 0
        finally:
            client.close()

    async def count(self) -> int | None:
        return await asyncio.to_thread(self._count)

    async def entries(self, count: int) -> tuple[int, list[dict[str, Any]]]:
        total = await self.count() or 0
        if not total:
            return 0, []
        try:
            found = await asyncio.to_thread(admin.list_entries, self.url, self.key, count=count)
        except DeadLetterError:
            if await self.count():
                raise
            return 0, []  # emptied (purged or requeued) between the two calls
        return total, [entry_json(e.entry_id, e.record) for e in found]

    async def requeue(self, ids: Sequence[str], all_entries: bool) -> dict[str, Any]:
        if not all_entries and not ids:
            return {"requeued": [], "missing": [], "skipped": []}
        if all_entries and not await self.count():
            return {"requeued": [], "missing": [], "skipped": []}
        result = await asyncio.to_thread(
            admin.requeue, self.url, self.key, None if all_entries else list(ids), all_entries=all_entries
        )
        return {
            "requeued": [{"id": i, "to": t} for i, t in result.requeued],
            "missing": list(result.missing),
            "skipped": [{"id": i, "why": w} for i, w in result.skipped],
        }

    async def purge(self, ids: Sequence[str], all_entries: bool) -> dict[str, Any]:
        if not all_entries and not ids:
            return {"deleted": 0}
        if all_entries and not await self.count():
            return {"deleted": 0}
        deleted = await asyncio.to_thread(
            admin.purge, self.url, self.key, None if all_entries else list(ids), all_entries=all_entries
        )
        return {"deleted": int(deleted)}


class RecordsView(DeadLetterView):
    """A dead letter read in process (file or memory): browse only."""

    def __init__(self, info: dict[str, Any], read: Callable[[], list[DeadLetterRecord]]) -> None:
        super().__init__(info, available=True, writable=False,
                         reason=f"{info['name']} can be browsed here; requeue and purge need a Redis dead letter")  # fmt: skip
        self._read = read

    async def count(self) -> int | None:
        return len(await asyncio.to_thread(self._read))

    async def entries(self, count: int) -> tuple[int, list[dict[str, Any]]]:
        records = await asyncio.to_thread(self._read)
        shown = records[:count] if count else records
        return len(records), [entry_json(f"#{i + 1}", r) for i, r in enumerate(shown)]


def view_for_snapshot(info: dict[str, Any] | None, urls: Sequence[str]) -> DeadLetterView:
    """The dead letter a published snapshot names, reached through one of ``urls``."""
    if info is None:
        return DeadLetterView(
            None, available=False, writable=False, reason="this topology has no dead letter"
        )
    if info.get("kind") not in REDIS_KINDS or "key" not in info:
        where = info.get("path") or info.get("name")
        return DeadLetterView(info, available=False, writable=False,
                              reason=f"{where} is not a Redis dead letter: read it where the topology runs")  # fmt: skip
    published = str(info.get("url", ""))
    for url in urls:
        if same_redis(published, url):
            return RedisDeadLetterView(info, url)
    return DeadLetterView(info, available=False, writable=False, reason=(
        f"the dead letter is on {published}, not on this director's Redis; "
        "start the director with --deadletter-redis URL for that server"))  # fmt: skip


def view_for_object(dead_letter: DeadLetter | None, info: dict[str, Any] | None) -> DeadLetterView:
    """The dead letter of a topology running in this process."""
    if dead_letter is None or info is None:
        return DeadLetterView(
            None, available=False, writable=False, reason="this topology has no dead letter"
        )
    url = getattr(dead_letter, "url", None)
    if dead_letter.kind in REDIS_KINDS and isinstance(url, str):
        return RedisDeadLetterView(info, url)
    read = getattr(dead_letter, "read", None)
    if callable(read):
        return RecordsView(info, read)
    records = getattr(dead_letter, "records", None)
    if isinstance(records, list):
        return RecordsView(info, lambda: list(records))
    return DeadLetterView(info, available=False, writable=False,
                          reason=f"{info['name']} cannot be read from the dashboard")  # fmt: skip
