"""Helpers for the distributed tests: start real ``pytempest`` processes, read Redis.

Every wait is bounded: :func:`wait_for` polls a condition until a deadline and fails the
test with a description of what it waited for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).parent
BOOK = f"{HERE / 'book.py'}:topology"
ENTRY = "from pytempest.cli.main import main; main()"

# Short timings so crashes are noticed within a second or two.
FAST_BUS = {
    "PYTEMPEST_BUS_HEARTBEAT_INTERVAL_MS": "200",
    "PYTEMPEST_BUS_HEARTBEAT_TTL_MS": "1500",
    "PYTEMPEST_BUS_CLAIM_IDLE_MS": "1000",
    "PYTEMPEST_BUS_CLAIM_INTERVAL_MS": "250",
    "PYTEMPEST_BUS_STATUS_INTERVAL_MS": "300",
    "PYTEMPEST_BUS_NO_WORKER_WARN_MS": "1000",
    "PYTEMPEST_BUS_BLOCK_MS": "200",
}


class Proc:
    """A ``pytempest`` subprocess whose output goes to a file (read it with :meth:`log`)."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, new_group: bool = False) -> None:
        self.args = args
        self.log_path = log_path
        self._out = open(log_path, "wb")  # noqa: SIM115 - closed in wait()/kill()
        self.popen = subprocess.Popen(
            [sys.executable, "-c", ENTRY, *args],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=new_group,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise AssertionError(
                f"pytempest {' '.join(self.args)} did not exit within {timeout} s:\n{self.log()[-3000:]}"
            ) from None
        finally:
            self._out.close()
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self._out.close()


class Cluster:
    """Starts topology and worker processes for one test and cleans them up."""

    def __init__(self, tmp: Path, url: str, prefix: str, **env: str) -> None:
        self.tmp = tmp
        self.url = url
        self.prefix = prefix
        self.name = f"{prefix}-book"
        self.source_key = f"{prefix}:source"
        self.counter = f"{prefix}:t4count"
        self.env = {
            **os.environ,
            **FAST_BUS,
            "PT_REDIS_URL": url,
            "PT_SOURCE_KEY": self.source_key,
            "PT_NAME": self.name,
            "PT_COUNTER": self.counter,
            "PYTEMPEST_REDIS_URL": url,
            **env,
        }
        self.env.pop("PYTEMPEST_CONFIG", None)
        self.procs: list[Proc] = []
        self.client = redis.Redis.from_url(url)

    def start(self, *args: str, new_group: bool = False, **env: str) -> Proc:
        label = f"{len(self.procs)}-{args[0]}"
        proc = Proc(list(args), {**self.env, **env}, self.tmp / f"{label}.log", new_group)
        self.procs.append(proc)
        return proc

    def topology(self, *extra: str, **env: str) -> Proc:
        return self.start("topology", BOOK, *extra, **env)

    def worker(self, *extra: str, **env: str) -> Proc:
        return self.start("task", BOOK, "--all", *extra, **env)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
        self.client.srem("pt:topologies", self.name)
        self.client.close()

    # -- reading Redis -------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-c", ENTRY, "status", "--json", "--redis", self.url, self.name],
            capture_output=True, timeout=30, env=self.env, check=True,
        )  # fmt: skip
        data: dict[str, Any] = json.loads(out.stdout)["topologies"][0]
        return data

    def status_text(self, all_topologies: bool = False) -> str:
        name = [] if all_topologies else [self.name]
        out = subprocess.run(
            [sys.executable, "-c", ENTRY, "status", "--redis", self.url, *name],
            capture_output=True, timeout=30, env=self.env, check=True,
        )  # fmt: skip
        return out.stdout.decode()

    def instances(self, alive: bool = True) -> list[str]:
        """Names of the topology instances whose heartbeat is (or is not) alive."""
        out = []
        for member in self.client.zrange("{pt:" + self.name + "}:members", 0, -1):
            kind, _, name = member.decode().partition(":")
            if (
                kind == "topology"
                and bool(self.client.exists("{pt:" + self.name + "}:hb:topology:" + name)) == alive
            ):
                out.append(name)
        return out

    def acked(self, group: str = "book") -> int:
        """Source entries delivered and acked so far."""
        g = self.source_group(group)
        return int(g["entries-read"] or 0) - int(g["pending"])

    def source_group(self, group: str = "book") -> dict[str, Any]:
        """``XINFO GROUPS`` of the source group (zeros before the topology made it)."""
        for g in self.client.xinfo_groups(self.source_key):
            if g["name"].decode() == group:
                return dict(g)
        return {"name": group, "entries-read": 0, "pending": 0, "lag": None}

    def source_done(self, total: int, group: str = "book") -> bool:
        g = self.source_group(group)
        return bool(int(g["entries-read"] or 0) >= total and g["pending"] == 0 and g["lag"] == 0)

    def final_metrics(self) -> dict[str, dict[str, float]]:
        """The final metric snapshot of every topology instance that stopped cleanly."""
        return self.final_metrics_on(self.url)

    def final_metrics_on(self, url: str) -> dict[str, dict[str, float]]:
        """:meth:`final_metrics` read from the bus Redis at ``url``."""
        client = redis.Redis.from_url(url)
        try:
            raw = client.hgetall("{pt:" + self.name + "}:status")
        finally:
            client.close()
        snaps = {k.decode(): json.loads(v) for k, v in raw.items()}
        return {k: s["metrics"] for k, s in snaps.items() if s.get("final")}

    def metric(self, metrics: dict[str, float], key: str) -> int:
        return int(metrics.get(f"{self.name}.{key}", 0))

    def task_pending(self) -> int:
        total = 0
        for t in ("T1", "T2", "T3", "T4"):
            key = "{pt:" + self.name + "}:task:" + t
            if self.client.exists(key):
                total += self.client.xpending(key, "workers")["pending"]
        return total


def prime(url: str, key: str, n: int) -> None:
    from pytempest.sources.redis_stream import prime as prime_stream

    prime_stream(url, key, (f"m{i}" for i in range(n)))


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60.0, every: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@contextmanager
def cluster(tmp: Path, url: str, prefix: str, **env: str) -> Iterator[Cluster]:
    c = Cluster(tmp, url, prefix, **env)
    try:
        yield c
    finally:
        c.close()


def stop(proc: Proc, timeout: float = 30.0) -> int:
    """SIGTERM ``proc`` and return its exit code."""
    proc.signal(signal.SIGTERM)
    return proc.wait(timeout)


class SpareRedis:
    """A private redis-server without persistence on a free port (restartable)."""

    def __init__(self, tmp: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tmp / "spare-redis"
        self.dir.mkdir()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def ping() -> bool:
            client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        wait_for(f"redis-server on port {self.port}", ping, 10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
