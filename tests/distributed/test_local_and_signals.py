"""``pytempest run --processes N`` and the signals every distributed process handles."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from .cluster import BOOK, cluster, prime, stop, wait_for


def test_run_processes_until_idle(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    with cluster(tmp_path, redis_url, key_prefix) as c:
        prime(redis_url, c.source_key, 300)
        run = c.start("run", BOOK, "--processes", "2", "--until-idle")
        assert run.wait(120) == 0, run.log()[-3000:]
        assert c.source_done(300)
        log = run.log()
        assert "read 300  acked 300" in log
        assert "started 2 worker processes" in log
        # Both workers ran T4 and stopped cleanly (their goodbye removed their heartbeats).
        assert int(c.client.get(c.counter) or 0) == 300 * 50
        assert c.client.scard(c.counter + ":pids") == 2
        assert c.status()["workers"] == []


def test_run_processes_ctrl_c_stops_everything_gracefully(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    with cluster(tmp_path, redis_url, key_prefix) as c:
        prime(redis_url, c.source_key, 300)
        run = c.start("run", BOOK, "--processes", "2", new_group=True)
        wait_for("every message acked", lambda: c.source_done(300), 60)
        pids = wait_for("two live workers", lambda: _worker_pids(c) if len(_worker_pids(c)) == 2 else None)
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert run.wait(60) == 0, run.log()[-3000:]
        for pid in pids:
            assert not _alive(pid), f"worker {pid} still runs"
        assert c.status()["workers"] == []
        assert c.status()["instances"] == []


def test_worker_sigterm_finishes_and_acks_the_batch_in_hand(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    # Small entries (8 batches), one held per stream, T3 sleeping 5 ms per call: a T3
    # entry takes about 0.4 s and the first worker holds one when it gets SIGTERM.
    slow = {
        "PT_T3_SLEEP_MS": "5",
        "PYTEMPEST_BUS_PREFETCH": "1",
        "PYTEMPEST_BUS_ENTRY_MAX_BATCHES": "8",
        "PYTEMPEST_BUS_WHOLE_GRAPH": "0",  # T3 entries of their own
    }
    with cluster(tmp_path, redis_url, key_prefix, **slow) as c:
        prime(redis_url, c.source_key, 100)
        top = c.topology("--until-idle")
        worker = c.worker()
        t3 = "{pt:" + c.name + "}:task:T3"
        wait_for(
            "the worker to hold a T3 entry", lambda: c.client.exists(t3) and _pending(c, t3) > 0, 60, 0.01
        )
        assert stop(worker, 60) == 0, worker.log()[-3000:]
        log = worker.log()
        assert "stopping: finishing" in log
        # What it held was run and acked; its consumer is gone (it held nothing more).
        assert _pending(c, t3) == 0
        assert c.client.xinfo_consumers(t3, "workers") == []
        assert int(log.split("stopped; handled ")[1].split()[0]) > 0
        assert not c.source_done(100)

        # The next worker finishes the rest; the topology then acks all 100.
        second = c.worker(PT_T3_SLEEP_MS="0")
        assert top.wait(120) == 0, top.log()[-3000:]
        assert stop(second) == 0, second.log()[-3000:]
        assert c.source_done(100)
        assert "stopped; handled 0 " not in second.log()


def _pending(c: object, key: str) -> int:
    return int(c.client.xpending(key, "workers")["pending"])  # type: ignore[attr-defined]


def _worker_pids(c: object) -> list[int]:
    return [int(w["pid"]) for w in c.status()["workers"] if w["alive"]]  # type: ignore[attr-defined]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
