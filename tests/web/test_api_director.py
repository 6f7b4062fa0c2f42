"""``pytempest director`` over a real distributed topology (topology and worker processes)
publishing to the test Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .helpers import APP, csrf_of, http, setup, wait_for


def _row(base: str, name: str) -> dict[str, Any] | None:
    status, _, data = http("GET", base + "api/overview")
    assert status == 200, data
    return next((t for t in data["topologies"] if t["name"] == name), None)


def test_director_shows_a_distributed_topology(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    with setup(tmp_path, redis_url, key_prefix, PT_SLEEP_MS="1") as s:
        director = s.start("director", "--redis", redis_url, "--port", "0")
        base = director.dashboard_url()
        top = s.start("topology", APP, "--quiet")
        s.start("task", APP, "--all")
        s.prime([b"m%d" % i for i in range(300)] + [b"bad-1"])

        row = wait_for("a running topology with a live worker per task",
                       lambda: (r := _row(base, s.name)) and r["status"] == "running"
                       and all(n == 1 for n in r["workers_by_task"].values()) and r, 30)  # fmt: skip
        assert row["mode"] == "distributed" and row["instances_live"] == 1 and row["workers_live"] == 1
        assert set(row["workers_by_task"]) == {"parse", "enrich", "audit", "store"}

        def settled() -> dict[str, Any] | bool:
            status, _, d = http("GET", f"{base}api/topologies/{s.name}")
            assert status == 200, d
            return d["totals"]["acked"] >= 301 and d["totals"]["deadlettered"] == 1 and d

        d = wait_for("every message acked or dead-lettered", settled, 45)
        assert d["where"] == "redis://127.0.0.1:6379/0" or d["where"].startswith("redis://")
        tasks = {t["name"]: t for t in d["tasks"]}
        assert tasks["store"]["handled"] == 600 and tasks["parse"]["errors"] == 2
        assert tasks["store"]["workers"] == 1 and "stream_waiting" in tasks["store"]
        assert sorted((e["from"], e["to"]) for e in d["graph"]["edges"]) == [
            ("audit", "store"), ("enrich", "store"), ("parse", "audit"), ("parse", "enrich")]  # fmt: skip
        [instance] = d["instances"]
        assert instance["alive"] and instance["read"] >= 301
        [worker] = d["workers"]
        assert worker["alive"] and worker["tasks"] == "parse,enrich,audit,store"
        # The traceback was raised in the worker process and travelled back through Redis.
        assert d["errors"] and "dash_app.py" in d["errors"][0]["traceback"]

        status, _, letters = http("GET", f"{base}api/topologies/{s.name}/deadletters")
        assert status == 200 and letters["total"] == 1 and letters["writable"], letters
        entry = letters["entries"][0]
        assert entry["body_preview"] == "bad-1" and entry["source"] == f"redis_stream:{s.source_key}"
        status, _, row = http("GET", base + "api/overview")
        assert next(t for t in row["topologies"] if t["name"] == s.name)["deadletters"] == 1

        # Requeue everything: the dead letter empties and the source gets the body back.
        source_len = s.client.xlen(s.source_key)
        status, _, result = http("POST", f"{base}api/topologies/{s.name}/deadletters/requeue",
                                 {"all": True}, {"X-CSRF-Token": csrf_of(base)})  # fmt: skip
        assert status == 200 and len(result["requeued"]) == 1, result
        assert s.client.xlen(s.source_key) == source_len + 1

        # A topology that stopped cleanly shows as stopped, with its final counts.
        assert top.stop() == 0, top.log()[-3000:]
        stopped = wait_for("the topology to show as stopped",
                           lambda: (r := _row(base, s.name)) and r["status"] == "stopped" and r, 15)  # fmt: skip
        assert stopped["rates"]["read"] == 0 and stopped["totals"]["read"] >= 301
        assert director.stop() == 0, director.log()[-3000:]


def test_director_refuses_to_listen_on_the_network_without_a_token(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    with setup(tmp_path, redis_url, key_prefix) as s:
        proc = s.start("director", "--redis", redis_url, "--bind", "0.0.0.0", "--port", "0")
        assert proc.wait(30) == 2
        assert "give a token with --token" in proc.log()
        proc = s.start("director", "--redis", "redis://127.0.0.1:1/0", "--port", "0")
        assert proc.wait(30) == 3
        assert "cannot reach Redis at redis://127.0.0.1:1/0" in proc.log()
