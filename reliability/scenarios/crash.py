"""A1, A2, A3, C3: processes killed with SIGKILL (by the harness or by themselves)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from .. import bus
from ..lab import Check, Lab, Result
from ..messages import parse, wait_until
from ..procs import Proc
from .common import at_most, check, dead_letter_records, equal, pending_of, result

ACK = "batch(100, ack_interval_ms=50)"


def a2_topology_killed(lab: Lab, quick: bool) -> Result:
    """SIGKILL the topology (``pytempest run``) mid-stream and start it again with the
    same consumer name: every message ends acked; completions are duplicated at most for
    what it held unacked, at most max_pending (done messages hold their slot until acked).

    The second half of the messages is ``hold``: the first run cannot finish them, so it
    is killed holding messages however fast it runs; the restart finds them released."""
    began = time.monotonic()
    n, max_pending = (3000 if quick else 30_000), 100
    release = lab.log_dir / "release-a2"
    producer = lab.producer(acts={seq: "hold" for seq in range(n // 2, n)})
    producer.burst(n)
    held_ids = {producer.produced.ids[seq].encode() for seq in range(n // 2, n)}
    env = {"PTR_MAX_PENDING": str(max_pending), "PTR_ACK": ACK, "PTR_WORK_MS": "1",
           "PTR_RELEASE_FILE": str(release)}  # fmt: skip
    first = lab.run(**env)
    client = lab.source_client()
    try:
        wait_until(lambda: lab.sink_count() >= n // 3, 120, "a third of the messages completed")
        wait_until(lambda: any(row["message_id"] in held_ids for row in pending_of(client, lab.source_key, lab.group)),
                   60, "the run to hold messages it cannot finish")  # fmt: skip
        killed_at = time.time()
        first.sigkill()
        held = len(pending_of(client, lab.source_key, lab.group))
    finally:
        client.close()
    release.touch()
    again = lab.run("--until-idle", **env)
    code = again.wait(300)
    report = lab.check(producer, fault_at=killed_at)
    checks: list[Check] = [
        equal("exit code of the restart", code, 0),
        check("killed while holding messages", held > 0, f"{held} pending at the source"),
        check("every message acked at the source", lab.drained(n), lab.group_info()),
        equal("completed", report.completed, n),
        at_most("completions duplicated (bound: max_pending)", report.dup_sink, max_pending),
        at_most("completions duplicated <= held at the kill", report.dup_sink, held),
    ]
    return result("A2", "SIGKILL the topology, restart", report, checks, began,
                  f"held {held} unacked at the kill; {report.dup_sink} completed twice (max_pending {max_pending})")  # fmt: skip


def a1_worker_killed(lab: Lab, quick: bool) -> Result:
    """SIGKILL a worker of the distributed runtime while it holds entries: another worker
    claims them within claim_idle_ms + one claim interval; task messages run twice at most
    as many as it held.

    The second half of the messages is ``hold``: the victim is the first worker seen
    holding a ``work`` entry with such a message, an entry it cannot finish before the
    kill however fast it runs; the survivor's own are released right after the kill."""
    began = time.monotonic()
    n = 1000 if quick else 5000
    claim_idle_ms, claim_interval_ms = 1000, 250
    release = lab.log_dir / "release-a1"
    producer = lab.producer(acts={seq: "hold" for seq in range(n // 2, n)})
    producer.burst(n)
    env = {"PTR_WORK_MS": "5", "PTR_RELEASE_FILE": str(release)}
    workers = [lab.worker(**env) for _ in range(2)]
    top = lab.topology("--until-idle", **env)
    wait_until(lambda: lab.sink_count() >= n // 5, 120, "a fifth of the messages completed")
    names = [_worker_name(lab, w) for w in workers]

    def holder() -> str | None:
        for name in names:
            entries = bus.held(lab.main, lab.name, name).get("work", [])
            bodies = bus.task_bodies(lab.main, lab.name, "work", entries)
            if any((msg := parse(body)) is not None and msg.act == "hold" for body in bodies):
                return name
        return None

    name = wait_until(holder, 60, "a worker to hold a message it cannot finish")
    assert isinstance(name, str)
    victim, survivor = (workers[0], workers[1]) if name == names[0] else (workers[1], workers[0])
    killed_at = time.time()
    victim.sigkill()
    entries = bus.held(lab.main, lab.name, name)
    carried = bus.task_messages(lab.main, lab.name, entries)
    release.touch()
    wait_until(
        lambda: not bus.held(lab.main, lab.name, name), 60, "the victim's entries to be claimed", every_s=0.01
    )
    claimed_s = time.time() - killed_at
    code = top.wait(180)
    survivor_code = _stop(survivor)
    metrics = bus.final_metrics(lab.main, lab.name)
    report = lab.check(producer, fault_at=killed_at,
                       stale_dropped=int(metrics.get(f"{lab.name}.bus.result.dropped", 0)))  # fmt: skip
    held_total = sum(carried.values())
    checks: list[Check] = [
        equal("topology exit code", code, 0),
        equal("surviving worker exit code after SIGTERM", survivor_code, 0),
        check("the victim held entries", held_total > 0, carried),
        at_most(
            "its entries claimed after",
            round(claimed_s, 2),
            (claim_idle_ms + claim_interval_ms + 2000) / 1000,
            " s",
        ),
        equal("completed", report.completed, n),
        at_most("task messages run twice", report.dup_task, held_total),
        at_most("sink writes duplicated", report.dup_sink, carried.get("sink", 0)),
    ]
    return result("A1", "SIGKILL a worker mid-batch", report, checks, began,
                  f"victim held {carried} task messages in {sum(map(len, entries.values()))} entries; "
                  f"claimed {claimed_s:.2f} s after the kill (claim_idle_ms {claim_idle_ms})")  # fmt: skip


def _worker_name(lab: Lab, worker: Proc) -> str:
    name = wait_until(lambda: bus.worker_name(lab.main, lab.name, worker.pid), 30, "a worker's heartbeat")
    assert isinstance(name, str)
    return name


def _stop(proc: Proc, timeout_s: float = 60) -> int:
    proc.signal(signal.SIGTERM)
    return proc.wait(timeout_s)


class Respawner:
    """Starts a process again whenever it dies (like systemd's Restart=always), at most
    ``limit`` times; counts the deaths."""

    def __init__(self, start: Callable[[], Proc], count: int, limit: int = 40) -> None:
        self.start = start
        self.limit = limit
        self.procs = [start() for _ in range(count)]
        self.deaths = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reliability-respawn", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            for i, proc in enumerate(self.procs):
                if not proc.alive() and self.deaths < self.limit:
                    self.deaths += 1
                    proc.wait(5)
                    self.procs[i] = self.start()

    def stop(self) -> list[int]:
        """Stop respawning; SIGTERM the live processes; return their exit codes."""
        self._stop.set()
        self._thread.join(5)
        return [_stop(p) if p.alive() else p.wait(5) for p in self.procs]


def c3_crashing_message(lab: Lab, quick: bool) -> Result:
    """A message that kills every worker that runs it: after max_deliveries its entry is
    answered with an error, retry(1) runs it once more, then it is dead-lettered; the
    workers are restarted each time (as systemd would) and the rest flows. Entries another
    message had in the same worker when it died get a delivery too: one caught in enough
    crashes is dead-lettered with the same error (collateral, counted, never lost)."""
    began = time.monotonic()
    n, victim, max_deliveries = (200 if quick else 1000), 20, 2
    producer = lab.producer(acts={victim: "crash"})
    producer.burst(n)
    env = {"PTR_POLICY": "retry(1, delay_ms=100)", "PTR_DLQ_KEY": lab.dlq_key,
           "PYTEMPEST_BUS_MAX_DELIVERIES": str(max_deliveries), "PYTEMPEST_BUS_ENTRY_MAX_BATCHES": "1"}  # fmt: skip
    workers = Respawner(lambda: lab.worker(**env), 2)
    top = lab.topology("--until-idle", **env)
    code = top.wait(240)
    codes = workers.stop()
    records = {producer.produced.seqs.get(r.source_id): r for _, r in dead_letter_records(lab)}
    report = lab.check(producer)
    crashes_bound = 2 * max_deliveries  # (retries + 1) attempts x max_deliveries each
    collateral = sorted(s for s in records if s != victim)
    checks = [
        equal("topology exit code (it never crashed)", code, 0),
        check(
            "the crashing message was dead-lettered, naming max deliveries",
            victim in records and "MaxDeliveries" in records[victim].error,
            records[victim].error[:200] if victim in records else "none",
        ),
        check(
            "every other dead letter is collateral of the crashes (max deliveries), not a loss",
            all("MaxDeliveries" in records[s].error for s in collateral),
            collateral,
        ),
        at_most("worker crashes", workers.deaths, crashes_bound),
        check("worker crashes happened", workers.deaths >= max_deliveries, workers.deaths),
        equal("completed or dead-lettered", report.completed + report.dead_lettered, n),
        equal("workers stopped cleanly", codes, [0, 0]),
    ]
    return result("C3", "a message that crashes the worker every time", report, checks, began,
                  f"{workers.deaths} worker crashes; {len(collateral)} messages held by the crashed "
                  f"workers were dead-lettered with it: {collateral}")  # fmt: skip


def c3_inprocess(lab: Lab, quick: bool) -> Result:
    """A message that kills ``pytempest run`` every time: the restarted process re-reads it
    first; after max(5, retries + 1) deliveries the engine dead-letters it without running
    it (reason max_deliveries), so the crash loop ends."""
    began = time.monotonic()
    n, victim = (100 if quick else 1000), 7
    producer = lab.producer(acts={victim: "crash"})
    producer.burst(n)
    env = {"PTR_POLICY": "retry(1, delay_ms=100)", "PTR_DLQ_KEY": lab.dlq_key, "PTR_READ_COUNT": "20",
           "PTR_MAX_PENDING": "20", "PTR_ACK": "individual"}  # fmt: skip
    deaths = 0
    code = None
    for _ in range(10):
        proc = lab.run("--until-idle", **env)
        code = proc.wait(120)
        if code != -signal.SIGKILL:
            break
        deaths += 1
    records = dead_letter_records(lab)
    report = lab.check(producer)
    by_seq = {producer.produced.seqs.get(r.source_id): r for _, r in records}
    checks = [
        equal("the last run's exit code", code, 0),
        equal("crashes before the loop ended", deaths, 5),
        check(
            "the crashing message was dead-lettered unrun",
            victim in by_seq and by_seq[victim].reason == "max_deliveries",
            by_seq.get(victim),
        ),
        check(
            "every message ended completed or dead-lettered",
            report.completed + report.dead_lettered == n,
            f"{report.completed} completed, {report.dead_lettered} dead-lettered",
        ),
    ]
    return result("C3b", "a message that crashes the topology process every time", report, checks, began,
                  f"{deaths} crashes; {report.dead_lettered - 1} other messages in flight at every crash "
                  "were dead-lettered with it")  # fmt: skip


def a3_failpoints(lab: Lab, quick: bool) -> Result:
    """SIGKILL at each step of a message's life through the failpoints; each window is hit,
    nothing is lost, and what is done twice stays within what the window held."""
    from .failpoints import run_failpoints

    return run_failpoints(lab, quick)
