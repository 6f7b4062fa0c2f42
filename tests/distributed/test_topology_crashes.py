"""Topology instances that die, restart, share a source, or run without workers."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from .cluster import cluster, prime, stop, wait_for

MESSAGES = 2000


def test_topology_killed_and_restarted_acks_everything(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    with cluster(tmp_path, redis_url, key_prefix, PYTEMPEST_BUS_RESULT_TTL_MS="2000") as c:
        prime(redis_url, c.source_key, MESSAGES)
        workers = [c.worker() for _ in range(2)]
        first = c.topology()
        wait_for("a third of the messages acked", lambda: c.acked() >= MESSAGES // 3)
        instance = wait_for("the first instance's heartbeat", lambda: c.instances(alive=True))[0]
        first.signal(signal.SIGKILL)
        first.wait(10)
        results = "{pt:" + c.name + "}:results:" + instance
        assert c.client.pttl(results) > 0, "a dead instance's result stream must expire"
        assert not c.source_done(MESSAGES)

        # The same consumer name: the new instance first re-reads what the old one held.
        second = c.topology("--until-idle")
        assert second.wait(120) == 0, second.log()[-3000:]
        for w in workers:
            assert stop(w) == 0, w.log()[-3000:]

        assert c.source_done(MESSAGES), c.source_group()
        (metrics,) = c.final_metrics().values()
        assert c.metric(metrics, "topology.source.msg.error") == 0
        assert c.metric(metrics, "source.msg.acked.success") == c.metric(metrics, "source.msg.read")
        # Nothing re-created the dead instance's result stream: it expired.
        wait_for("the dead instance's result stream to expire", lambda: not c.client.exists(results), 10)
        stale = [i for i in c.status()["instances"] if i["name"] == instance]
        assert stale and not stale[0]["alive"]


def test_two_topology_instances_share_one_source(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    with cluster(tmp_path, redis_url, key_prefix, PT_MAX_PENDING="100") as c:
        prime(redis_url, c.source_key, MESSAGES)
        workers = [c.worker() for _ in range(2)]
        tops = [c.topology("--until-idle", PT_CONSUMER=f"topology-{i}") for i in range(2)]
        for top in tops:
            assert top.wait(120) == 0, top.log()[-3000:]
        for w in workers:
            assert stop(w) == 0, w.log()[-3000:]

        assert c.source_done(MESSAGES), c.source_group()
        finals = list(c.final_metrics().values())
        assert len(finals) == 2
        acked = [c.metric(m, "source.msg.acked.success") for m in finals]
        read = [c.metric(m, "source.msg.read") for m in finals]
        assert sum(acked) == MESSAGES, acked
        assert sum(read) == MESSAGES, read
        assert all(n > 0 for n in acked), acked
        assert sum(c.metric(m, "T4.task.msg.handle") for m in finals) == MESSAGES * 50


def test_worker_started_before_its_topology_waits(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    with cluster(tmp_path, redis_url, key_prefix) as c:
        worker = c.worker()
        wait_for("the worker's 'waiting' log line", lambda: "waiting for topology" in worker.log(), 30)
        time.sleep(0.5)  # a few heartbeats: it keeps waiting, it does not exit
        assert worker.popen.poll() is None, worker.log()
        status = c.status()
        assert [w["alive"] for w in status["workers"]] == [True]
        assert status["instances"] == []

        prime(redis_url, c.source_key, 200)
        top = c.topology("--until-idle")
        assert top.wait(60) == 0, top.log()[-3000:]
        assert stop(worker) == 0
        assert c.source_done(200)
        (metrics,) = c.final_metrics().values()
        assert c.metric(metrics, "T4.task.msg.handle") == 200 * 50


def test_topology_without_workers_reports_zero_workers(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    with cluster(tmp_path, redis_url, key_prefix, PT_GRACE_MS="300") as c:
        prime(redis_url, c.source_key, 10)
        top = c.topology()
        wait_for("the warning about T1", lambda: "no live worker for task T1" in top.log(), 30)
        status = c.status()
        assert [i["alive"] for i in status["instances"]] == [True]
        tasks = {t["name"]: t for t in status["tasks"]}
        assert sorted(tasks) == ["T1", "T2", "T3", "T4"]
        assert all(t["workers"] == 0 for t in tasks.values())
        assert tasks["T1"]["lag"] >= 1  # the T1 entry waits, undelivered
        text = c.status_text()
        assert "T1" in text and "no live worker" in text
        assert f"topology {c.name}" in c.status_text(all_topologies=True)

        assert stop(top) == 0, top.log()[-3000:]
        # Nothing could finish: the 10 messages stay unacked at the source.
        assert c.source_group()["pending"] == 10
        assert "did not finish before shutdown" in top.log()
