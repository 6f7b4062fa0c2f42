"""Shared parts of the Redis source tests: a private redis-server, waits, a recording task."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from pytempest import Task
from pytempest.metrics.registry import Registry, ScopedMetrics
from pytempest.sources.base import Source


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` every 10 ms until it returns something truthy, at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


class RedisServer:
    """A redis-server on a spare port with an append-only file in ``dir``: survives restarts."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(directory / "redis.log", "ab")  # noqa: SIM115 - closed in stop_for_good

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._answers, 10, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Shut down cleanly (the append-only file keeps the data)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def stop_for_good(self) -> None:
        self.stop()
        self.log.close()


class Recorder(Task):
    """Counts every body it handles; raises for bodies in ``poison``."""

    def __init__(self, name: str = "record", poison: frozenset[bytes] = frozenset()) -> None:
        self.name = name
        self.poison = poison
        self.seen: Counter[bytes] = Counter()
        self.order: list[bytes] = []
        self._lock = threading.Lock()

    def handle(self, body: bytes) -> None:
        with self._lock:
            self.seen[body] += 1
            self.order.append(body)
        if body in self.poison:
            raise ValueError(f"poison {body!r}")


def bind_metrics(source: Source, topology: str = "t") -> Registry:
    """Bind ``source.metrics`` as the engine does; return the registry."""
    registry = Registry()
    source.metrics = ScopedMetrics(registry, "source.", topology=topology)
    return registry


async def run_until(
    topology: Any, done: Callable[[Any], bool], timeout_s: float = 20.0, **engine_options: Any
) -> Any:
    """Run ``topology`` on an Engine until ``done(engine)`` holds; stop it; return the engine."""
    from pytempest import Engine

    engine = Engine(topology, **engine_options)
    task = asyncio.create_task(engine.run())
    deadline = time.monotonic() + timeout_s
    try:
        while not done(engine) and not task.done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s; metrics: {engine.snapshot()}")
            await asyncio.sleep(0.01)
    finally:
        engine.request_stop()
        await asyncio.wait_for(task, 30)
    return engine
