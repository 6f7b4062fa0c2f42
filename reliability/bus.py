"""Reading the distributed runtime's keys: workers, the entries they hold, final metrics."""

from __future__ import annotations

import json

import redis

from pytempest.redis import keyspace
from pytempest.runtimes.redis_bus import wire
from pytempest.runtimes.redis_bus.heartbeat import heartbeat_key

TASKS = ("decode", "work", "sink")


def worker_name(client: redis.Redis, topology: str, pid: int) -> str | None:
    """The consumer name of the live worker process ``pid``."""
    for member in client.zrange(keyspace.members(topology), 0, -1):
        kind, _, name = member.decode().partition(":")
        if (
            kind == "worker"
            and client.hget(heartbeat_key(topology, "worker", name), "pid") == str(pid).encode()
        ):
            return name
    return None


def held(client: redis.Redis, topology: str, consumer: str) -> dict[str, list[str]]:
    """Task stream entry ids pending for ``consumer``, per task."""
    out: dict[str, list[str]] = {}
    for task in TASKS:
        key = keyspace.task_stream(topology, task)
        if not client.exists(key):
            continue
        rows = client.xpending_range(key, keyspace.TASK_GROUP, "-", "+", 10_000, consumer)
        if rows:
            out[task] = [r["message_id"].decode() for r in rows]
    return out


def task_bodies(client: redis.Redis, topology: str, task: str, ids: list[str]) -> list[bytes]:
    """The task messages (bodies) that the given entries of ``task``'s stream carry."""
    key = keyspace.task_stream(topology, task)
    out: list[bytes] = []
    for entry_id in ids:
        for _, fields in client.xrange(key, entry_id, entry_id):
            _, _, items = wire.decode_tasks(fields, key)
            for item in items:
                out.extend(item[5])
    return out


def task_messages(client: redis.Redis, topology: str, entries: dict[str, list[str]]) -> dict[str, int]:
    """How many task messages (bodies) the given task stream entries carry, per task."""
    return {task: len(task_bodies(client, topology, task, ids)) for task, ids in entries.items()}


def final_metrics(client: redis.Redis, topology: str) -> dict[str, float]:
    """The metric snapshot of the (last) topology instance that stopped cleanly."""
    out: dict[str, float] = {}
    for raw in client.hvals(keyspace.status(topology)):
        snap = json.loads(raw)
        if snap.get("final"):
            out = snap["metrics"]
    return out
