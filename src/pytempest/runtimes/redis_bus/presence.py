"""What a topology instance publishes about itself besides its heartbeat: its metric
snapshot (for ``pytempest status`` and dashboards) and its census of live workers (a
task with none is logged, never waited on silently) and of each task stream's backlog."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from pytempest.metrics.registry import Registry
from pytempest.model.message import now_ms
from pytempest.redis import keyspace
from pytempest.runtimes.redis_bus.heartbeat import MEMBER_RETAIN_MS, live_workers_per_task, read_members

log = logging.getLogger("pytempest.bus")


class Census:
    """Counts live workers per task and warns, at most every ``warn_every_ms`` per task,
    about a task that has none; reads each task stream's backlog (:func:`read_backlog`)."""

    def __init__(self, topology: str, tasks: list[str], warn_every_ms: int) -> None:
        self.topology = topology
        self.tasks = tasks
        self.warn_every_s = warn_every_ms / 1000
        self.counts: dict[str, int] = dict.fromkeys(tasks, 0)
        self.backlog: dict[str, int] = dict.fromkeys(tasks, 0)
        self._last_warn: dict[str, float] = {}

    async def take(self, client: Any) -> dict[str, int]:
        """Read the members and the task streams; update :attr:`counts` and :attr:`backlog`."""
        members = await read_members(client, self.topology)
        self.backlog = await read_backlog(client, self.topology, self.tasks)
        self.counts = live_workers_per_task(members, self.tasks)
        now = asyncio.get_running_loop().time()
        for task, n in self.counts.items():
            if n:
                self._last_warn.pop(task, None)
                continue
            last = self._last_warn.get(task)
            if last is None or now - last >= self.warn_every_s:
                self._last_warn[task] = now
                log.warning(
                    "topology %s: no live worker for task %s; its task messages wait in %s. "
                    "Start one: pytempest task <target> %s --redis <url>",
                    self.topology, task, keyspace.task_stream(self.topology, task), task,
                )  # fmt: skip
        return self.counts


async def read_backlog(client: Any, topology: str, tasks: list[str]) -> dict[str, int]:
    """Per task, the entries of its stream the workers have not finished: not yet delivered
    to their consumer group (``XINFO GROUPS`` lag) plus delivered and not acked (pending).

    Where Redis cannot say the lag (it reports nil after deletions past the group's
    position), the stream's length is used: workers delete an entry when they ack it, so
    what is left is undelivered or pending. A stream or group that does not exist (yet)
    counts 0.
    """
    pipe = client.pipeline(transaction=False)
    for task in tasks:
        key = keyspace.task_stream(topology, task)
        pipe.xlen(key)
        pipe.xinfo_groups(key)
    replies = await pipe.execute(raise_on_error=False)
    out: dict[str, int] = {}
    for i, task in enumerate(tasks):
        length, groups = replies[2 * i], replies[2 * i + 1]
        out[task] = 0
        if isinstance(length, Exception) or isinstance(groups, Exception):
            continue
        for group in groups:
            name = group.get("name")
            if (name.decode() if isinstance(name, bytes) else name) != keyspace.TASK_GROUP:
                continue
            lag = group.get("lag")
            out[task] = int(lag) + int(group.get("pending") or 0) if lag is not None else int(length)
    return out


async def publish_status(client: Any, topology: str, instance: str, registry: Registry, final: bool) -> None:
    """Write ``instance``'s metric snapshot to ``{pt:<topology>}:status``."""
    snapshot = {"instance": instance, "written_ms": now_ms(), "final": final, "metrics": registry.snapshot()}
    await client.hset(keyspace.status(topology), instance, json.dumps(snapshot))


async def prune_status(client: Any, topology: str) -> None:
    """Forget the snapshots of instances that last wrote more than a day ago."""
    key = keyspace.status(topology)
    cutoff = now_ms() - MEMBER_RETAIN_MS
    old = []
    for instance, raw in (await client.hgetall(key)).items():
        try:
            written = int(json.loads(raw).get("written_ms", 0))
        except (ValueError, AttributeError, TypeError):
            written = 0
        if written < cutoff:
            old.append(instance)
    if old:
        await client.hdel(key, *old)
