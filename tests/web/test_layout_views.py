"""The pure parts of the dashboard: graph layout, merging instances, quantiles."""

from __future__ import annotations

from typing import Any

from pytempest.runtimes.status_publisher import bucket_quantile
from pytempest.web.layout import layout
from pytempest.web.views import merge_history, topology_state

BOOK = ["T1", "T2", "T3", "T4"]
BOOK_EDGES = [["T1", "T2"], ["T1", "T3"], ["T2", "T4"], ["T3", "T4"]]


def test_layout_puts_every_edge_left_to_right() -> None:
    names = ["a", "b", "c", "d", "e"]
    edges = [["a", "b"], ["b", "c"], ["a", "c"], ["c", "d"], ["a", "e"]]
    out = layout(names, edges)
    nodes = {n["name"]: n for n in out["nodes"]}
    assert [n["name"] for n in out["nodes"]] == names
    assert {n: nodes[n]["column"] for n in names} == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 1}
    for e in out["edges"]:
        assert nodes[e["from"]]["x"] + nodes[e["from"]]["w"] < nodes[e["to"]]["x"], e
        assert e["path"].startswith("M")
    for n in nodes.values():  # inside the picture, no overlap in a column
        assert n["x"] >= 0 and n["x"] + n["w"] <= out["width"] and n["y"] + n["h"] <= out["height"]
    b, e = nodes["b"], nodes["e"]
    assert abs(b["y"] - e["y"]) >= b["h"]


def test_layout_ignores_edges_to_unknown_tasks_and_handles_one_task() -> None:
    out = layout(["only"], [["only", "ghost"]])
    assert out["edges"] == [] and len(out["nodes"]) == 1
    assert layout([], [])["nodes"] == []


def test_bucket_quantile_is_the_mean_of_its_bucket() -> None:
    assert bucket_quantile([(0, 0.0), (0, 0.0)], 0.5) is None
    buckets = [(98, 98 * 0.02), (1, 3.0), (1, 40.0)]
    assert bucket_quantile(buckets, 0.5) == 0.02
    assert bucket_quantile(buckets, 0.99) == 3.0
    assert bucket_quantile(buckets, 1.0) == 40.0


def _snap(
    instance: str, read_rate: float, p99: float, handled: int, points: list[list[Any]]
) -> dict[str, Any]:
    return {
        "instance": instance, "written_ms": 1000, "final": False, "mode": "distributed", "interval_ms": 1000,
        "settings": {"max_pending": 100}, "graph": {"tasks": [{"name": n, "kind": "inline"} for n in BOOK],
                                                    "edges": BOOK_EDGES},
        "totals": {"read": handled, "acked": handled, "inflight": 5, "source_lag": 7, "source_pending": 3},
        "rates": {"read": read_rate, "acked": read_rate, "failed": 0, "deadlettered": 0},
        "latency": {"p50_ms": 1.0, "p99_ms": p99},
        "tasks": [{"name": n, "handled": handled, "errors": 1, "rate": read_rate, "outflow_rate": 2 * read_rate,
                   "p50_ms": 0.5, "p99_ms": p99, "error_rate": 0.01, "queue_depth": 2} for n in BOOK],
        "history": {"fields": ["ms", "read", "acked", "failed", "deadlettered", "latency_p50_ms", "latency_p99_ms"],
                    "points": points},
        "errors": [{"ms": handled, "task": "T2", "source_id": instance}],
    }  # fmt: skip


def test_two_instances_add_up_and_take_the_worst_quantile() -> None:
    a = _snap("a", 10.0, 5.0, 100, [[1000, 10, 10, 0, 0, 1.0, 5.0], [2000, 12, 12, 0, 0, None, None]])
    b = _snap("b", 30.0, 9.0, 300, [[1200, 30, 30, 0, 0, 2.0, 9.0]])
    status = {
        "instances": [
            {"name": "a", "alive": True},
            {"name": "b", "alive": True},
            {"name": "c", "alive": False},
        ],
        "workers": [{"name": "w", "alive": True}],
        "tasks": [{"name": n, "workers": 2, "lag": 4, "pending": 1} for n in BOOK],
        "snapshots": {},
    }
    state = topology_state("book", [a, b], status)
    assert state["status"] == "running" and state["mode"] == "distributed"
    assert state["rates"]["read"] == 40.0
    assert state["latency"]["p99_ms"] == 9.0
    assert state["totals"]["read"] == 400 and state["totals"]["inflight"] == 10
    assert state["totals"]["source_lag"] == 7  # one shared consumer group: not added up
    assert state["settings"]["max_pending_total"] == 200
    t2 = next(t for t in state["tasks"] if t["name"] == "T2")
    assert t2["handled"] == 400 and t2["rate"] == 40.0 and t2["p99_ms"] == 9.0
    assert t2["workers"] == 2 and t2["stream_waiting"] == 4 and t2["stream_pending"] == 1
    edge = next(e for e in state["graph"]["edges"] if e["from"] == "T1" and e["to"] == "T2")
    assert edge["rate"] == 80.0
    assert [p[0] for p in state["history"]["points"]] == [1000, 2000]
    assert state["history"]["points"][0][1:] == [40, 40, 0, 0, 2.0, 9.0]
    assert [e["instance"] for e in state["errors"]] == ["b", "a"]
    assert [i["name"] for i in state["instances"]] == ["a", "b", "c"]


def test_a_stopped_topology_shows_its_last_counts_and_no_rates() -> None:
    final = dict(_snap("a", 10.0, 5.0, 100, []), final=True)
    state = topology_state(
        "book", [final], {"instances": [], "workers": [], "tasks": [], "snapshots": {"a": {}}}
    )
    assert state["status"] == "stopped"
    assert state["totals"]["read"] == 100 and state["rates"]["read"] == 0.0
    assert all(t["rate"] == 0.0 for t in state["tasks"])
    stale = topology_state("book", [], {"instances": [{"name": "a", "alive": False}], "workers": [], "tasks": [],
                                        "snapshots": {}})  # fmt: skip
    assert stale["status"] == "stale"
    in_process = topology_state("book", [_snap("a", 1.0, 1.0, 1, [])], None, running=False)
    assert in_process["status"] == "stopped"


def test_history_keeps_one_point_per_interval_and_instance() -> None:
    snap = {"interval_ms": 1000, "history": {"fields": ["ms", "read", "acked", "failed", "deadlettered",
                                                       "latency_p50_ms", "latency_p99_ms"],
                                            "points": [[1000, 5, 5, 0, 0, 1, 1], [1900, 7, 7, 0, 0, 2, 2]]}}  # fmt: skip
    assert merge_history([snap])["points"] == [[1000, 7, 7, 0, 0, 2, 2]]
