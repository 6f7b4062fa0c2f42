"""The lab of one scenario: keys, processes, servers, producer and checker, cleaned up after.

::

    with Lab(tmp_path, "redis://127.0.0.1:6379/0", "pt-rel-1a2b") as lab:
        producer = lab.producer()
        producer.burst(500)
        proc = lab.run("--until-idle")
        assert proc.wait(60) == 0
        report = lab.check(producer)

The source stream, the sink stream and the dead-letter stream live under the lab's
prefix. The sink and the dead letter stay on the stable Redis (``main_url``) even when
the source is a private :class:`~.redis_server.RedisServer` under fault, so the outcome
records survive the fault they measure.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from .checker import Report, Run, check, final_metrics
from .messages import Producer, wait_until
from .procs import Proc, RssSampler
from .proxy import TcpProxy
from .redis_server import Persistence, RedisServer

ROOT = Path(__file__).resolve().parents[1]
TARGET = "reliability.topology:topology"

# Short bus timings, so crashes are noticed within a second or two (as in the
# distributed tests).
FAST_BUS = {
    "PYTEMPEST_BUS_HEARTBEAT_INTERVAL_MS": "200",
    "PYTEMPEST_BUS_HEARTBEAT_TTL_MS": "1500",
    "PYTEMPEST_BUS_CLAIM_IDLE_MS": "1000",
    "PYTEMPEST_BUS_CLAIM_INTERVAL_MS": "250",
    "PYTEMPEST_BUS_STATUS_INTERVAL_MS": "300",
    "PYTEMPEST_BUS_NO_WORKER_WARN_MS": "1000",
    "PYTEMPEST_BUS_BLOCK_MS": "200",
}


@dataclass
class Check:
    """One pass criterion of a scenario."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Result:
    """The outcome of one scenario: the checker's report and the pass criteria."""

    id: str
    title: str
    report: Report
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.report.lost == 0 and all(c.ok for c in self.checks)

    def explain(self) -> str:
        lines = [f"{self.id} {self.title}: {'PASS' if self.passed else 'FAIL'} ({self.seconds:.1f} s)",
                 f"  {self.report.summary()}"]  # fmt: skip
        lines += [f"  [{'ok' if c.ok else 'FAILED'}] {c.name}: {c.detail}" for c in self.checks]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class Lab:
    """Keys, processes and servers of one scenario (see the module docstring)."""

    def __init__(self, tmp: Path, main_url: str, prefix: str | None = None) -> None:
        self.tmp = tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.main_url = main_url
        self.prefix = prefix or f"pt-rel-{uuid.uuid4().hex[:10]}"
        self.name = self.prefix
        self.run_id = uuid.uuid4().hex[:6]
        self.source_url = main_url
        self.source_key = f"{self.prefix}:src"
        self.group = "g"
        self.sink_key = f"{self.prefix}:sink"
        self.dlq_key = f"{self.prefix}:dlq"
        self.dlq_url = main_url
        self.log_dir = tmp / "handles"
        self.log_dir.mkdir(exist_ok=True)
        self.metrics_file = tmp / "metrics.jsonl"
        self.procs: list[Proc] = []
        self.servers: list[RedisServer] = []
        self.proxies: list[TcpProxy] = []
        self.producers: list[Producer] = []
        self.sampler = RssSampler()
        self.settings: dict[str, str] = {}
        self.direct_url: str | None = None
        """The source Redis for the producer and the checker, when not the default."""
        self.main = redis.Redis.from_url(main_url)

    # -- context ------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
        for producer in self.producers:
            producer.close()
        for proxy in self.proxies:
            proxy.close()
        for server in self.servers:
            server.kill()
        self.sampler.close()
        keys = list(self.main.scan_iter(match=f"*{self.prefix}*", count=1000))
        if keys:
            self.main.delete(*keys)
        self.main.srem("pt:topologies", self.name)
        self.main.close()

    # -- parts ----------------------------------------------------------------------------
    def redis_server(self, persistence: Persistence = "aof", **options: Any) -> RedisServer:
        """A private redis-server (started) that becomes this lab's source Redis."""
        server = RedisServer(self.tmp / f"redis-{len(self.servers)}", persistence, **options)
        server.start()
        self.servers.append(server)
        self.source_url = server.url
        return server

    def proxy(self, port: int) -> TcpProxy:
        """A proxy to ``127.0.0.1:port``; the source URL goes through it."""
        proxy = TcpProxy(("127.0.0.1", port)).start()
        self.proxies.append(proxy)
        self.source_url = proxy.url()
        return proxy

    def producer(
        self, acts: dict[int, str] | None = None, url: str | None = None, **options: Any
    ) -> Producer:
        producer = Producer(
            url or self._direct_source_url(), self.source_key, self.run_id, acts=acts, **options
        )
        self.producers.append(producer)
        return producer

    def _direct_source_url(self) -> str:
        """The source Redis without the proxy (the producer is not under test)."""
        if self.direct_url:
            return self.direct_url
        if self.servers:
            return self.servers[-1].url
        return self.main_url

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
            "PTR_NAME": self.name,
            "PTR_SOURCE_URL": self.source_url,
            "PTR_SOURCE_KEY": self.source_key,
            "PTR_GROUP": self.group,
            "PTR_SINK_URL": self.main_url,
            "PTR_SINK_KEY": self.sink_key,
            "PTR_DLQ_URL": self.dlq_url,
            "PTR_LOG_DIR": str(self.log_dir),
            "PYTEMPEST_LOG_LEVEL": "INFO",
            **self.settings,
            **overrides,
        }
        env.pop("PYTEMPEST_CONFIG", None)
        return env

    def start(self, *args: str, new_group: bool = False, **env: str) -> Proc:
        label = f"{len(self.procs)}-{args[0]}"
        proc = Proc(list(args), self.env(**env), self.tmp / f"{label}.log", self.sampler, new_group)
        self.procs.append(proc)
        return proc

    def run(self, *extra: str, **env: str) -> Proc:
        """``pytempest run`` of the harness topology (in-process runtime)."""
        env.setdefault("PTR_METRICS_FILE", str(self.metrics_file))
        return self.start("run", TARGET, "--quiet", *extra, **env)

    def topology(self, *extra: str, **env: str) -> Proc:
        """``pytempest topology`` (distributed runtime; its bus on the stable Redis)."""
        return self.start("topology", TARGET, "--redis", self.main_url, *extra, **{**FAST_BUS, **env})

    def worker(self, *extra: str, **env: str) -> Proc:
        """``pytempest task --all`` (a worker of the distributed runtime)."""
        return self.start("task", TARGET, "--all", "--redis", self.main_url, *extra, **{**FAST_BUS, **env})

    # -- reading ----------------------------------------------------------------------------
    def records(self) -> Run:
        return Run(self.source_url_direct(), self.source_key, self.group, self.main_url, self.sink_key,
                   self.dlq_url, self.dlq_key, self.log_dir)  # fmt: skip

    def source_url_direct(self) -> str:
        return self._direct_source_url()

    def source_client(self) -> redis.Redis:
        return redis.Redis.from_url(self._direct_source_url(), socket_timeout=5)

    def sink_count(self) -> int:
        return int(self.main.xlen(self.sink_key))

    def dead_letter_count(self) -> int:
        return int(self.main.xlen(self.dlq_key))

    def group_info(self) -> dict[str, Any]:
        """``XINFO GROUPS`` of the source group (zeros before it exists or when unreachable)."""
        empty = {"pending": 0, "lag": None, "entries-read": 0}
        client = self.source_client()
        try:
            for g in client.xinfo_groups(self.source_key):
                if g["name"].decode() == self.group:
                    return dict(g)
        except redis.RedisError:
            pass
        finally:
            client.close()
        return empty

    def drained(self, produced: int) -> bool:
        """Every produced message delivered and acked (nothing pending, no lag)."""
        g = self.group_info()
        return bool(int(g["entries-read"] or 0) >= produced and g["pending"] == 0 and g["lag"] == 0)

    def wait_drained(self, produced: int, timeout_s: float = 60.0) -> float:
        """Wait until :meth:`drained`; return when (epoch seconds)."""
        wait_until(lambda: self.drained(produced), timeout_s, f"{produced} messages acked at the source",
                   every_s=0.05)  # fmt: skip
        return time.time()

    def metrics(self) -> dict[str, float]:
        """The last flush of the ``run`` process's file metric target."""
        return final_metrics(self.metrics_file)

    def check(
        self,
        producer: Producer,
        *,
        fault_at: float | None = None,
        allowed_drops: set[int] | frozenset[int] = frozenset(),
        stale_dropped: int | None = None,
    ) -> Report:
        """Run the checker over this lab's records."""
        if stale_dropped is None:
            m = self.metrics()
            stale_dropped = int(m.get(f"{self.name}.topology.task.result.stale", 0))
        return check(
            self.records(),
            producer.produced,
            allowed_drops=allowed_drops,
            fault_ms=int(fault_at * 1000) if fault_at is not None else None,
            stale_dropped=stale_dropped,
            peak_rss_mib=self.sampler.peak_mib(),
        )

    def logs(self) -> str:
        return "\n".join(p.log() for p in self.procs)

    def log_lines(self, *levels: str) -> list[str]:
        """Log lines of every process that carry one of ``levels`` (e.g. WARNING, ERROR)."""
        return [line for line in self.logs().splitlines() if any(f" {lvl} " in line for lvl in levels)]


def stream_ids(client: redis.Redis, key: str) -> Iterator[str]:
    for raw_id, _ in client.xrange(key):
        yield raw_id.decode()
