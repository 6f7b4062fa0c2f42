"""Dead letters in Redis: a stream (one entry per record) or a list (one JSON line each).

A record carries the body, the topology, the source (``<kind>:<key>``, e.g.
``redis_stream:orders``: where ``pytempest deadletter requeue`` sends it back), the
source id, the failing task, the error text (type and message, cut at
:data:`~pytempest.deadletters.base.ERROR_TEXT_LIMIT` characters), the reason, the
number of attempts and the first and last failure times (epoch ms).

``put`` writes all records of one call in one ``MULTI``; it returns only after Redis
accepted them, so the engine acks the source messages only then. ``setup`` and
``close`` may be called more than once (a source's ``dead_letter`` handler and the
engine may share one dead letter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import redis.asyncio as aioredis

from pytempest.deadletters.base import DeadLetter, DeadLetterRecord
from pytempest.deadletters.file import record_from_json, record_to_json
from pytempest.errors import ConfigError, DeadLetterError
from pytempest.redis.connection import check_url, connect, is_auth_error, mask_url

__all__ = ["RedisListDeadLetter", "RedisStreamDeadLetter", "record_from_fields", "record_to_fields"]

_INT_FIELDS = ("attempts", "first_failure_ms", "last_failure_ms")


def record_to_fields(record: DeadLetterRecord) -> dict[str, bytes | str]:
    """The fields of the stream entry for ``record`` (``task`` is ``""`` when unknown)."""
    return {
        "body": record.body,
        "topology": record.topology,
        "source": record.source,
        "source_id": record.source_id,
        "task": record.task or "",
        "error": record.error,
        "reason": record.reason,
        "attempts": str(record.attempts),
        "first_failure_ms": str(record.first_failure_ms),
        "last_failure_ms": str(record.last_failure_ms),
    }


def record_from_fields(fields: Mapping[Any, Any]) -> DeadLetterRecord:
    """Read back the fields written by :func:`record_to_fields` (keys bytes or str)."""
    data = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in fields.items()}
    text = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for k, v in data.items()}
    body = data.get("body", b"")
    return DeadLetterRecord(
        topology=text.get("topology", ""),
        source=text.get("source", ""),
        source_id=text.get("source_id", ""),
        body=body if isinstance(body, bytes) else str(body).encode(),
        task=text.get("task") or None,
        error=text.get("error", ""),
        reason=text.get("reason", ""),
        **{k: int(text.get(k, "0") or 0) for k in _INT_FIELDS},
    )


class _RedisDeadLetter(DeadLetter):
    def __init__(self, url: str, key: str, max_len: int | None) -> None:
        self._options: dict[str, Any] = {"url": url, "key": key, "max_len": max_len}
        where = f"{self.kind} dead letter"
        self.url = check_url(url, where)
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}: option 'key' must be a non-empty string; got {key!r}")
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
            raise ConfigError(
                f"{where}: option 'max_len' must be a whole number >= 1 or None; got {max_len!r}"
            )
        self.key = key
        self.max_len = max_len
        self._client: aioredis.Redis | None = None

    def options(self) -> dict[str, Any]:
        """The constructor arguments (``Topology.toml`` keys override some and rebuild it)."""
        return dict(self._options)

    async def setup(self) -> None:
        """Connect and check that Redis answers (idempotent)."""
        if self._client is None:
            self._client = connect(self.url)
        await self._guard("setup", self._client.ping())

    async def _guard(self, what: str, call: Any) -> Any:
        try:
            return await call
        except Exception as exc:
            hint = "check the credentials in the URL; " if is_auth_error(exc) else ""
            raise DeadLetterError(
                f"{self.kind} dead letter {self.key!r} ({what}) at {mask_url(self.url)}: "
                f"{type(exc).__name__}: {exc}; {hint}the records were not stored"
            ) from exc

    async def put(self, records: Sequence[DeadLetterRecord]) -> None:
        if not records:
            return
        if self._client is None:
            await self.setup()
        assert self._client is not None
        pipe = self._client.pipeline(transaction=True)
        self._queue(pipe, records)
        await self._guard("put", pipe.execute())

    def _queue(self, pipe: Any, records: Sequence[DeadLetterRecord]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def describe(self) -> str:
        return f"{self.kind}:{self.key}"


class RedisStreamDeadLetter(_RedisDeadLetter):
    """Appends one stream entry per record to ``key`` (fields: see :func:`record_to_fields`).

    Args:
        url: ``redis://[user:password@]host:port/db``.
        key: the dead-letter stream.
        max_len: keep about this many entries (``XADD MAXLEN ~``); ``None`` (default)
            keeps every entry until requeued or purged.
    """

    kind: ClassVar[str] = "redis_stream"

    def __init__(self, url: str, key: str, *, max_len: int | None = None) -> None:
        super().__init__(url, key, max_len)

    def _queue(self, pipe: Any, records: Sequence[DeadLetterRecord]) -> None:
        for record in records:
            pipe.xadd(self.key, record_to_fields(record), maxlen=self.max_len, approximate=True)


class RedisListDeadLetter(_RedisDeadLetter):
    """Appends one JSON line per record to the list ``key`` (``RPUSH``: oldest first).

    The JSON is that of the file dead letter (body as text, or ``body_b64``).

    Args:
        url: ``redis://[user:password@]host:port/db``.
        key: the dead-letter list.
        max_len: keep the newest this many entries (``LTRIM``); ``None`` keeps all.
    """

    kind: ClassVar[str] = "redis_list"

    def __init__(self, url: str, key: str, *, max_len: int | None = None) -> None:
        super().__init__(url, key, max_len)

    def _queue(self, pipe: Any, records: Sequence[DeadLetterRecord]) -> None:
        pipe.rpush(self.key, *(record_to_json(r) for r in records))
        if self.max_len is not None:
            pipe.ltrim(self.key, -self.max_len, -1)


def record_from_list_entry(raw: bytes | str) -> DeadLetterRecord:
    """Read back an entry of a :class:`RedisListDeadLetter`."""
    return record_from_json(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
