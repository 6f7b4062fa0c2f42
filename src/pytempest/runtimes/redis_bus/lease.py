"""The worker's heartbeat thread: visibility, leases, and "waiting for the topology".

It runs in its own thread with its own (blocking) Redis client so a task whose ``handle``
holds the event loop for seconds does not make its worker look dead. Every
``heartbeat_interval_ms`` it:

* writes the worker's heartbeat hash (host, pid, tasks, counts; TTL ``heartbeat_ttl_ms``)
  and its score in the members set;
* renews the lease of entries held longer than a quarter of ``claim_idle_ms``
  (``XCLAIM ... JUSTID`` by their owner resets their idle time without counting a
  delivery), so a slow batch is not claimed by another worker while it runs;
* every ``no_worker_warn_ms``, logs that it waits when no topology instance is alive.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pytempest.model.message import now_ms
from pytempest.redis import keyspace
from pytempest.redis.connection import connect_sync
from pytempest.runtimes.redis_bus.heartbeat import (
    base_fields,
    cpu_ms,
    heartbeat_key,
    queue_beat,
    queue_goodbye,
)

if TYPE_CHECKING:
    from pytempest.runtimes.redis_bus.worker import Worker

log = logging.getLogger("pytempest.worker")


@dataclass(slots=True)
class WorkerCounts:
    """What a worker reports in its heartbeat and its exit line."""

    handled: int = 0
    """task messages run (including skipped by a filter)"""
    entries: int = 0
    errors: int = 0
    claimed: int = 0
    """entries taken over from another consumer"""
    redelivered: int = 0
    """task messages run from entries delivered more than once (possible duplicates)"""
    orphaned: int = 0
    """entries skipped because their topology instance is gone"""
    orphaned_results: int = 0
    poison: int = 0
    malformed: int = 0
    redis_errors: int = 0
    last_answer_ms: int = 0


class HeartbeatThread(threading.Thread):
    """Beats for ``worker`` until :meth:`stop`."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(name=f"pytempest-heartbeat-{worker.name}", daemon=True)
        self.worker = worker
        self.started_ms = now_ms()
        self._halt = threading.Event()
        self._goodbye = False
        self._client: Any = connect_sync(worker.url, socket_timeout_s=5.0)
        self._last_wait_log = 0.0

    def stop(self, goodbye: bool) -> None:
        """Stop beating; with ``goodbye`` remove the heartbeat (a clean exit)."""
        self._goodbye = goodbye
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)

    def run(self) -> None:
        s = self.worker.settings
        try:
            while True:
                try:
                    self._beat()
                    self._renew()
                    self._check_topology()
                except Exception as exc:
                    log.warning("worker %s: heartbeat failed: %r", self.worker.name, exc)
                if self._halt.wait(s.heartbeat_interval_ms / 1000):
                    break
            if self._goodbye:
                pipe = self._client.pipeline(transaction=True)
                queue_goodbye(pipe, self.worker.topology.name, "worker", self.worker.name)
                pipe.execute()
        except Exception as exc:
            log.warning("worker %s: removing the heartbeat failed: %r", self.worker.name, exc)
        finally:
            self._client.close()

    def _beat(self) -> None:
        w = self.worker
        fields = base_fields(w.topology.name, w.task_names, self.started_ms)
        fields.update({k: v for k, v in asdict(w.counts).items()})
        fields["in_hand"] = w.in_hand
        fields["cpu_ms"] = cpu_ms()
        pipe = self._client.pipeline(transaction=True)
        queue_beat(pipe, w.topology.name, "worker", w.name, fields, w.settings.heartbeat_ttl_ms, now_ms())
        pipe.execute()

    def _renew(self) -> None:
        w = self.worker
        older = w.settings.claim_idle_ms / 4000
        now = time.monotonic()
        for i, held in enumerate(w.held):
            try:
                # The loop thread adds and removes entries; a copy may race, so retry later.
                stale = [eid for eid, since in list(held.items()) if now - since >= older]
            except RuntimeError:
                continue
            if stale:
                self._client.xclaim(w.keys[i], keyspace.TASK_GROUP, w.name, 0, stale, justid=True)

    def _check_topology(self) -> None:
        w = self.worker
        now = time.monotonic()
        if now - self._last_wait_log < w.settings.no_worker_warn_ms / 1000:
            return
        self._last_wait_log = now
        names = [m.decode() for m in self._client.zrange(keyspace.members(w.topology.name), 0, -1)]
        instances = [n.partition(":")[2] for n in names if n.startswith("topology:")]
        topology = w.topology.name
        if not any(self._client.exists(heartbeat_key(topology, "topology", i)) for i in instances):
            log.info(
                "worker %s: waiting for topology %s: no live instance yet (start it with "
                "`pytempest topology <target> --redis <url>`)",
                w.name, topology,
            )  # fmt: skip
