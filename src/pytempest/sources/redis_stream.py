"""A Redis Stream read through a consumer group: the source most topologies run on.

Reading: one ``XREADGROUP`` per poll (``COUNT`` = the smaller of ``read_count`` and the
room the engine has), blocking up to ``block_ms``. On start the consumer first reads its
own pending entries again (id ``0``), so a restarted consumer finishes what it had; then
new ones (``>``). Acking: one ``XACK`` per ack call (chunks of 1000 ids, pipelined).

Entries nobody finished are handled by :class:`PendingHandler` s every
``monitor_interval_ms`` (see ``docs/sources.md``). The monitor never touches an entry this
process holds in flight (handed to the engine and not yet acked or released), and a
pending entry whose stream entry was deleted is acked and counted (``msg.missing``).

Metrics (``<topology>.source.<name>``): ``msg.claimed``, ``msg.force_acked``,
``msg.deleted``, ``msg.dead_lettered``, ``msg.missing``, ``reconnects``,
``group.recreated``, ``errors{op=...}``, gauges ``pending`` and ``lag``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import redis

from pytempest import failpoints
from pytempest.deadletters.base import DeadLetter, DeadLetterRecord
from pytempest.errors import ConfigError
from pytempest.model.message import SourceMsg, now_ms
from pytempest.model.policy import AckPolicy
from pytempest.redis.connection import is_busygroup
from pytempest.sources.redis_base import (
    TEMPEST_ALIASES,
    PendingHandler,
    RedisSourceBase,
    _NoGroup,
    decode_id,
    default_consumer,
    opt_ack_policy,
    opt_handlers,
    opt_int,
    opt_str,
    pick,
)
from pytempest.sources.redis_scripts import STREAM_CLAIM, STREAM_SETTLE, STREAM_TRIM

__all__ = ["PendingHandler", "RedisStreamSource", "prime"]

log = logging.getLogger("pytempest.sources.redis")

ACK_CHUNK = 1000
PENDING_PAGE = 1000
PENDING_SCAN_PAGES = 10
DEFAULT_HANDLERS = (PendingHandler("claim", min_idle_ms=60_000),)


class RedisStreamSource(RedisSourceBase):
    """Reads ``key`` through consumer group ``group`` as ``consumer``.

    Keyword arguments are the ``[source.config]`` keys of ``Topology.toml``; the original
    Tempest's names are accepted there too (see :attr:`config_aliases`).

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://`` for TLS.
        key: the stream.
        group: the consumer group (created with ``MKSTREAM`` when missing).
        consumer: this process's name in the group (default ``$PYTEMPEST_CONSUMER``, else
            the host name). Give every process its own stable name: entries pending for a
            name nobody uses any more wait for a ``claim`` handler (``min_idle_ms``).
        group_start_id: where a new group starts: ``0`` (default) the whole stream,
            ``$`` only entries added from now on.
        read_count: at most this many entries per poll (default 1000).
        block_ms: an empty poll waits this long for new entries (default 1000; 0: no wait).
        ack_policy: default ``batch(1000, ack_interval_ms=100)``; ``none`` reads with
            ``NOACK`` (at most once).
        poll_interval_ms: the engine's pause between polls that returned entries
            (default 0).
        max_backoff_ms: the engine's longest pause after empty or failed polls (default
            100; a blocking read already waits ``block_ms``).
        monitor_interval_ms: how often pending handlers, gauges and trimming run
            (default 30 000; 0 disables them).
        pending_handlers: default ``[PendingHandler("claim", min_idle_ms=60_000)]``.
        max_len: when set, the monitor trims history older than every group's oldest
            pending or unread entry once the stream holds more than this many entries.
        field: the entry field that holds the body (default ``body``); the other fields
            are in ``SourceMsg.meta``.
        prefetch: after a poll that returned all it asked for (a backlog), read the
            next batch (as many, without blocking) while the engine handles this one
            (default True; off with ack policy ``none``, whose read-ahead entries would
            be lost on a stop). Prefetched entries count as in flight here.
        dead_letter: where the ``dead_letter`` handler writes; when not given, the
            engine binds the topology's dead letter.
    """

    kind: ClassVar[str] = "redis_stream"
    config_aliases: ClassVar[dict[str, str]] = {
        **TEMPEST_ALIASES,
        "group_starting_id": "group_start_id",
        "block_read": "block_ms",
    }

    def __init__(
        self,
        url: str,
        key: str,
        group: str,
        *,
        consumer: str | None = None,
        group_start_id: str = "0",
        read_count: int = 1000,
        block_ms: int = 1000,
        ack_policy: AckPolicy | str | None = None,
        poll_interval_ms: int = 0,
        max_backoff_ms: int = 100,
        monitor_interval_ms: int = 30_000,
        pending_handlers: Sequence[PendingHandler | Mapping[str, Any]] | None = None,
        max_len: int | None = None,
        field: str = "body",
        prefetch: bool = True,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        super().__init__(url, key, dead_letter, locals())
        w = self.kind
        self.group = opt_str(w, "group", group)
        self.consumer = opt_str(w, "consumer", consumer if consumer is not None else default_consumer())
        self.group_start_id = opt_str(w, "group_start_id", group_start_id)
        self.read_count = opt_int(w, "read_count", read_count, 1)
        self.block_ms = opt_int(w, "block_ms", block_ms)
        self.ack_policy = opt_ack_policy(w, ack_policy, AckPolicy.batch(1000, ack_interval_ms=100))
        self.poll_interval_ms = opt_int(w, "poll_interval_ms", poll_interval_ms)
        self.max_backoff_ms = opt_int(w, "max_backoff_ms", max_backoff_ms)
        self.monitor_interval_ms = opt_int(w, "monitor_interval_ms", monitor_interval_ms)
        self.pending_handlers = opt_handlers(w, pending_handlers, DEFAULT_HANDLERS)
        self.max_len = None if max_len is None else opt_int(w, "max_len", max_len, 1)
        self.field = opt_str(w, "field", field)
        if not isinstance(prefetch, bool):
            raise ConfigError(f"{w}: option 'prefetch' must be true or false; got {prefetch!r}")
        self.prefetch = prefetch
        self._field = self.field.encode()
        key_b, group_b = self.key.encode(), self.group.encode()
        self._xack_head = b"$4\r\nXACK\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(key_b),
            key_b,
            len(group_b),
            group_b,
        )
        self._noack = self.ack_policy.kind == "none"
        self._inflight: set[str] = set()
        self._unacked: set[str] = set()
        self._buffer: deque[SourceMsg] = deque()
        self._prefetch: asyncio.Future[list[SourceMsg]] | None = None
        self._history = True
        self._history_id = "0"
        self._recover = False
        self._read_lock = asyncio.Lock()
        self._warned_no_body = False

    def _socket_timeout_s(self) -> float:
        return max(10.0, self.block_ms / 1000 + 10.0)

    # -- setup ----------------------------------------------------------------------------
    async def setup(self) -> None:
        """Connect, create the group if missing, and check the handlers' dead letter."""
        if any(h.action == "dead_letter" for h in self.pending_handlers) and self.dead_letter is None:
            raise ConfigError(
                f"{self.kind} source {self.key!r}: a 'dead_letter' pending handler needs "
                "dead_letter=... (pass the topology's dead letter to the source)"
            )
        client = await self._open()
        client.set_response_callback("XREADGROUP", lambda response, **options: response)
        self._claim_script = client.register_script(STREAM_CLAIM)
        self._settle_script = client.register_script(STREAM_SETTLE)
        self._trim_script = client.register_script(STREAM_TRIM)
        await self._create_group()
        await self._check_consumer_name()
        self._history, self._history_id = not self._noack, "0"

    async def _create_group(self) -> bool:
        """``XGROUP CREATE ... MKSTREAM``; False when the group already existed."""
        try:
            await self.client.xgroup_create(self.key, self.group, self.group_start_id, mkstream=True)
        except Exception as exc:
            if is_busygroup(exc):
                return False
            raise self._error("setup", exc) from exc
        return True

    async def _check_consumer_name(self) -> None:
        client = self.client
        consumers = await self._run("setup", lambda: client.xinfo_consumers(self.key, self.group))
        for c in consumers:
            if decode_id(c.get("name", b"")) == self.consumer and int(c.get("idle", 1 << 62)) < 2000:
                log.warning(
                    "%s source %r: consumer %r of group %r was active %s ms ago; if another process "
                    "uses this name, give each process its own (consumer=... or $PYTEMPEST_CONSUMER)",
                    self.kind, self.key, self.consumer, self.group, c.get("idle"),
                )  # fmt: skip

    async def _recreate_group(self) -> None:
        if await self._create_group():
            self._count("group.recreated")
            log.warning(
                "%s source %r: consumer group %r was missing (Redis restarted without persistence, "
                "or the group was deleted); created it again at id %r",
                self.kind, self.key, self.group, self.group_start_id,
            )  # fmt: skip
        self._history, self._history_id = False, "0"

    def _on_reconnect(self) -> None:
        if not self._noack:
            self._recover = True

    # -- polling ------------------------------------------------------------------------
    async def poll(self, max_count: int) -> list[SourceMsg]:
        n = min(self.read_count, max_count)
        if n <= 0:
            return []
        buffer = self._buffer
        if not buffer:
            prefetch, self._prefetch = self._prefetch, None
            msgs = await (prefetch if prefetch is not None else self._read(n, self.block_ms))
            if len(msgs) <= n:
                out = msgs
            else:
                out = msgs[:n]
                buffer.extend(msgs[n:])
        else:
            out = [buffer.popleft() for _ in range(min(n, len(buffer)))]
        if len(out) == n and self.prefetch and not self._noack and not buffer and self._prefetch is None:
            # A full read means a backlog: read the next batch while the engine handles
            # this one (no BLOCK: an empty stream costs one quick round trip, then the next
            # poll blocks as usual). After a short read the stream is drained and the next
            # poll blocks at once: a read-ahead would only add a round trip before the acks.
            # Never a second one: a read-ahead still waiting (the buffer of claimed entries
            # was served first) holds entries that would otherwise never reach the engine.
            self._prefetch = asyncio.ensure_future(self._read(n, 0))
        return out

    async def _read(self, n: int, block_ms: int) -> list[SourceMsg]:
        """One read under the read lock: own entries after a reconnect, then own pending
        entries (history) after a start, then new entries."""
        async with self._read_lock:
            try:
                if self._recover:
                    claimed = await self._recover_own(n)
                    if claimed:
                        return claimed
                if self._history:
                    msgs = await self._read_history(n)
                    if msgs or self._history:
                        return msgs
                return await self._read_new(n, block_ms)
            except _NoGroup:
                await self._recreate_group()
                return []

    async def _read_new(self, n: int, block_ms: int) -> list[SourceMsg]:
        client = self.client
        block = block_ms or None
        resp = await self._run(
            "poll",
            lambda: client.xreadgroup(self.group, self.consumer, {self.key: ">"}, n, block, self._noack),
        )
        entries = _entries(resp)
        if not entries:
            return []
        msgs, _missing = self._to_msgs(entries, now_ms(), 1)
        if not self._noack:
            self._inflight.update(m.id for m in msgs)
        if failpoints.ARMED:
            failpoints.hit("source.after_read")
        return msgs

    async def _read_history(self, n: int) -> list[SourceMsg]:
        client = self.client
        start = self._history_id
        resp = await self._run(
            "poll", lambda: client.xreadgroup(self.group, self.consumer, {self.key: start}, n)
        )
        entries = _entries(resp)
        if not entries:
            self._history = False
            return []
        self._history_id = decode_id(entries[-1][0])
        msgs, missing = self._to_msgs(entries, now_ms(), 1)
        if missing:
            await self._ack_missing(missing)
        msgs = [m for m in msgs if m.id not in self._inflight]
        if msgs:
            rows = await self._run(
                "poll",
                lambda: client.xpending_range(
                    self.key, self.group, msgs[0].id, msgs[-1].id, len(msgs) + len(missing), self.consumer
                ),
            )
            counts = {decode_id(r["message_id"]): int(r["times_delivered"]) for r in rows}
            for m in msgs:
                m.deliveries = max(1, counts.get(m.id, 1))
            self._inflight.update(m.id for m in msgs)
        return msgs

    def _to_msgs(self, entries: list[Any], now: int, deliveries: int) -> tuple[list[SourceMsg], list[str]]:
        """Stream entries as messages; ids of entries deleted from the stream apart."""
        field = self._field
        msgs: list[SourceMsg] = []
        missing: list[str] = []
        for raw_id, fields in entries:
            msg_id = raw_id.decode() if type(raw_id) is bytes else decode_id(raw_id)
            if not fields:
                missing.append(msg_id)
            elif len(fields) == 2 and fields[0] == field:
                msgs.append(SourceMsg(msg_id, fields[1], now, deliveries))
            else:
                msgs.append(self._with_meta(msg_id, fields, now, deliveries))
        return msgs, missing

    def _with_meta(self, msg_id: str, fields: Any, now: int, deliveries: int) -> SourceMsg:
        pairs = fields.items() if isinstance(fields, dict) else zip(fields[::2], fields[1::2], strict=True)
        meta: dict[str, Any] = {}
        body: bytes | None = None
        for name, value in pairs:
            if name == self._field:
                body = value
            else:
                meta[decode_id(name)] = value
        if body is None:
            self._count("msg.no_body")
            if not self._warned_no_body:
                self._warned_no_body = True
                log.warning(
                    "%s source %r: entry %s has no field %r (fields: %s); its body is empty, "
                    "the fields are in SourceMsg.meta",
                    self.kind, self.key, msg_id, self.field, sorted(meta),
                )  # fmt: skip
            body = b""
        return SourceMsg(msg_id, body, now, deliveries, meta)

    async def _recover_own(self, n: int) -> list[SourceMsg]:
        """After a reconnect: take back own pending entries not in flight (a read whose
        reply was lost leaves entries pending for this consumer and unknown to it)."""
        client = self.client
        rows = await self._run(
            "poll",
            lambda: client.xpending_range(self.key, self.group, "-", "+", PENDING_PAGE, self.consumer),
        )
        busy = self._inflight | self._unacked | {m.id for m in self._buffer}
        orphans = [i for i in (decode_id(r["message_id"]) for r in rows) if i not in busy]
        if len(orphans) <= n:
            self._recover = False
        return await self._claim(orphans[:n], 0) if orphans else []

    # -- acking -------------------------------------------------------------------------
    async def ack(self, ids: Sequence[str]) -> None:
        if self._noack or not ids:
            return
        todo = list(ids)
        if self._unacked:
            todo.extend(self._unacked - set(ids))
        try:
            await self._xack(todo, "ack")
        except Exception:
            self._unacked.update(ids)
            raise
        self._inflight.difference_update(todo)
        self._unacked.difference_update(todo)

    async def _xack(self, ids: list[str], what: str) -> None:
        """XACK ``ids``: one command per chunk of 1000, all chunks in one round trip."""
        payload = "".join([f"${len(i)}\r\n{i}\r\n" for i in ids])
        client = self.client
        if not payload.isascii():  # not a stream id; let Redis say so
            await self._run(what, lambda: client.xack(self.key, self.group, *ids))
            return
        # Packed here: redis-py packs arguments one by one in Python, which for 1000
        # ids costs ten times this and more than reading the 1000 entries.
        head, chunks, start = self._xack_head, [], 0
        for i in range(0, len(ids), ACK_CHUNK):
            chunk = ids[i : i + ACK_CHUNK]
            size = sum(len(x) + len(str(len(x))) + 5 for x in chunk)
            chunks.append(b"*%d\r\n%s%s" % (len(chunk) + 3, head, payload[start : start + size].encode()))
            start += size
        await self._run(what, lambda: self._send_packed(b"".join(chunks), len(chunks)))

    async def _send_packed(self, payload: bytes, replies: int) -> list[Any]:
        pool = self.client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(payload)
            return [await conn.read_response() for _ in range(replies)]
        except BaseException:
            await conn.disconnect()  # replies may be left unread: never reuse it
            raise
        finally:
            await pool.release(conn)

    async def _ack_missing(self, ids: list[str]) -> None:
        await self._xack(ids, "ack")
        self._count("msg.missing", len(ids))
        log.info(
            "%s source %r: acked %d pending entries deleted from the stream", self.kind, self.key, len(ids)
        )

    async def release(self, msgs: Sequence[SourceMsg]) -> None:
        """Released entries stay pending; the ``claim`` handlers deliver them again."""
        self._inflight.difference_update(m.id for m in msgs)

    # -- monitor --------------------------------------------------------------------------
    async def monitor(self) -> None:
        """Retry failed acks, run the pending handlers, update gauges, trim history."""
        try:
            if self._unacked:
                await self.ack(list(self._unacked))
            if self.pending_handlers and not self._noack:
                await self._handle_pending()
            await self._update_gauges()
            if self.max_len is not None:
                await self._trim()
        except _NoGroup:
            async with self._read_lock:
                await self._recreate_group()

    async def _handle_pending(self) -> None:
        plan: dict[str, list[tuple[str, PendingHandler, int]]] = {
            a: [] for a in ("claim", "ack", "delete", "dead_letter")
        }
        async with self._read_lock:  # no XREADGROUP reply in flight: all our reads are known
            busy = self._inflight | self._unacked
            for msg_id, idle, deliveries in await self._scan_pending():
                if msg_id in busy:
                    continue
                handler = pick(self.pending_handlers, idle, deliveries)
                if handler is not None:
                    plan[handler.action].append((msg_id, handler, deliveries))
            room = max(0, self.read_count - len(self._buffer))
            for handler, ids in _by_handler(plan["claim"][:room]):
                self._buffer.extend(await self._claim(ids, handler.min_idle_ms))
            letters = []
            for handler, ids in _by_handler(plan["dead_letter"]):
                letters.extend(await self._claim(ids, handler.min_idle_ms, track=False))
        for action in ("ack", "delete"):
            for handler, ids in _by_handler(plan[action]):
                done = await self._settle(ids, handler.min_idle_ms, action == "delete")
                self._count("msg.deleted" if action == "delete" else "msg.force_acked", len(done))
        if letters:
            await self._dead_letter(letters, {i: d for i, _, d in plan["dead_letter"]})

    async def _scan_pending(self) -> list[tuple[str, int, int]]:
        """(id, idle ms, deliveries) of pending entries idle long enough for some handler."""
        client = self.client
        min_idle = min(h.min_idle_ms for h in self.pending_handlers)
        rows: list[tuple[str, int, int]] = []
        start = "-"
        for _ in range(PENDING_SCAN_PAGES):
            page = await self._run(
                "monitor",
                lambda s=start: client.xpending_range(  # type: ignore[misc]
                    self.key, self.group, s, "+", PENDING_PAGE, idle=min_idle
                ),
            )
            rows.extend(
                (decode_id(r["message_id"]), int(r["time_since_delivered"]), int(r["times_delivered"]))
                for r in page
            )
            if len(page) < PENDING_PAGE:
                break
            start = "(" + rows[-1][0]
        return rows

    async def _claim(self, ids: list[str], min_idle_ms: int, track: bool = True) -> list[SourceMsg]:
        """Claim ``ids`` for this consumer if still idle ``min_idle_ms``; ack deleted ones.

        With ``track`` the claimed entries count as in flight here (to be handed to the
        engine); without, the caller settles them (the ``dead_letter`` handler)."""
        script = self._claim_script
        result = await self._run(
            "claim",
            lambda: script(keys=[self.key], args=[self.group, self.consumer, min_idle_ms, *ids]),
        )
        claimed, missing = result[0] or [], result[1] or []
        if missing:
            self._count("msg.missing", len(missing))
        now = now_ms()
        msgs = [self._to_msgs([(raw_id, fields)], now, int(count))[0][0] for raw_id, fields, count in claimed]
        if track and msgs:
            self._count("msg.claimed", len(msgs))
            if self._noack:
                await self._xack([m.id for m in msgs], "claim")
            else:
                self._inflight.update(m.id for m in msgs)
            log.info("%s source %r: claimed %d pending entries", self.kind, self.key, len(msgs))
        return msgs

    async def _settle(self, ids: list[str], min_idle_ms: int, delete: bool) -> list[str]:
        script = self._settle_script
        done = await self._run(
            "monitor",
            lambda: script(keys=[self.key], args=[self.group, min_idle_ms, int(delete), *ids]),
        )
        return [decode_id(i) for i in done or []]

    async def _dead_letter(self, msgs: list[SourceMsg], deliveries: dict[str, int]) -> None:
        assert self.dead_letter is not None
        now = now_ms()
        records = [
            DeadLetterRecord(
                topology=self.topology_name,
                source=self.describe(),
                source_id=m.id,
                body=m.body,
                task=None,
                error=f"pending for too long: delivered {deliveries.get(m.id, 0)} times, never acked",
                reason="pending_handler",
                attempts=deliveries.get(m.id, m.deliveries),
                first_failure_ms=now,
                last_failure_ms=now,
            )
            for m in msgs
        ]
        await self.dead_letter.put(records)
        if failpoints.ARMED:
            failpoints.hit("source.after_dead_letter")
        await self._xack([m.id for m in msgs], "monitor")
        self._count("msg.dead_lettered", len(msgs))
        log.warning("%s source %r: dead-lettered %d pending entries", self.kind, self.key, len(msgs))

    async def _update_gauges(self) -> None:
        if self.metrics is None:
            return
        client = self.client
        pipe = client.pipeline(transaction=False)
        pipe.xpending(self.key, self.group)
        pipe.xinfo_groups(self.key)
        summary, groups = await self._run("monitor", pipe.execute)
        self._gauge("pending", int(summary.get("pending", 0) or 0))
        for g in groups:
            if decode_id(g.get("name", b"")) == self.group and g.get("lag") is not None:
                self._gauge("lag", int(g["lag"]))

    async def _trim(self) -> None:
        script, max_len = self._trim_script, self.max_len or 0
        trimmed = await self._run("monitor", lambda: script(keys=[self.key], args=[max_len]))
        self._count("trimmed", int(trimmed or 0))

    async def close(self) -> None:
        """Stop a prefetch in flight and close the client. Entries read but not handed to
        the engine stay pending for this consumer (read again on the next start)."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            prefetch.cancel()
            with contextlib.suppress(BaseException):
                await prefetch
        await super().close()


def _entries(resp: Any) -> list[Any]:
    """The entries of a one-stream XREADGROUP reply (RESP2 list or RESP3 map)."""
    if not resp:
        return []
    if isinstance(resp, dict):
        entries: list[Any] = next(iter(resp.values()))
        return entries
    entries = resp[0][1]
    return entries


def _by_handler(items: list[tuple[str, PendingHandler, int]]) -> list[tuple[PendingHandler, list[str]]]:
    groups: dict[PendingHandler, list[str]] = {}
    for msg_id, handler, _ in items:
        groups.setdefault(handler, []).append(msg_id)
    return list(groups.items())


def prime(
    url: str,
    key: str,
    bodies: Iterable[bytes | str | Mapping[str, bytes | str]],
    *,
    field: str = "body",
    chunk: int = 1000,
) -> list[str]:
    """Append entries to the stream ``key`` (tests, examples, producers); return their ids.

    A body (bytes or str) becomes the entry ``{field: body}``; a mapping is used as the
    entry's fields. Entries are sent in pipelines of ``chunk``.
    """
    client = redis.Redis.from_url(url)
    ids: list[str] = []
    try:
        pipe = client.pipeline(transaction=False)
        pending = 0
        for body in bodies:
            fields = dict(body) if isinstance(body, Mapping) else {field: body}
            pipe.xadd(key, fields)  # type: ignore[arg-type]
            pending += 1
            if pending >= chunk:
                ids.extend(decode_id(i) for i in pipe.execute())
                pending = 0
        if pending:
            ids.extend(decode_id(i) for i in pipe.execute())
    finally:
        client.close()
    return ids
