"""The book DAG over a Redis stream, run by real topology and worker processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from .cluster import Cluster, Proc, cluster, prime, stop, wait_for

MESSAGES = 2000
T4_PER_MESSAGE = 50


def test_book_dag_with_three_workers_acks_every_message_once(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    with cluster(tmp_path, redis_url, key_prefix) as c:
        prime(redis_url, c.source_key, MESSAGES)
        workers = [c.worker() for _ in range(3)]
        top = c.topology("--until-idle")
        assert top.wait(120) == 0, top.log()[-3000:]
        for w in workers:
            assert stop(w) == 0, w.log()[-3000:]

        assert c.source_done(MESSAGES), c.source_group()
        (metrics,) = c.final_metrics().values()
        # Acked exactly once: every id was handed to XACK once, and nothing is pending.
        assert c.metric(metrics, "source.msg.acked.success") == MESSAGES
        assert c.metric(metrics, "source.msg.read") == MESSAGES
        assert c.metric(metrics, "topology.source.msg.error") == 0
        assert c.metric(metrics, "T4.task.msg.handle") == MESSAGES * T4_PER_MESSAGE
        assert c.metric(metrics, "T2.task.msg.handle") == MESSAGES * 10
        assert c.metric(metrics, "bus.result.dropped") == 0
        # What the workers themselves counted: T4 ran exactly 100,000 times, in 3 processes.
        assert int(c.client.get(c.counter) or 0) == MESSAGES * T4_PER_MESSAGE
        assert c.client.scard(c.counter + ":pids") == 3
        assert c.task_pending() == 0
        for w in workers:
            assert "stopped; handled" in w.log()


def test_worker_killed_mid_run_loses_nothing(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    with cluster(tmp_path, redis_url, key_prefix) as c:
        prime(redis_url, c.source_key, MESSAGES)
        workers = [c.worker() for _ in range(3)]
        top = c.topology("--until-idle")
        victim = workers[0]
        # Kill it while it holds entries (read and not acked yet), half-way through.
        wait_for(
            "a third of the messages acked", lambda: (c.source_group()["entries-read"] or 0) >= MESSAGES // 3
        )
        victim_name = wait_for("the victim's heartbeat", lambda: _worker_name(c, victim.pid), timeout=10)
        # Freeze it while it holds entries (with cohorts it holds few, briefly), then kill it.
        wait_for(
            "the victim to hold entries", lambda: _frozen_holding(c, victim, victim_name), timeout=30, every=0
        )
        victim.signal(signal.SIGKILL)
        victim.wait(10)
        (tmp_path / "killed.txt").write_text(f"{time.time():.3f}\n")
        left_pending = _held(c, victim_name)
        assert left_pending > 0

        assert top.wait(120) == 0, top.log()[-3000:]
        survivors = workers[1:]
        before = {w["name"]: w for w in c.status()["workers"] if w["alive"]}
        for w in survivors:
            assert stop(w) == 0, w.log()[-3000:]

        assert c.source_done(MESSAGES), c.source_group()
        (metrics,) = c.final_metrics().values()
        assert c.metric(metrics, "source.msg.acked.success") == MESSAGES
        assert c.metric(metrics, "topology.source.msg.error") == 0
        assert c.metric(metrics, "topology.source.msg.timeout") == 0
        # Every T4 message counted once by the topology, whatever ran twice in workers.
        assert c.metric(metrics, "T4.task.msg.handle") == MESSAGES * T4_PER_MESSAGE
        assert c.task_pending() == 0
        # The survivors claimed what the victim left and report the task messages they
        # ran again (the duplicates of task handling).
        claimed = sum(w["claimed"] for w in before.values())
        redelivered = sum(w["redelivered"] for w in before.values())
        assert claimed >= 1
        assert redelivered >= 1
        assert any("claimed" in w.log() and "idle entries" in w.log() for w in survivors)


def _worker_name(c: Cluster, pid: int) -> str | None:
    for member in c.client.zrange("{pt:" + c.name + "}:members", 0, -1):
        kind, _, name = member.decode().partition(":")
        if (
            kind == "worker"
            and c.client.hget("{pt:" + c.name + "}:hb:worker:" + name, "pid") == str(pid).encode()
        ):
            return name
    return None


def _frozen_holding(c: Cluster, victim: Proc, name: str) -> bool:
    """Stop ``victim`` (SIGSTOP); True when it holds entries, else let it go on."""
    victim.signal(signal.SIGSTOP)
    if _held(c, name) > 0:
        return True
    victim.signal(signal.SIGCONT)
    time.sleep(0.0005)
    return False


def _held(c: Cluster, consumer: str) -> int:
    client = c.client
    total = 0
    for t in ("T1", "T2", "T3", "T4"):
        key = "{pt:" + c.name + "}:task:" + t
        for info in client.xinfo_consumers(key, "workers"):
            if info["name"].decode() == consumer:
                total += info["pending"]
    return total
