"""The Redis of the distributed runtime restarts (no persistence) in the middle of a run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from .cluster import SpareRedis, cluster, prime, stop, wait_for

MESSAGES = 500


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_bus_redis_restart_loses_no_message(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    bus = SpareRedis(tmp_path)
    bus.start()
    # The source stays on the test Redis; task and result streams live on the spare one.
    env = {
        "PT_POLICY": "retry(10, delay_ms=100)",
        "PT_MSG_TIMEOUT_MS": "2000",
        "PYTEMPEST_REDIS_URL": bus.url,
    }
    try:
        with cluster(tmp_path, redis_url, key_prefix, **env) as c:
            prime(redis_url, c.source_key, MESSAGES)
            workers = [c.worker("--redis", bus.url) for _ in range(2)]
            # Both started (a worker that cannot reach Redis at start exits 3 by design),
            # so the restart below meets running workers, never one still starting.
            hb = "{pt:" + c.name + "}:hb:worker:*"
            with redis.Redis.from_url(bus.url) as spare:
                wait_for("both workers registered", lambda: len(list(spare.scan_iter(match=hb))) >= 2)
            top = c.topology("--until-idle", "--redis", bus.url)
            wait_for("a fifth of the messages acked", lambda: c.acked() >= MESSAGES // 5)
            bus.stop()  # everything in flight on the bus is gone
            bus.start()
            assert top.wait(120) == 0, top.log()[-3000:]
            for w in workers:
                assert stop(w) == 0, w.log()[-3000:]
            assert c.source_done(MESSAGES), c.source_group()
            (metrics,) = c.final_metrics_on(bus.url).values()
            assert c.metric(metrics, "source.msg.acked.success") == MESSAGES
            assert c.metric(metrics, "topology.source.msg.retry.dropped") == 0
            logs = top.log() + "".join(w.log() for w in workers)
            assert "retrying" in logs or "recreat" in logs
    finally:
        bus.stop()
