"""Heartbeats: how topology instances and workers see each other, through Redis only.

Every process of a distributed topology keeps a small hash with a TTL
(``{pt:<topology>}:hb:<kind>:<name>``: host, pid, tasks, start time, last beat, counts)
and its score in ``{pt:<topology>}:members`` (last beat, ms). A member whose hash is
gone died without saying goodbye: it is *stale*. A process that stops cleanly deletes
both. The commands are queued on a pipeline given by the caller so the same code serves
the asyncio clients (topology, status) and the worker's heartbeat thread (sync client).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any, Literal

from pytempest.redis import keyspace

Kind = Literal["topology", "worker"]
MEMBER_RETAIN_MS = 24 * 3600 * 1000
"""Stale members are listed for a day, then forgotten."""


def make_name() -> str:
    """A process name unique across machines and restarts: ``<host>-<pid>-<4 hex>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def heartbeat_key(topology: str, kind: Kind, name: str) -> str:
    """The heartbeat hash of one process."""
    if kind == "topology":
        return keyspace.topology_heartbeat(topology, name)
    return keyspace.worker_heartbeat(topology, name)


def queue_beat(
    pipe: Any, topology: str, kind: Kind, name: str, fields: dict[str, str | int], ttl_ms: int, now: int
) -> None:
    """Queue one heartbeat on ``pipe`` (a redis-py pipeline, sync or asyncio)."""
    key = heartbeat_key(topology, kind, name)
    pipe.hset(key, mapping={**fields, "kind": kind, "name": name, "last_seen_ms": now})
    pipe.pexpire(key, ttl_ms)
    members = keyspace.members(topology)
    pipe.zadd(members, {f"{kind}:{name}": now})
    pipe.zremrangebyscore(members, 0, now - MEMBER_RETAIN_MS)


def queue_goodbye(pipe: Any, topology: str, kind: Kind, name: str) -> None:
    """Queue what a cleanly stopping process removes: its heartbeat and membership."""
    pipe.delete(heartbeat_key(topology, kind, name))
    pipe.zrem(keyspace.members(topology), f"{kind}:{name}")


def base_fields(topology: str, tasks: list[str], started_ms: int) -> dict[str, str | int]:
    """The fields every heartbeat carries."""
    return {
        "topology": topology,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "tasks": ",".join(tasks),
        "started_ms": started_ms,
    }


def cpu_ms() -> int:
    """CPU time (user + system) this process used so far, in ms."""
    t = os.times()
    return int((t.user + t.system) * 1000)


@dataclass(slots=True)
class Member:
    """One process as read from Redis; ``fields`` is empty when it is stale."""

    kind: str
    name: str
    last_seen_ms: int
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        """Its heartbeat hash still exists."""
        return bool(self.fields)

    @property
    def tasks(self) -> list[str]:
        """The tasks it runs (a worker) or declares (a topology)."""
        raw = self.fields.get("tasks", "")
        return [t for t in raw.split(",") if t]

    def number(self, key: str) -> int:
        """An integer field, 0 when missing."""
        try:
            return int(self.fields.get(key, "0"))
        except ValueError:
            return 0


async def read_members(client: Any, topology: str) -> list[Member]:
    """Every process of ``topology`` with its heartbeat fields (asyncio client)."""
    raw = await client.zrange(keyspace.members(topology), 0, -1, withscores=True)
    out: list[Member] = []
    parsed: list[tuple[str, str, int]] = []
    for member, score in raw:
        kind, _, name = text(member).partition(":")
        if kind in ("topology", "worker") and name:
            parsed.append((kind, name, int(score)))
    if not parsed:
        return out
    pipe = client.pipeline(transaction=False)
    for kind, name, _ in parsed:
        pipe.hgetall(heartbeat_key(topology, kind, name))  # type: ignore[arg-type]
    hashes = await pipe.execute()
    for (kind, name, score), h in zip(parsed, hashes, strict=True):
        fields = {text(k): text(v) for k, v in (h or {}).items()}
        out.append(Member(kind, name, score, fields))
    return out


def live_workers_per_task(members: list[Member], tasks: list[str]) -> dict[str, int]:
    """How many live workers serve each task."""
    counts = dict.fromkeys(tasks, 0)
    for m in members:
        if m.kind == "worker" and m.alive:
            for t in m.tasks:
                if t in counts:
                    counts[t] += 1
    return counts


def text(value: Any) -> str:
    """A Redis reply value as ``str``."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
