"""``pytempest run --dashboard``: the JSON API over a real topology in a real process.

The topology (``dash_app.py``) reads a Redis stream and dead-letters to a Redis stream;
bodies starting with ``bad`` fail in ``parse``, are retried once, then dead-lettered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .helpers import APP, csrf_of, http, setup, wait_for


def _topology(base: str, name: str) -> dict[str, Any]:
    status, _, data = http("GET", f"{base}api/topologies/{name}")
    assert status == 200, data
    return data  # type: ignore[no-any-return]


def test_run_dashboard_serves_the_running_topology(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    with setup(tmp_path, redis_url, key_prefix, PT_SLEEP_MS="1") as s:
        run = s.start("run", APP, "--dashboard", "--dashboard-port", "0", "--quiet")
        base = run.dashboard_url()
        assert base.startswith("http://127.0.0.1:")
        s.prime([b"m%d" % i for i in range(200)] + [b"bad-1", b"bad-2"])

        # The overview lists this topology, running in process, with its graph's tasks.
        status, headers, overview = http("GET", base + "api/overview")
        assert status == 200, overview
        assert overview["where"] == "in process"
        [row] = overview["topologies"]
        assert row["name"] == s.name and row["status"] == "running" and row["mode"] == "in_process"
        assert set(row["workers_by_task"]) == {"parse", "enrich", "audit", "store"}
        assert row["max_pending"] == 200
        assert "default-src 'none'" in headers["content-security-policy"]

        # Counts grow to what was primed; both bad bodies end in the dead letter.
        done = wait_for("every message acked or dead-lettered",
                        lambda: (d := _topology(base, s.name))["totals"]["acked"] >= 202
                        and d["totals"]["deadlettered"] == 2 and d, 30)  # fmt: skip
        assert done["totals"]["read"] >= 202
        tasks = {t["name"]: t for t in done["tasks"]}
        assert tasks["parse"]["handled"] == 200 + 4  # 200 good + 2 bad bodies x 2 attempts
        assert tasks["parse"]["errors"] == 4 and tasks["store"]["handled"] == 400
        assert tasks["store"]["p99_ms"] is not None and tasks["store"]["p99_ms"] >= 1

        # The graph: four boxes, the diamond's four edges, laid out left to right.
        graph = done["graph"]
        nodes = {n["name"]: n for n in graph["nodes"]}
        assert set(nodes) == {"parse", "enrich", "audit", "store"}
        assert sorted((e["from"], e["to"]) for e in graph["edges"]) == [
            ("audit", "store"), ("enrich", "store"), ("parse", "audit"), ("parse", "enrich")]  # fmt: skip
        assert nodes["parse"]["x"] < nodes["enrich"]["x"] < nodes["store"]["x"]

        # Failures: the error of each attempt, with the traceback of the task's code.
        errors = done["errors"]
        assert len(errors) == 4 and {e["task"] for e in errors} == {"parse"}
        assert errors[0]["error_type"] == "ValueError" and "cannot parse" in errors[0]["message"]
        assert "dash_app.py" in errors[0]["traceback"] and "_check" in errors[0]["traceback"]

        # Dead letters: browse, requeue one (it comes back to the source), purge the other.
        status, _, letters = http("GET", f"{base}api/topologies/{s.name}/deadletters")
        assert status == 200 and letters["writable"] and letters["total"] == 2, letters
        by_body = {e["body_preview"]: e for e in letters["entries"]}
        assert set(by_body) == {"bad-1", "bad-2"}
        assert by_body["bad-1"]["task"] == "parse" and by_body["bad-1"]["attempts"] == 2
        assert "ValueError" in by_body["bad-1"]["error"]
        source_len = s.client.xlen(s.source_key)
        csrf = csrf_of(base)
        status, _, result = http("POST", f"{base}api/topologies/{s.name}/deadletters/requeue",
                                 {"ids": [by_body["bad-1"]["id"]]}, {"X-CSRF-Token": csrf})  # fmt: skip
        assert status == 200, result
        assert [r["id"] for r in result["requeued"]] == [by_body["bad-1"]["id"]]
        assert result["requeued"][0]["to"] == f"stream:{s.source_key}"
        assert s.client.xlen(s.source_key) == source_len + 1
        status, _, result = http("POST", f"{base}api/topologies/{s.name}/deadletters/purge",
                                 {"ids": [by_body["bad-2"]["id"]]}, {"X-CSRF-Token": csrf})  # fmt: skip
        assert status == 200 and result == {"deleted": 1}, result
        # The requeued body fails again and is dead-lettered again: one entry, a new id.
        again = wait_for("the requeued message back in the dead letter",
                         lambda: (d := http("GET", f"{base}api/topologies/{s.name}/deadletters")[2])["total"] == 1
                         and d, 30)  # fmt: skip
        assert again["entries"][0]["body_preview"] == "bad-1"
        assert again["entries"][0]["id"] != by_body["bad-1"]["id"]

        # Unknown topology: 404 with a message; a GET cannot change anything.
        status, _, body = http("GET", base + "api/topologies/nope")
        assert status == 404 and "nope" in body["error"]
        status, _, _ = http("GET", f"{base}api/topologies/{s.name}/deadletters/purge")
        assert status == 405
        assert run.stop() == 0, run.log()[-3000:]


def test_run_processes_dashboard_shows_the_local_cluster(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    with setup(tmp_path, redis_url, key_prefix) as s:
        run = s.start("run", APP, "--processes", "1", "--dashboard", "--dashboard-port", "0", "--quiet")
        base = run.dashboard_url()
        s.prime([b"m%d" % i for i in range(50)])

        def acked() -> dict[str, Any] | bool:
            status, _, d = http("GET", f"{base}api/topologies/{s.name}")
            return status == 200 and d["totals"]["acked"] >= 50 and d

        d = wait_for("the local cluster's topology with 50 acked", acked, 45)
        assert d["mode"] == "distributed" and d["status"] == "running"
        assert all(t["workers"] == 1 for t in d["tasks"])
        assert run.stop(60) == 0, run.log()[-3000:]


def test_run_dashboard_beyond_loopback_needs_a_token(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    with setup(tmp_path, redis_url, key_prefix) as s:
        run = s.start("run", APP, "--dashboard", "--dashboard-bind", "0.0.0.0", "--dashboard-port", "0")
        assert run.wait(30) == 2
        assert "--dashboard-token" in run.log()
