"""D1 (SIGTERM with work in flight) and D2 (a slow task under ten times its load)."""

from __future__ import annotations

import contextlib
import json
import signal
import time

import redis

from ..checker import handle_lines
from ..lab import Check, Lab, Result
from ..messages import wait_until
from .common import at_most, check, count_lines, equal, pending_of, result, sink_times


def d1_sigterm(lab: Lab, quick: bool) -> Result:
    """SIGTERM while messages are in flight: intake stops, what is in flight finishes and
    is acked within graceful_shutdown_ms, exit 0, the rest stays at the source; a restart
    then completes the rest without completing anything twice."""
    began = time.monotonic()
    n, max_pending, grace_ms = (300 if quick else 3000), 20, 10_000
    producer = lab.producer()
    producer.burst(n)
    # 100 ms of work a message: the run cannot finish all n (n / max_pending x 0.1 s = 1.5 s)
    # before the SIGTERM even when this process is starved for a while.
    env = {"PTR_WORK_MS": "100", "PTR_MAX_PENDING": str(max_pending), "PTR_GRACE_MS": str(grace_ms)}
    proc = lab.run(**env)
    wait_until(lambda: lab.sink_count() >= 40, 60, "40 messages completed")
    term_at = time.time()
    proc.signal(signal.SIGTERM)
    code = proc.wait(grace_ms / 1000 + 30)
    exit_s = time.time() - term_at
    first = lab.check(producer)
    client = lab.source_client()
    try:
        pending = {r["message_id"].decode() for r in pending_of(client, lab.source_key, lab.group)}
    finally:
        client.close()
    done = sink_times(lab)
    started = {seq for task, seq, _ in handle_lines(lab.log_dir) if task == "decode"}
    after_term = sum(1 for ts in done.values() if min(ts) >= int(term_at * 1000))
    unacked_done = [s for s in done if producer.produced.ids[s] in pending]
    checks: list[Check] = [
        equal("exit code after SIGTERM", code, 0),
        at_most("time from SIGTERM to exit", round(exit_s, 2), grace_ms / 1000, " s"),
        check("it said it was stopping", "stopping: no new messages" in proc.log()),
        equal("messages started and not finished", sorted(started - set(done)), []),
        equal("messages finished but left unacked", unacked_done, []),
        at_most("messages completed after SIGTERM (intake stopped)", after_term, max_pending),
        check(
            "the rest stays at the source",
            first.stuck == n - first.completed and first.stuck > 0,
            f"{first.stuck} stuck, {first.completed} completed",
        ),
        equal("lost at the stop", first.lost, 0),
    ]
    again = lab.run("--until-idle", **env)
    checks.append(equal("exit code of the restart", again.wait(120), 0))
    report = lab.check(producer)
    checks.append(equal("completed after the restart", report.completed, n))
    checks.append(equal("completed twice", report.dup_sink, 0))
    return result("D1", "SIGTERM with work in flight", report, checks, began,
                  f"exit {exit_s:.2f} s after SIGTERM; {after_term} completed after it")  # fmt: skip


def d2_overload(lab: Lab, quick: bool) -> Result:
    """A slow task fed ten times what it can do: the messages in flight never exceed
    max_pending and the process's memory plateaus."""
    began = time.monotonic()
    seconds = 15 if quick else 60
    max_pending, work_ms = 50, 20
    capacity = 8 * 1000 / work_ms  # 8 threads of the work task
    producer = lab.producer()
    producer.burst(int(capacity * 2))
    env = {"PTR_WORK_MS": str(work_ms), "PTR_MAX_PENDING": str(max_pending), "PTR_READ_COUNT": "50",
           "PTR_PREFETCH": "1", "PTR_GRACE_MS": "5000"}  # fmt: skip
    proc = lab.run(**env)
    producer.start(rate_per_s=capacity * 10, batch=200)
    held_max = _sample_pending(lab, seconds)
    producer.stop()
    proc.signal(signal.SIGTERM)
    code = proc.wait(60)
    inflight = _gauge_series(lab, f"{lab.name}.pipeline.inflight")
    timeline = lab.sampler.timeline.get(proc.pid, [])
    third = len(timeline) // 3
    middle = max((kib for _, kib in timeline[third : 2 * third]), default=0) / 1024
    last = max((kib for _, kib in timeline[2 * third :]), default=0) / 1024
    report = lab.check(producer)
    checks = [
        equal("exit code", code, 0),
        at_most("max in flight (engine gauge)", max(inflight, default=None), max_pending),
        # Unacked at the source: what the engine holds (in flight, or done and waiting for
        # its ack: max_pending in all) and one read ahead (read_count 50).
        at_most("max unacked at the source (max_pending + read ahead)", held_max, max_pending + 50),
        at_most(
            "RSS growth from the middle third to the last third",
            round(last - middle, 1),
            max(5.0, middle * 0.1),
            " MiB",
        ),
        check(
            "load was ten times the capacity",
            len(producer.produced.ids) > 5 * report.completed,
            f"{len(producer.produced.ids)} produced, {report.completed} completed",
        ),
    ]
    return result("D2", "slow task at 10x load with max_pending", report, checks, began,
                  f"{seconds} s; RSS middle {middle:.1f} MiB, last {last:.1f} MiB; {len(inflight)} gauge samples")  # fmt: skip


def _sample_pending(lab: Lab, seconds: float) -> int:
    """Sample the consumer's pending count every 50 ms for ``seconds``; return the max."""
    client = redis.Redis.from_url(lab.source_url_direct())
    top = 0
    stop = time.monotonic() + seconds
    try:
        while time.monotonic() < stop:
            with contextlib.suppress(redis.ResponseError):  # no group yet
                top = max(top, int(client.xpending(lab.source_key, lab.group)["pending"] or 0))
            time.sleep(0.05)
    finally:
        client.close()
    return top


def _gauge_series(lab: Lab, key: str) -> list[float]:
    out = []
    if lab.metrics_file.exists():
        for line in lab.metrics_file.read_text().splitlines():
            if line.strip():
                value = json.loads(line).get("gauges", {}).get(key)
                if value is not None:
                    out.append(value)
    return out


def log_storm(text: str) -> int:
    """WARNING, ERROR and CRITICAL lines of a process log."""
    return count_lines(text, " WARNING ", " ERROR ", " CRITICAL ")
