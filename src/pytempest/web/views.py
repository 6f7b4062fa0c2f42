"""What the dashboard shows, computed from published data only.

Inputs are the status snapshots of a topology's instances
(:mod:`pytempest.runtimes.status_publisher`) and, in the distributed runtime, what
``pytempest status`` reads (heartbeats, workers, task streams:
:func:`pytempest.runtimes.redis_bus.status.collect_status`). Several instances of one
topology are merged: counts and rates add up, quantiles take the worst instance, chart
points are matched by interval. Pure functions: easy to test, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pytempest.web.layout import layout

MAX_ERRORS = 100
RATE_KEYS = ("read", "acked", "failed", "deadlettered")
SUMMED_TOTALS = ("read", "acked", "completed", "errors", "timeouts", "failed", "deadlettered", "dropped",
                 "retried", "inflight", "retry_waiting")  # fmt: skip
SHARED_TOTALS = ("source_lag", "source_pending")
"""Gauges of a shared source consumer group: every instance sees the same value."""


def _max(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def pick_snapshots(
    snapshots: Sequence[dict[str, Any]], live: set[str] | None
) -> tuple[list[dict[str, Any]], bool]:
    """The snapshots that describe the topology now: those of live instances (``live``:
    names with a heartbeat; None in process: every snapshot not marked final). When none
    is live, the newest one alone, and False (the topology is not running)."""
    current = [s for s in snapshots if not s.get("final") and (live is None or s.get("instance") in live)]
    if current:
        return current, True
    newest = sorted(snapshots, key=lambda s: s.get("written_ms", 0))[-1:]
    return newest, False


def merge_history(snapshots: Sequence[dict[str, Any]], keep: int = 300) -> dict[str, Any]:
    """One chart history from several instances: points in the same interval add up
    (rates) or take the worst (latencies)."""
    fields: list[str] = []
    by_slot: dict[int, list[Any]] = {}
    for snap in snapshots:
        history = snap.get("history") or {}
        fields = fields or list(history.get("fields") or [])
        interval = max(1, int(snap.get("interval_ms") or 1000))
        own: dict[int, list[Any]] = {}
        for point in history.get("points") or []:
            own[int(point[0]) // interval] = list(point)  # one point per interval and instance
        for slot, point in own.items():
            have = by_slot.get(slot)
            if have is None:
                by_slot[slot] = [slot * interval, *point[1:]]
                continue
            for i in range(1, len(point)):
                if fields[i].startswith("latency"):
                    have[i] = _max([have[i], point[i]])
                else:
                    have[i] = round((have[i] or 0) + (point[i] or 0), 2)
    points = [by_slot[k] for k in sorted(by_slot)][-keep:]
    return {"fields": fields, "points": points}


def _merge_tasks(snapshots: Sequence[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {n: {"name": n} for n in names}
    for snap in snapshots:
        for r in snap.get("tasks") or []:
            row = rows.get(r["name"])
            if row is None:
                continue
            for key in ("handled", "skipped", "errors", "inflow", "outflow", "queue_depth"):
                row[key] = row.get(key, 0) + (r.get(key) or 0)
            for key in ("rate", "outflow_rate"):
                row[key] = round(row.get(key, 0.0) + (r.get(key) or 0.0), 2)
            for key in ("p50_ms", "p99_ms", "error_rate"):
                row[key] = _max([row.get(key), r.get(key)])
            if r.get("workers") is not None:
                row["workers"] = (row.get("workers") or 0) + r["workers"]
    return [rows[n] for n in names]


def _graph(snapshots: Sequence[dict[str, Any]], status: dict[str, Any] | None) -> tuple[list[str], list[list[str]], list[dict[str, Any]]]:  # fmt: skip
    for snap in snapshots:
        graph = snap.get("graph") or {}
        tasks = graph.get("tasks") or []
        if tasks:
            return [t["name"] for t in tasks], [list(e) for e in graph.get("edges") or []], tasks
    names = [t["name"] for t in (status or {}).get("tasks", [])]
    return names, [], [{"name": n} for n in names]


def topology_state(
    name: str,
    snapshots: Sequence[dict[str, Any]],
    status: dict[str, Any] | None = None,
    *,
    running: bool | None = None,
) -> dict[str, Any]:
    """Everything the topology page shows (the overview uses a part of it).

    ``status`` is a topology of ``collect_status`` (distributed runtime) or None (in
    process); ``running`` overrides the state of an in-process topology.
    """
    live: set[str] | None = None
    if status is not None:
        live = {i["name"] for i in status.get("instances", []) if i.get("alive")}
    used, current = pick_snapshots(snapshots, live) if snapshots else ([], False)
    state = _state(status, current, bool(snapshots), running)
    names, edges, static = _graph(used, status)
    tasks = _merge_tasks(used, names)
    streams = {t["name"]: t for t in (status or {}).get("tasks", [])}
    for row, info in zip(tasks, static, strict=True):
        row["kind"] = info.get("kind")
        stream = streams.get(row["name"])
        if stream is not None:
            row["workers"] = stream.get("workers", 0)
            row["stream_waiting"] = stream.get("lag", 0)
            row["stream_pending"] = stream.get("pending", 0)
    totals: dict[str, Any] = {
        k: sum(int((s.get("totals") or {}).get(k) or 0) for s in used) for k in SUMMED_TOTALS
    }
    for k in SHARED_TOTALS:
        totals[k] = _max((s.get("totals") or {}).get(k) for s in used)
    rates = {k: round(sum((s.get("rates") or {}).get(k) or 0 for s in used), 2) if current else 0.0
             for k in RATE_KEYS}  # fmt: skip
    if not current:
        for row in tasks:
            row["rate"] = row["outflow_rate"] = 0.0
    first = used[0] if used else {}
    settings = dict(first.get("settings") or {})
    settings["max_pending_total"] = sum(int((s.get("settings") or {}).get("max_pending") or 0) for s in used)
    errors = [dict(e, instance=s.get("instance")) for s in used for e in s.get("errors") or []]
    errors.sort(key=lambda e: e.get("ms", 0), reverse=True)
    return {
        "name": name,
        "status": state,
        "mode": first.get("mode") or ("distributed" if status is not None else None),
        "written_ms": _max(s.get("written_ms") for s in used),
        "healthy": all(s.get("healthy", True) for s in used),
        "settings": settings,
        "source": first.get("source"),
        "dead_letter": first.get("dead_letter"),
        "totals": totals,
        "rates": rates,
        "latency": {
            k: _max((s.get("latency") or {}).get(k) for s in used) if current else None
            for k in ("p50_ms", "p99_ms")
        },
        "tasks": tasks,
        "graph": _picture(layout(names, edges), tasks),
        "history": merge_history(used),
        "errors": errors[:MAX_ERRORS],
        "instances": _instances(status, snapshots),
        "workers": (status or {}).get("workers", []),
    }


def _state(status: dict[str, Any] | None, current: bool, any_snapshot: bool, running: bool | None) -> str:
    if running is not None:
        return "running" if running and current else "stopped"
    if status is None:
        return "running" if current else ("stopped" if any_snapshot else "unknown")
    instances = status.get("instances", [])
    if any(i.get("alive") for i in instances):
        return "running"
    if instances:
        return "stale"
    if any_snapshot or status.get("snapshots"):
        return "stopped"
    if any(w.get("alive") for w in status.get("workers", [])):
        return "waiting"
    return "unknown"


def _picture(graph: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    by_name = {t["name"]: t for t in tasks}
    for node in graph["nodes"]:
        row = by_name.get(node["name"], {})
        node.update(
            {k: row.get(k) for k in ("rate", "errors", "error_rate", "p99_ms", "workers", "queue_depth")}
        )
    for edge in graph["edges"]:
        edge["rate"] = by_name.get(edge["from"], {}).get("outflow_rate")
    return graph


def _instances(status: dict[str, Any] | None, snapshots: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {s.get("instance"): s for s in snapshots}
    rows = []
    if status is not None:
        for inst in status.get("instances", []):
            snap = by_name.pop(inst["name"], {})
            rows.append(_instance_row(inst["name"], inst.get("alive", False), inst, snap))
    for name, snap in by_name.items():
        rows.append(_instance_row(str(name), not snap.get("final") and status is None, {}, snap))
    return rows


def _instance_row(name: str, alive: bool, beat: dict[str, Any], snap: dict[str, Any]) -> dict[str, Any]:
    totals = snap.get("totals") or {}
    return {
        "name": name,
        "alive": alive,
        "final": bool(snap.get("final")),
        "host": beat.get("host") or snap.get("host"),
        "pid": beat.get("pid") or snap.get("pid"),
        "last_seen_ms": beat.get("last_seen_ms") or snap.get("written_ms"),
        "read": totals.get("read", beat.get("read")),
        "acked": totals.get("acked", beat.get("acked")),
        "inflight": totals.get("inflight"),
        "max_pending": (snap.get("settings") or {}).get("max_pending"),
    }


def overview_row(state: dict[str, Any], deadletters: int | None) -> dict[str, Any]:
    """One row of the overview from :func:`topology_state`."""
    instances = state["instances"]
    workers = state["workers"]
    return {
        "name": state["name"],
        "status": state["status"],
        "mode": state["mode"],
        "healthy": state["healthy"],
        "instances_live": sum(1 for i in instances if i["alive"]),
        "instances_total": len(instances),
        "workers_live": sum(1 for w in workers if w.get("alive")),
        "workers_by_task": {t["name"]: t.get("workers") for t in state["tasks"]},
        "rates": state["rates"],
        "totals": state["totals"],
        "inflight": state["totals"]["inflight"],
        "max_pending": state["settings"].get("max_pending_total") or None,
        "source_lag": state["totals"]["source_lag"],
        "source_pending": state["totals"]["source_pending"],
        "deadletters": deadletters,
        "written_ms": state["written_ms"],
    }
