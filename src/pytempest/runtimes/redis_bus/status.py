"""``pytempest status``: what runs against a Redis, read from heartbeats and task streams.

For each topology: its instances and workers (live, or stale: the heartbeat expired
without a goodbye), and per task the live workers, the entries waiting in its stream
(``lag``: never delivered; ``pending``: delivered, not acked yet). A task with no live
worker is flagged: its messages wait until a worker starts.
"""

from __future__ import annotations

import json
from typing import Any

from pytempest.errors import SourceError
from pytempest.model.message import now_ms
from pytempest.redis import keyspace
from pytempest.redis.connection import connect, connection_error, connection_problem, is_auth_error, mask_url
from pytempest.runtimes.redis_bus.heartbeat import Member, live_workers_per_task, read_members, text

SCAN_LIMIT = 10_000


async def collect_status(url: str, topology: str | None = None) -> dict[str, Any]:
    """The status of ``topology`` (or of every topology known to that Redis) as plain data."""
    client = connect(url)
    try:
        if topology:
            names = [topology]
        else:
            names = sorted(text(m) for m in await client.smembers(keyspace.TOPOLOGIES))
        topologies = [await _topology(client, name) for name in names]
    except Exception as exc:
        if is_auth_error(exc):
            raise SourceError(
                f"pytempest status: Redis at {mask_url(url)} refused the credentials or the command "
                f"({type(exc).__name__}: {exc}); check the user name and password in the URL and that "
                "the ACL user may read the topology's keys (see docs/security.md)"
            ) from exc
        if connection_problem(exc):
            raise connection_error(url, exc, "pytempest status") from exc
        raise
    finally:
        await client.aclose()
    return {"redis": mask_url(url), "now_ms": now_ms(), "topologies": topologies}


async def _topology(client: Any, name: str) -> dict[str, Any]:
    members = await read_members(client, name)
    instances = [m for m in members if m.kind == "topology"]
    workers = [m for m in members if m.kind == "worker"]
    tasks: list[str] = []
    for m in [*instances, *workers]:
        for t in m.tasks:
            if t not in tasks:
                tasks.append(t)
    if not tasks:
        tasks = await _scan_tasks(client, name)
    counts = live_workers_per_task(members, tasks)
    task_rows = [await _task(client, name, t, counts[t]) for t in tasks]
    snapshots = await client.hgetall(keyspace.status(name))
    metrics: dict[str, Any] = {}
    for inst, raw in snapshots.items():
        try:
            metrics[inst.decode()] = json.loads(raw)
        except ValueError:
            continue
    return {
        "name": name,
        "instances": [_member(m) for m in instances],
        "workers": [_member(m) for m in workers],
        "tasks": task_rows,
        "snapshots": metrics,
    }


async def _scan_tasks(client: Any, topology: str) -> list[str]:
    prefix = keyspace.task_stream(topology, "")
    found: list[str] = []
    seen = 0
    async for key in client.scan_iter(match=prefix + "*", count=1000):
        seen += 1
        found.append(key.decode()[len(prefix) :])
        if seen >= SCAN_LIMIT:
            break
    return sorted(found)


async def _task(client: Any, topology: str, task: str, workers: int) -> dict[str, Any]:
    key = keyspace.task_stream(topology, task)
    row: dict[str, Any] = {"name": task, "stream": key, "workers": workers, "length": 0, "pending": 0,
                           "lag": 0, "consumers": 0}  # fmt: skip
    if not await client.exists(key):
        return row
    row["length"] = await client.xlen(key)
    for group in await client.xinfo_groups(key):
        gname = group.get("name")
        if (gname.decode() if isinstance(gname, bytes) else gname) != keyspace.TASK_GROUP:
            continue
        row["pending"] = int(group.get("pending") or 0)
        lag = group.get("lag")
        row["lag"] = int(lag) if lag is not None else row["length"] - row["pending"]
        row["consumers"] = int(group.get("consumers") or 0)
    return row


def _member(m: Member) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name, "alive": m.alive, "last_seen_ms": m.last_seen_ms}
    out.update(m.fields)
    for key in list(out):
        value = out[key]
        if isinstance(value, str) and value.lstrip("-").isdigit() and key not in ("name", "host"):
            out[key] = int(value)
    return out


def _ago(now: int, ms: int) -> str:
    seconds = max(0.0, (now - ms) / 1000)
    return f"{seconds:.1f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def format_status(status: dict[str, Any]) -> str:
    """The status as text for a terminal."""
    now = status["now_ms"]
    lines: list[str] = []
    if not status["topologies"]:
        return f"no pytempest topology has run against {status['redis']}"
    for top in status["topologies"]:
        lines.append(f"topology {top['name']}  ({status['redis']})")
        live = [i for i in top["instances"] if i["alive"]]
        lines.append(f"  instances: {len(live)} live")
        for i in top["instances"]:
            state = "live " if i["alive"] else "STALE"
            extra = (
                f"host={i.get('host')} pid={i.get('pid')} read={i.get('read', 0)} acked={i.get('acked', 0)} "
                f"outstanding={i.get('outstanding', 0)} cpu_ms={i.get('cpu_ms', 0)}"
                if i["alive"] else "heartbeat expired"
            )  # fmt: skip
            lines.append(f"    {state} {i['name']}  last seen {_ago(now, i['last_seen_ms'])}  {extra}")
        lines.append("  tasks:")
        width = max([len(t["name"]) for t in top["tasks"]] + [4])
        lines.append(f"    {'task':<{width}}  {'workers':>7}  {'waiting':>8}  {'pending':>8}")
        for t in top["tasks"]:
            flag = "  <- no live worker: start `pytempest task`" if t["workers"] == 0 else ""
            lines.append(
                f"    {t['name']:<{width}}  {t['workers']:>7}  {t['lag']:>8}  {t['pending']:>8}{flag}"
            )
        lines.append(f"  workers: {sum(1 for w in top['workers'] if w['alive'])} live")
        for w in top["workers"]:
            state = "live " if w["alive"] else "STALE"
            extra = (
                f"host={w.get('host')} pid={w.get('pid')} tasks={w.get('tasks')} handled={w.get('handled', 0)} "
                f"errors={w.get('errors', 0)} claimed={w.get('claimed', 0)} in_hand={w.get('in_hand', 0)}"
                if w["alive"] else "heartbeat expired (died?); its entries are claimed by others"
            )  # fmt: skip
            lines.append(f"    {state} {w['name']}  last seen {_ago(now, w['last_seen_ms'])}  {extra}")
    return "\n".join(lines)
