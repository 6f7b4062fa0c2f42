"""Crashes and outages: a consumer killed mid-batch, Redis restarted mid-run or down at start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import redis

from pytempest import Pipeline, TestRun, Topology
from pytempest.sources import PendingHandler, RedisStreamSource
from pytempest.sources.redis_stream import prime

from .helpers import Recorder, RedisServer, run_until, wait_until

CONSUMER = Path(__file__).with_name("stream_consumer.py")


def test_entries_of_a_consumer_killed_mid_batch_are_claimed_and_completed(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key, done_key = f"{key_prefix}:s", f"{key_prefix}:done"
    bodies = [b"m%03d" % i for i in range(300)]
    prime(redis_url, key, bodies)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    victim = subprocess.Popen([sys.executable, str(CONSUMER), redis_url, key, done_key], env=env)
    try:
        wait_until(lambda: r.scard(done_key) >= 60, 30, "the victim to process 60 entries")
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    left = {p["message_id"].decode() for p in r.xpending_range(key, "g", "-", "+", 1000, "victim")}
    done_by_victim = r.smembers(done_key)
    assert left, "the victim should die holding pending entries"
    assert len(done_by_victim) < len(bodies)

    record = Recorder()
    rescuer = RedisStreamSource(
        redis_url,
        key,
        "g",
        consumer="rescuer",
        block_ms=20,
        monitor_interval_ms=100,
        pending_handlers=[PendingHandler("claim", min_idle_ms=300)],
    )
    topology = Topology("rescue", Pipeline().task(record), rescuer)

    def finished(engine: object) -> bool:
        return r.xpending(key, "g")["pending"] == 0 and r.xinfo_groups(key)[0]["lag"] == 0

    engine = asyncio.run(run_until(topology, finished, timeout_s=30))

    claimed = engine.snapshot()["rescue.source.msg.claimed"]
    assert claimed == len(left)
    handled = {m.decode() for m in done_by_victim} | {b.decode() for b in record.seen}
    assert handled == {b.decode() for b in bodies}  # nothing lost
    taken_over = left
    bodies_by_id = {i.decode(): f[b"body"] for i, f in r.xrange(key)}
    assert {bodies_by_id[i] for i in taken_over} <= set(record.seen)  # the rescuer completed them
    assert all(record.seen[bodies_by_id[i]] == 1 for i in taken_over)


def test_redis_restarted_in_the_middle_of_a_run_loses_nothing(redis_server: RedisServer) -> None:
    key = "restart:s"
    bodies = [b"r%04d" % i for i in range(3000)]
    prime(redis_server.url, key, bodies)
    halfway, down = threading.Event(), threading.Event()

    class Pausing(Recorder):
        def handle(self, body: bytes) -> None:
            super().handle(body)
            if sum(self.seen.values()) == 1000:  # hold the loop until Redis is gone
                halfway.set()
                assert down.wait(30)

    record = Pausing()
    source = RedisStreamSource(redis_server.url, key, "g", consumer="c1", read_count=50, block_ms=20)
    run = TestRun(Topology("restart", Pipeline().task(record), source, max_pending=100))

    def restart() -> None:
        assert halfway.wait(30)
        redis_server.stop()
        down.set()
        wait_until(lambda: run.engine.snapshot().get("restart.source.errors{op=poll}"), 30, "a failed poll")
        redis_server.start()

    restarter = threading.Thread(target=restart)
    restarter.start()
    try:
        metrics = run.run(timeout_ms=60_000)
    finally:
        restarter.join(30)

    assert metrics.reason == "idle"
    assert set(record.seen) == set(bodies)  # every message processed at least once
    duplicates = sum(record.seen.values()) - len(bodies)
    assert duplicates <= 100  # at most what was in flight when Redis went away
    assert metrics.get_int("restart.source.reconnects") >= 1
    assert metrics.get_int("restart.source.poll.error") >= 1
    client = redis_server.client()
    try:
        assert client.xpending(key, "g")["pending"] == 0
    finally:
        client.close()


def test_a_topology_started_while_redis_is_down_waits_for_it(redis_server: RedisServer) -> None:
    key = "late:s"
    prime(redis_server.url, key, [b"a", b"b", b"c"])
    redis_server.stop()
    record = Recorder()
    source = RedisStreamSource(redis_server.url, key, "g", consumer="c1", block_ms=20)
    topology = Topology("late", Pipeline().task(record), source)
    run = TestRun(topology)

    def start_redis_once_setup_failed() -> None:
        wait_until(lambda: run.engine and run.engine.snapshot().get("late.source.errors{op=setup}"), 20)
        redis_server.start()

    starter = threading.Thread(target=start_redis_once_setup_failed)
    starter.start()
    try:
        metrics = run.run(timeout_ms=30_000)
    finally:
        starter.join(30)
    assert metrics.reason == "idle"
    assert record.seen == Counter([b"a", b"b", b"c"])
