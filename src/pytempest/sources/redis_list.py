"""A Redis list read as a reliable queue: entries move into a per-consumer processing list.

Reading moves entries with ``LMOVE`` (a Lua script moves up to ``read_count`` in one
round trip; when the list is empty ``BLMOVE`` waits up to ``block_ms`` for one) from the
list into ``{key}:processing:<consumer>``. Acking removes them from there (``LREM``).
Every consumer notes itself in ``{key}:consumers`` (last seen, ms) on each poll and each
monitor run; the monitor applies the :class:`PendingHandler` s to the processing lists of
consumers not seen for ``min_idle_ms`` and to entries this process released: ``claim``
puts an entry back at the end the source takes from (next in line), ``ack`` and
``delete`` drop it, ``dead_letter`` writes it to the dead letter and drops it.

Delivery counts: ``{key}:deliveries`` counts how many times an entry was put back, so
``SourceMsg.deliveries`` is 1 on the first read and ``times_delivered`` works as for
streams. Identical entries share one count. On start, entries left in this consumer's
processing list by a previous run are put back first.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import redis

from pytempest.deadletters.base import DeadLetter, DeadLetterRecord
from pytempest.errors import ConfigError
from pytempest.model.message import SourceMsg, now_ms
from pytempest.model.policy import AckPolicy
from pytempest.redis import keyspace
from pytempest.sources.redis_base import (
    TEMPEST_ALIASES,
    PendingHandler,
    RedisSourceBase,
    decode_id,
    default_consumer,
    log,
    opt_ack_policy,
    opt_handlers,
    opt_int,
    opt_str,
    pick,
)
from pytempest.sources.redis_scripts import LIST_SETTLE, LIST_TAKE

__all__ = ["RedisListSource", "prime"]

SCAN_ENTRIES = 10_000
DEFAULT_HANDLERS = (PendingHandler("claim", min_idle_ms=60_000),)


class RedisListSource(RedisSourceBase):
    """Reads the list ``key`` as ``consumer``.

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://`` for TLS.
        key: the list; producers push at one end (``LPUSH`` by default), the source takes
            from the other (``pop_from``, default ``right``: first in, first out).
        consumer: this process's name (default ``$PYTEMPEST_CONSUMER``, else the host
            name); every process needs its own stable name.
        read_count: at most this many entries per poll (default 1000).
        block_ms: an empty poll waits this long for an entry (default 1000; 0: no wait).
        ack_policy: default ``batch(1000, ack_interval_ms=100)``.
        poll_interval_ms: the engine's pause between polls that returned entries
            (default 0).
        max_backoff_ms: the engine's longest pause after empty or failed polls (default
            100).
        monitor_interval_ms: how often handlers and gauges run (default 30 000); every
            handler's ``min_idle_ms`` must be longer, or live consumers look dead.
        pending_handlers: default ``[PendingHandler("claim", min_idle_ms=60_000)]``.
        pop_from: ``right`` or ``left``.
        dead_letter: where the ``dead_letter`` handler writes; when not given, the
            engine binds the topology's dead letter.
    """

    kind: ClassVar[str] = "redis_list"
    config_aliases: ClassVar[dict[str, str]] = {**TEMPEST_ALIASES, "block_read": "block_ms"}

    def __init__(
        self,
        url: str,
        key: str,
        *,
        consumer: str | None = None,
        read_count: int = 1000,
        block_ms: int = 1000,
        ack_policy: AckPolicy | str | None = None,
        poll_interval_ms: int = 0,
        max_backoff_ms: int = 100,
        monitor_interval_ms: int = 30_000,
        pending_handlers: Sequence[PendingHandler | Mapping[str, Any]] | None = None,
        pop_from: Literal["right", "left"] = "right",
        dead_letter: DeadLetter | None = None,
    ) -> None:
        super().__init__(url, key, dead_letter, locals())
        w = self.kind
        self.consumer = opt_str(w, "consumer", consumer if consumer is not None else default_consumer())
        self.read_count = opt_int(w, "read_count", read_count, 1)
        self.block_ms = opt_int(w, "block_ms", block_ms)
        self.ack_policy = opt_ack_policy(w, ack_policy, AckPolicy.batch(1000, ack_interval_ms=100))
        if self.ack_policy.kind == "none":
            raise ConfigError(
                f"{w}: option 'ack_policy' none would leave every entry in the processing list; "
                "use individual or batch(n)"
            )
        self.poll_interval_ms = opt_int(w, "poll_interval_ms", poll_interval_ms)
        self.max_backoff_ms = opt_int(w, "max_backoff_ms", max_backoff_ms)
        self.monitor_interval_ms = opt_int(w, "monitor_interval_ms", monitor_interval_ms)
        self.pending_handlers = opt_handlers(w, pending_handlers, DEFAULT_HANDLERS)
        for h in self.pending_handlers:
            if self.monitor_interval_ms and h.min_idle_ms <= self.monitor_interval_ms:
                raise ConfigError(
                    f"{w}: pending handler {h.action!r} has min_idle_ms {h.min_idle_ms}, not more "
                    f"than monitor_interval_ms {self.monitor_interval_ms}: live consumers would look "
                    "dead; use at least twice the monitor interval"
                )
        if pop_from not in ("right", "left"):
            raise ConfigError(f"{w}: option 'pop_from' must be 'right' or 'left'; got {pop_from!r}")
        self.pop_from = pop_from
        self._side = pop_from.upper()
        self.processing_key = keyspace.list_processing(self.key, self.consumer)
        self.deliveries_key = keyspace.list_deliveries(self.key)
        self.consumers_key = keyspace.list_consumers(self.key)
        self._ids = itertools.count(1)
        self._inflight: dict[str, tuple[bytes, bool]] = {}
        self._unacked: dict[str, tuple[bytes, bool]] = {}
        self._released: list[tuple[bytes, int, int]] = []

    def _socket_timeout_s(self) -> float:
        return max(10.0, self.block_ms / 1000 + 10.0)

    async def setup(self) -> None:
        """Connect, note this consumer, and put back what a previous run left in its list."""
        if any(h.action == "dead_letter" for h in self.pending_handlers) and self.dead_letter is None:
            raise ConfigError(
                f"{self.kind} source {self.key!r}: a 'dead_letter' pending handler needs dead_letter=..."
            )
        client: Any = await self._open()
        self._take = client.register_script(LIST_TAKE)
        self._settle_script = client.register_script(LIST_SETTLE)
        left = await self._run("setup", lambda: client.lrange(self.processing_key, 0, SCAN_ENTRIES - 1))
        if left:
            done = await self._settle(self.consumer, "+inf", "requeue", list(left))
            log.info("%s source %r: put back %d entries a previous run left", self.kind, self.key, len(done))
        await self._run("setup", lambda: client.zadd(self.consumers_key, {self.consumer: now_ms()}))

    async def poll(self, max_count: int) -> list[SourceMsg]:
        n = min(self.read_count, max_count)
        if n <= 0:
            return []
        client: Any = self.client
        keys = [self.key, self.processing_key, self.deliveries_key, self.consumers_key]
        now = now_ms()
        take = self._take
        values, counts = await self._run(
            "poll", lambda: take(keys=keys, args=[n, self._side, self.consumer, now])
        )
        if not values and self.block_ms:
            value = await self._run(
                "poll",
                lambda: client.blmove(
                    self.key, self.processing_key, self.block_ms / 1000, self._side, "LEFT"
                ),
            )
            if value is None:
                return []
            count = await self._run("poll", lambda: client.hget(self.deliveries_key, value))
            values, counts = [value], [count]
        msgs = []
        now = now_ms()
        for i, value in enumerate(values):
            count = int(counts[i]) if i < len(counts) and counts[i] else 0
            msg_id = str(next(self._ids))
            self._inflight[msg_id] = (value, count > 0)
            msgs.append(SourceMsg(msg_id, value, now, count + 1))
        return msgs

    async def ack(self, ids: Sequence[str]) -> None:
        entries = {i: self._inflight.pop(i) for i in ids if i in self._inflight}
        entries.update(self._unacked)
        if not entries:
            return
        client: Any = self.client
        # MULTI over {key}:processing:<consumer> and {key}:deliveries: an entry leaves the
        # processing list and its delivery count together.
        pipe = client.pipeline(transaction=True)
        for value, counted in entries.values():
            pipe.lrem(self.processing_key, -1, value)
            if counted:
                pipe.hdel(self.deliveries_key, value)
        try:
            await self._run("ack", pipe.execute)
        except Exception:
            self._unacked.update(entries)
            raise
        for i in entries:
            self._unacked.pop(i, None)

    async def release(self, msgs: Sequence[SourceMsg]) -> None:
        """Released entries stay in the processing list; the handlers deal with them."""
        now = now_ms()
        for m in msgs:
            entry = self._inflight.pop(m.id, None)
            if entry is not None:
                self._released.append((entry[0], now, m.deliveries))

    async def monitor(self) -> None:
        """Retry failed acks, note this consumer alive, run the handlers, update gauges."""
        client: Any = self.client
        if self._unacked:
            await self.ack([])
        now = now_ms()
        await self._run("monitor", lambda: client.zadd(self.consumers_key, {self.consumer: now}))
        if self.pending_handlers:
            await self._handle_released(now)
            await self._handle_dead_consumers(now)
        if self.metrics is not None:
            pipe = client.pipeline(transaction=False)
            pipe.llen(self.key)
            pipe.llen(self.processing_key)
            waiting, held = await self._run("monitor", pipe.execute)
            self._gauge("lag", int(waiting))
            self._gauge("pending", int(held))

    async def _handle_released(self, now: int) -> None:
        keep: list[tuple[bytes, int, int]] = []
        plan: dict[str, list[tuple[bytes, int]]] = {}
        for value, released_at, deliveries in self._released:
            handler = pick(self.pending_handlers, now - released_at, deliveries)
            if handler is None:
                keep.append((value, released_at, deliveries))
            else:
                plan.setdefault(handler.action, []).append((value, deliveries))
        self._released = keep
        for action, items in plan.items():
            await self._apply(self.consumer, "+inf", action, items)

    async def _handle_dead_consumers(self, now: int) -> None:
        client: Any = self.client
        min_idle = min(h.min_idle_ms for h in self.pending_handlers)
        stale = await self._run(
            "monitor",
            lambda: client.zrangebyscore(self.consumers_key, "-inf", now - min_idle, withscores=True),
        )
        for raw_name, seen in stale:
            name = decode_id(raw_name)
            if name == self.consumer:
                continue
            processing = keyspace.list_processing(self.key, name)
            values = await self._run("monitor", lambda p=processing: client.lrange(p, 0, SCAN_ENTRIES - 1))  # type: ignore[misc]
            if not values:
                await self._settle(name, str(int(seen)), "drop", [])
                continue
            counts = await self._run("monitor", lambda v=values: client.hmget(self.deliveries_key, v))  # type: ignore[misc]
            plan: dict[str, list[tuple[bytes, int]]] = {}
            for value, count in zip(values, counts, strict=True):
                deliveries = int(count or 0) + 1
                handler = pick(self.pending_handlers, now - int(seen), deliveries)
                if handler is not None:
                    plan.setdefault(handler.action, []).append((value, deliveries))
            for action, items in plan.items():
                await self._apply(name, str(int(seen)), action, items)

    async def _apply(
        self, consumer: str, seen_before: str, action: str, items: list[tuple[bytes, int]]
    ) -> None:
        values = [v for v, _ in items]
        if action == "dead_letter":
            assert self.dead_letter is not None
            now = now_ms()
            await self.dead_letter.put(
                [
                    DeadLetterRecord(
                        topology=self.topology_name,
                        source=self.describe(),
                        source_id=f"{consumer}:{i}",
                        body=v,
                        task=None,
                        error=f"held by consumer {consumer!r} and not acked after {d} deliveries",
                        reason="pending_handler",
                        attempts=d,
                        first_failure_ms=now,
                        last_failure_ms=now,
                    )
                    for i, (v, d) in enumerate(items)
                ]
            )
        mode = "requeue" if action == "claim" else "drop"
        done = await self._settle(consumer, seen_before, mode, values)
        names = {"claim": "msg.claimed", "ack": "msg.force_acked", "delete": "msg.deleted"}
        self._count(names.get(action, "msg.dead_lettered"), len(done))
        if done:
            log.info(
                "%s source %r: %s %d entries of consumer %r", self.kind, self.key, action, len(done), consumer
            )

    async def _settle(self, consumer: str, seen_before: str, mode: str, values: list[bytes]) -> list[bytes]:
        keys = [
            keyspace.list_processing(self.key, consumer),
            self.key,
            self.deliveries_key,
            self.consumers_key,
        ]
        script = self._settle_script
        done = await self._run(
            "monitor", lambda: script(keys=keys, args=[consumer, seen_before, mode, self._side, *values])
        )
        return list(done or [])


def prime(url: str, key: str, bodies: Iterable[bytes | str], *, chunk: int = 1000) -> int:
    """Push ``bodies`` so that the source reads them in order (``LPUSH``; it takes from the
    right). Returns the length of the list."""
    client = redis.Redis.from_url(url)
    length = 0
    try:
        batch: list[bytes | str] = []
        for body in bodies:
            batch.append(body)
            if len(batch) >= chunk:
                length = int(client.lpush(key, *batch))
                batch = []
        if batch:
            length = int(client.lpush(key, *batch))
    finally:
        client.close()
    return length
