"""B1, B3, B4, B5, B6: the source's Redis restarts, loses its data, is down at start, hangs,
or its connections are cut, delayed and black-holed (through the TCP proxy)."""

from __future__ import annotations

import asyncio
import signal
import time

from pytempest import Engine, Pipeline, Topology
from pytempest.errors import SourceConnectionError
from pytempest.sources import RedisStreamSource

from ..checker import Report
from ..lab import Check, Lab, Result
from ..messages import Producer, wait_until
from ..procs import Proc
from ..redis_server import free_port
from .common import at_most, check, count_lines, equal, result
from .shutdown import log_storm

RATE = 300
ENV = {"PTR_WORK_MS": "1", "PTR_MAX_PENDING": "100", "PTR_GRACE_MS": "10000"}


def _first_after(lab: Lab, when: float) -> float | None:
    """Seconds from ``when`` to the first sink entry written after it (None: none yet)."""
    start = f"{int(when * 1000)}-0"
    entries = lab.main.xrange(lab.sink_key, start, "+", count=1)
    if not entries:
        return None
    return max(0.001, int(entries[0][0].split(b"-")[0]) / 1000 - when)  # never 0.0: waits test truth


def _finish(lab: Lab, producer: Producer, proc: Proc, timeout_s: float = 90) -> tuple[bool, int]:
    """Stop producing, wait until everything produced is acked, SIGTERM the run;
    return (alive before the SIGTERM, exit code)."""
    producer.stop()
    lab.wait_drained(len(producer.produced.ids), timeout_s)
    alive = proc.alive()
    proc.signal(signal.SIGTERM)
    return alive, proc.wait(30)


def _outage(lab: Lab, sid: str, title: str, fault: str, down_s: float, quick: bool) -> Result:
    """A steady load, then ``fault`` on the source's Redis for ``down_s``: the process
    stays up, resumes within seconds, loses nothing, does not flood its log."""
    began = time.monotonic()
    server = lab.redis_server("aof")
    producer = lab.producer()
    producer.start(rate_per_s=RATE)
    # With a pause, a threaded sink: an inline one would hold the event loop in its own
    # hung XADD for the whole pause, and the source's calls (whose socket timeout this
    # checks) would never be waited on.
    proc = lab.run(**{**ENV, **({"PTR_SINK_THREADED": "1"} if fault == "pause" else {})})
    wait_until(lambda: lab.sink_count() >= 200, 60, "200 messages completed")
    before = len(lab.log_lines("WARNING", "ERROR", "CRITICAL"))
    fault_at = time.time()
    if fault == "restart":
        server.restart(down_s=down_s)
    else:
        server.pause()
        time.sleep(down_s)
        server.resume()
    back_at = time.time()
    resumed = wait_until(lambda: _first_after(lab, back_at), 60, "progress after the fault")
    time.sleep(1.0 if quick else 5.0)
    alive, code = _finish(lab, producer, proc)
    report = lab.check(producer, fault_at=fault_at)
    text = proc.log()
    storm = log_storm(text) - before
    checks: list[Check] = [
        check("the process never exited during the fault", alive),
        equal("exit code after SIGTERM", code, 0),
        at_most("progress after Redis was back", round(float(resumed or 0), 2), 5.0, " s"),
        at_most("warning and error lines about the outage", storm, 12),
        equal("completed", report.completed, report.produced),
        at_most("completed twice", report.dup_sink, 100),
    ]
    if fault == "pause" and down_s > 11:
        timeouts = count_lines(text, "Timeout")
        checks.append(check("a hung connection was noticed (socket timeout), not waited on forever",
                            timeouts > 0, f"{timeouts} log lines name a timeout"))  # fmt: skip
    return result(sid, title, report, checks, began,
                  f"Redis {fault} for {down_s:.0f} s; progress {resumed:.2f} s after it was back; "
                  f"{storm} warning/error lines")  # fmt: skip


def b1_restart_aof(lab: Lab, quick: bool) -> Result:
    """Redis (AOF, fsync always) restarted under load."""
    return _outage(lab, "B1", "Redis restarted with AOF on", "restart", 1.0 if quick else 5.0, quick)


def b5_paused(lab: Lab, quick: bool) -> Result:
    """Redis frozen with SIGSTOP longer than the client's socket timeout (10 s) and its
    one retry (a call in flight fails after about 20 s), then SIGCONT: no consumer hangs
    on a dead connection."""
    return _outage(lab, "B5", "Redis paused (SIGSTOP)", "pause", 22.0 if quick else 25.0, quick)


def b3_restart_empty(lab: Lab, quick: bool) -> Result:
    """Redis without persistence killed and restarted empty: the stream and the group are
    gone. The group is recreated once, on purpose, counted and logged once; no hot loop;
    what Redis lost is counted apart; everything produced after the restart completes."""
    began = time.monotonic()
    server = lab.redis_server("none")
    producer = lab.producer()
    producer.burst(600 if quick else 5000)
    proc = lab.run(**{**ENV, "PTR_WORK_MS": "3"})
    wait_until(lambda: lab.sink_count() >= 200, 60, "200 messages completed")
    fault_at = time.time()
    server.kill()
    time.sleep(1.0)
    server.start()
    before = set(producer.produced.ids)
    later = producer.burst(300 if quick else 3000)
    wait_until(lambda: lab.drained(len(later)), 60, "the messages produced after the restart to be acked")
    time.sleep(1.0)  # a few more empty polls and monitor runs: no hot loop, no second reset
    alive = proc.alive()
    proc.signal(signal.SIGTERM)
    code = proc.wait(30)
    report = lab.check(producer, fault_at=fault_at)
    redis_lost = sorted(set(report.lost_seqs) & before)
    _count_redis_loss(report, redis_lost)
    metrics = lab.metrics()
    text = proc.log()
    recreated = int(metrics.get(f"{lab.name}.source.group.recreated", 0))
    polls = int(
        metrics.get(f"{lab.name}.source.poll.success", 0) + metrics.get(f"{lab.name}.source.poll.error", 0)
    )
    checks = [
        check("the process never exited", alive),
        equal("exit code after SIGTERM", code, 0),
        equal("group re-creations counted", recreated, 1),
        equal("group re-creations logged", count_lines(text, "was missing"), 1),
        check(
            "everything produced after the restart completed",
            set(later) <= set(_completed(lab)),
            f"{len(set(later) - set(_completed(lab)))} not completed",
        ),
        at_most("polls in the whole run (no hot loop)", polls, 5000),
    ]
    return result("B3", "Redis restarted without persistence", report, checks, began,
                  f"Redis lost {len(redis_lost)} messages it held (counted apart, not by pytempest); "
                  f"{polls} polls in {time.monotonic() - began:.0f} s")  # fmt: skip


