"""A Redis sorted set of due members: delayed and scheduled messages.

A member is due when its score is at most "now": the current unix time in milliseconds
by default, or a fixed ``max_score`` (a priority queue). A Lua script takes due members
(lowest score first) into ``{key}:inflight`` with a lease (``lease_ms``) and counts the
delivery in ``{key}:deliveries``; acking removes them. The monitor renews the leases of
members this process holds, then applies the :class:`PendingHandler` s to members whose
lease expired (their holder died or released them) for ``min_idle_ms``: ``claim`` puts
the member back with its original score, ``ack`` and ``delete`` drop it,
``dead_letter`` writes it to the dead letter and drops it.

The member is the body and the id (``SourceMsg.id`` is the member as text; bytes that
are not UTF-8 survive the round trip).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

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
    encode_id,
    log,
    opt_ack_policy,
    opt_handlers,
    opt_int,
    pick,
)
from pytempest.sources.redis_scripts import ZSET_ACK, ZSET_SETTLE, ZSET_TAKE

__all__ = ["RedisSortedSetSource", "prime"]

SCAN_MEMBERS = 1000
DEFAULT_HANDLERS = (PendingHandler("claim", min_idle_ms=0),)


class RedisSortedSetSource(RedisSourceBase):
    """Reads due members of the sorted set ``key``.

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://`` for TLS.
        key: the sorted set.
        max_score: members with a score up to this are due; ``None`` (default): the
            current unix time in milliseconds.
        lease_ms: how long a member taken by a consumer that stops renewing its lease
            (it died) stays away (default 60 000; must exceed twice
            ``monitor_interval_ms``, which renews the leases).
        read_count: at most this many members per poll (default 1000).
        ack_policy: default ``batch(1000, ack_interval_ms=100)``.
        poll_interval_ms: the engine's pause between polls that returned members
            (default 0).
        max_backoff_ms: the engine's longest pause after an empty poll (default 100):
            how late a member that falls due can be picked up.
        monitor_interval_ms: how often leases are renewed and handlers run (default 10 000).
        pending_handlers: applied to expired leases; ``min_idle_ms`` counts from the
            expiry. Default ``[PendingHandler("claim", min_idle_ms=0)]``.
        dead_letter: where the ``dead_letter`` handler writes; when not given, the
            engine binds the topology's dead letter.
    """

    kind: ClassVar[str] = "redis_sorted_set"
    config_aliases: ClassVar[dict[str, str]] = {**TEMPEST_ALIASES, "lease": "lease_ms"}

    def __init__(
        self,
        url: str,
        key: str,
        *,
        max_score: float | None = None,
        lease_ms: int = 60_000,
        read_count: int = 1000,
        ack_policy: AckPolicy | str | None = None,
        poll_interval_ms: int = 0,
        max_backoff_ms: int = 100,
        monitor_interval_ms: int = 10_000,
        pending_handlers: Sequence[PendingHandler | Mapping[str, Any]] | None = None,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        super().__init__(url, key, dead_letter, locals())
        w = self.kind
        if max_score is not None and (isinstance(max_score, bool) or not isinstance(max_score, int | float)):
            raise ConfigError(f"{w}: option 'max_score' must be a number or None; got {max_score!r}")
        self.max_score = max_score
        self.lease_ms = opt_int(w, "lease_ms", lease_ms, 1)
        self.read_count = opt_int(w, "read_count", read_count, 1)
        self.ack_policy = opt_ack_policy(w, ack_policy, AckPolicy.batch(1000, ack_interval_ms=100))
        if self.ack_policy.kind == "none":
            raise ConfigError(
                f"{w}: option 'ack_policy' none would keep every member leased; use individual or batch(n)"
            )
        self.poll_interval_ms = opt_int(w, "poll_interval_ms", poll_interval_ms)
        self.max_backoff_ms = opt_int(w, "max_backoff_ms", max_backoff_ms)
        self.monitor_interval_ms = opt_int(w, "monitor_interval_ms", monitor_interval_ms)
        if self.monitor_interval_ms == 0 or self.lease_ms < 2 * self.monitor_interval_ms:
            raise ConfigError(
                f"{w}: option 'lease_ms' ({self.lease_ms}) must be at least twice 'monitor_interval_ms' "
                f"({self.monitor_interval_ms}, which must be > 0): the monitor renews the leases"
            )
        self.pending_handlers = opt_handlers(w, pending_handlers, DEFAULT_HANDLERS)
        self.inflight_key = keyspace.zset_inflight(self.key)
        self.deliveries_key = keyspace.zset_deliveries(self.key)
        self.scores_key = keyspace.zset_scores(self.key)
        self._keys = [self.key, self.inflight_key, self.deliveries_key, self.scores_key]
        self._inflight: set[str] = set()
        self._unacked: set[str] = set()

    async def setup(self) -> None:
        """Connect and register the scripts."""
        if any(h.action == "dead_letter" for h in self.pending_handlers) and self.dead_letter is None:
            raise ConfigError(
                f"{self.kind} source {self.key!r}: a 'dead_letter' pending handler needs dead_letter=..."
            )
        client: Any = await self._open()
        self._take = client.register_script(ZSET_TAKE)
        self._ack_script = client.register_script(ZSET_ACK)
        self._settle_script = client.register_script(ZSET_SETTLE)

    async def poll(self, max_count: int) -> list[SourceMsg]:
        n = min(self.read_count, max_count)
        if n <= 0:
            return []
        now = now_ms()
        due = now if self.max_score is None else self.max_score
        take = self._take
        flat = await self._run("poll", lambda: take(keys=self._keys, args=[due, n, now + self.lease_ms]))
        msgs = []
        for i in range(0, len(flat or ()), 2):
            member = flat[i]
            msg_id = decode_id(member)
            msgs.append(SourceMsg(msg_id, member, now, int(flat[i + 1])))
        self._inflight.update(m.id for m in msgs)
        return msgs

    async def ack(self, ids: Sequence[str]) -> None:
        todo = set(ids) | self._unacked
        if not todo:
            return
        script = self._ack_script
        members = [encode_id(i) for i in todo]
        try:
            await self._run("ack", lambda: script(keys=self._keys[1:], args=members))
        except Exception:
            self._unacked.update(ids)
            raise
        self._inflight.difference_update(todo)
        self._unacked.difference_update(todo)

    async def release(self, msgs: Sequence[SourceMsg]) -> None:
        """Released members keep their lease until it expires; the handlers take over then."""
        self._inflight.difference_update(m.id for m in msgs)

    async def monitor(self) -> None:
        """Retry failed acks, renew own leases, handle expired ones, update gauges."""
        client: Any = self.client
        if self._unacked:
            await self.ack([])
        now = now_ms()
        held = [encode_id(i) for i in self._inflight | self._unacked]
        for i in range(0, len(held), 1000):
            chunk = held[i : i + 1000]
            mapping = dict.fromkeys(chunk, now + self.lease_ms)
            await self._run("monitor", lambda m=mapping: client.zadd(self.inflight_key, m, xx=True))  # type: ignore[misc]
        if self.pending_handlers:
            await self._handle_expired(now)
        if self.metrics is not None:
            pipe = client.pipeline(transaction=False)
            pipe.zcount(self.key, "-inf", now if self.max_score is None else self.max_score)
            pipe.zcard(self.inflight_key)
            due, leased = await self._run("monitor", pipe.execute)
            self._gauge("lag", int(due))
            self._gauge("pending", int(leased))

    async def _handle_expired(self, now: int) -> None:
        client: Any = self.client
        min_idle = min(h.min_idle_ms for h in self.pending_handlers)
        cutoff = now - min_idle
        expired = await self._run(
            "monitor",
            lambda: client.zrangebyscore(
                self.inflight_key, "-inf", cutoff, start=0, num=SCAN_MEMBERS, withscores=True
            ),
        )
        busy = self._inflight | self._unacked
        expired = [(m, s) for m, s in expired if decode_id(m) not in busy]
        if not expired:
            return
        counts = await self._run(
            "monitor", lambda: client.hmget(self.deliveries_key, [m for m, _ in expired])
        )
        plan: dict[str, list[tuple[bytes, int]]] = {}
        for (member, expiry), count in zip(expired, counts, strict=True):
            handler = pick(self.pending_handlers, now - int(expiry), int(count or 1))
            if handler is not None:
                plan.setdefault(handler.action, []).append((member, int(count or 1)))
        for action, items in plan.items():
            await self._apply(action, items, cutoff)

    async def _apply(self, action: str, items: list[tuple[bytes, int]], cutoff: int) -> None:
        if action == "dead_letter":
            assert self.dead_letter is not None
            now = now_ms()
            await self.dead_letter.put(
                [
                    DeadLetterRecord(
                        topology=self.topology_name,
                        source=self.describe(),
                        source_id=decode_id(m),
                        body=m,
                        task=None,
                        error=f"lease expired and not acked after {d} deliveries",
                        reason="pending_handler",
                        attempts=d,
                        first_failure_ms=now,
                        last_failure_ms=now,
                    )
                    for m, d in items
                ]
            )
        script = self._settle_script
        mode = "requeue" if action == "claim" else "drop"
        members = [m for m, _ in items]
        done = await self._run("monitor", lambda: script(keys=self._keys, args=[cutoff, mode, *members]))
        names = {"claim": "msg.claimed", "ack": "msg.force_acked", "delete": "msg.deleted"}
        self._count(names.get(action, "msg.dead_lettered"), len(done or ()))
        if done:
            log.info(
                "%s source %r: %s %d members with expired leases", self.kind, self.key, action, len(done)
            )


def prime(
    url: str, key: str, members: Mapping[bytes | str, float] | Iterable[bytes | str], *, score: float = 0
) -> int:
    """Add members (a mapping member -> score, or members all with ``score``: due at once
    with the default 0). Returns how many were new."""
    mapping = dict(members) if isinstance(members, Mapping) else dict.fromkeys(members, score)
    client: Any = redis.Redis.from_url(url)
    try:
        added = 0
        items = list(mapping.items())
        for i in range(0, len(items), 1000):
            added += int(client.zadd(key, dict(items[i : i + 1000])))
        return added
    finally:
        client.close()