def _completed(lab: Lab) -> set[int]:
    return {int(f[b"seq"]) for _, f in lab.main.xrange(lab.sink_key)}


def _count_redis_loss(report: Report, seqs: list[int]) -> None:
    """Move messages Redis itself lost (no persistence) out of ``lost``."""
    report.lost_by_redis = len(seqs)
    report.lost -= len(seqs)
    report.lost_seqs = sorted(set(report.lost_seqs) - set(seqs))


def b4_down_at_start(lab: Lab, quick: bool) -> Result:
    """``pytempest run`` started while Redis is down: it waits with a growing pause and
    runs once Redis is up; an engine told not to wait fails at once with a clear error
    that names the URL without its password."""
    began = time.monotonic()
    server = lab.redis_server("aof")
    producer = lab.producer()
    producer.burst(300)
    server.stop()
    proc = lab.run("--until-idle")
    wait_until(lambda: "not reachable" in proc.log(), 30, "the run to say Redis is not reachable")
    down_s = 2.0 if quick else 25.0
    time.sleep(down_s)
    waiting_lines = count_lines(proc.log(), "not reachable")
    alive = proc.alive()
    server.start()
    code = proc.wait(60)
    report = lab.check(producer)
    message = _no_wait_error(free_port())  # nothing listens there
    checks = [
        check("it kept waiting while Redis was down", alive),
        at_most(
            "'not reachable' lines while down (one per 10 s, not one per try)",
            waiting_lines,
            3 + int(down_s // 10),
        ),
        equal("exit code once Redis was up", code, 0),
        equal("completed", report.completed, report.produced),
        check(
            "told not to wait: a clear error",
            "cannot reach Redis at redis://app:***@127.0.0.1" in message,
            message,
        ),
        check("the error hides the password", "s3cret-b4" not in message, message),
    ]
    return result(
        "B4", "Redis down at start", report, checks, began, f"{waiting_lines} 'not reachable' lines"
    )


def _no_wait_error(port: int) -> str:
    """The error an engine with ``wait_for_source=False`` raises for a Redis that is down."""
    from .. import topology as harness

    async def attempt() -> str:
        source = RedisStreamSource(f"redis://app:s3cret-b4@127.0.0.1:{port}/0", "k", "g")
        topo = Topology("nowait", Pipeline().task(harness.Work()), source)
        try:
            await Engine(topo, wait_for_source=False).run()
        except SourceConnectionError as exc:
            return str(exc)
        return "no error"

    return asyncio.run(attempt())


def b6_proxy_faults(lab: Lab, quick: bool) -> Result:
    """Through a TCP proxy: every connection reset three times, 200 ms of delay, a black
    hole (a partition: bytes held, delivered on heal), and (full run) bytes dropped in
    transit for longer than the socket timeout; no loss, progress after each."""
    began = time.monotonic()
    server = lab.redis_server("aof")
    proxy = lab.proxy(server.port)
    producer = lab.producer()
    producer.start(rate_per_s=RATE)
    proc = lab.run(**ENV)
    wait_until(lambda: lab.sink_count() >= 200, 60, "200 messages completed")
    fault_at = time.time()
    resumed: dict[str, float] = {}

    def progress(name: str) -> None:
        t = time.time()
        resumed[name] = float(wait_until(lambda: _first_after(lab, t), 60, f"progress after {name}"))  # type: ignore[arg-type]

    for i in range(3):
        proxy.cut()
        progress(f"cut {i + 1}")
    proxy.delay(200)
    time.sleep(2.0)
    proxy.heal()
    progress("delay")
    proxy.blackhole()
    time.sleep(4.0 if quick else 15.0)
    proxy.heal()
    progress("black hole")
    limits = {name: 5.0 for name in resumed}
    if not quick:
        proxy.drop()
        time.sleep(12.0)
        proxy.heal()
        progress("dropped bytes")
        limits["dropped bytes"] = 10.0 + 5.0  # a request eaten in transit waits out the socket timeout
    alive, code = _finish(lab, producer, proc)
    report = lab.check(producer, fault_at=fault_at)
    checks = [
        check("the process never exited", alive),
        equal("exit code after SIGTERM", code, 0),
        *(at_most(f"progress after {name}", round(v, 2), limits[name], " s") for name, v in resumed.items()),
        equal("completed", report.completed, report.produced),
        at_most("completed twice", report.dup_sink, 100),
        check("the proxy carried the traffic", proxy.connections >= 4, f"{proxy.connections} connections"),
    ]
    return result("B6", "connections cut, delayed and black-holed", report, checks, began,
                  "progress after each fault (s): " + ", ".join(f"{k} {v:.2f}" for k, v in resumed.items()))  # fmt: skip
