"""Process entry points of the distributed runtime, used by ``pytempest topology``,
``pytempest task`` and ``pytempest run --processes N``.

These are the only functions of the runtime that install signal handlers or fork, and
they do so only when the CLI calls them:

* :func:`run_topology`: one topology instance; the first SIGTERM/SIGINT stops reading and
  lets in-flight messages finish (``graceful_shutdown_ms``), the second stops at once.
  Workers are not told anything: they keep serving the next topology start.
* :func:`run_worker`: one worker; the first SIGTERM/SIGINT finishes and acks the entries
  in hand and returns, the second returns at once (entries in hand are claimed later).
* :func:`start_workers` / :func:`supervise`: fork worker processes (each with its own
  consumer name) and wait for them, forwarding SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess

from pytempest.engine.engine import Engine, StopReason
from pytempest.metrics.registry import Registry
from pytempest.redis.connection import connect
from pytempest.runtimes.redis_bus.executor import RedisBusExecutor
from pytempest.runtimes.redis_bus.settings import BusSettings
from pytempest.runtimes.redis_bus.worker import Worker
from pytempest.runtimes.status_publisher import RedisSnapshotSink, StatusPublisher
from pytempest.topology import Topology

log = logging.getLogger("pytempest.bus")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SOURCE, EXIT_ABORTED = 0, 1, 2, 3, 130


def _install(handler: Callable[[], None], signals: Sequence[signal.Signals]) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    return installed


def _remove(installed: list[signal.Signals]) -> None:
    loop = asyncio.get_running_loop()
    for sig in installed:
        loop.remove_signal_handler(sig)


async def run_topology(
    topology: Topology,
    url: str,
    *,
    settings: BusSettings | None = None,
    until_idle: bool = False,
    duration_ms: int | None = None,
    instance: str | None = None,
    engine_ready: Callable[[Engine], None] | None = None,
) -> tuple[StopReason, Engine]:
    """Run one topology instance whose tasks run in workers; return why it stopped.

    ``engine_ready`` is called with the engine before it starts (a local cluster uses
    it to stop the engine when a worker dies).
    """
    registry = Registry()
    executor = RedisBusExecutor(topology.name, url, settings=settings, registry=registry, instance=instance)
    bus = executor.settings
    # The dashboard's status snapshot, refreshed with every heartbeat (pytempest director).
    publisher = StatusPublisher(topology, registry, instance=executor.instance, mode="distributed",
                                interval_ms=bus.heartbeat_interval_ms)  # fmt: skip
    sink = RedisSnapshotSink(url, topology.name, executor.instance, bus.heartbeat_ttl_ms)
    engine = Engine(topology, executor, registry, observers=(publisher,))
    if engine_ready is not None:
        engine_ready(engine)
    installed = _install(engine.request_stop, (signal.SIGTERM, signal.SIGINT))
    try:
        async with publisher.publishing(sink):
            reason = await engine.run(until_idle=until_idle, duration_ms=duration_ms)
    finally:
        _remove(installed)
        await _final_status(executor, url)
    return reason, engine


async def _final_status(executor: RedisBusExecutor, url: str) -> None:
    client = connect(url)
    try:
        await executor.publish_status(client, final=True)
    except Exception as exc:
        log.warning("topology %s: could not publish the final status: %r", executor.topology, exc)
    finally:
        await client.aclose()


async def run_worker(
    topology: Topology,
    tasks: Sequence[str] | None,
    url: str,
    *,
    settings: BusSettings | None = None,
    ignore_sigint: bool = False,
) -> Worker:
    """Run one worker until SIGTERM (or SIGINT unless ``ignore_sigint``)."""
    worker = Worker(topology, tasks, url, settings=settings)
    signals = (signal.SIGTERM,) if ignore_sigint else (signal.SIGTERM, signal.SIGINT)
    installed = _install(worker.request_stop, signals)
    try:
        await worker.run()
    finally:
        _remove(installed)
    return worker


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies (best effort)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _worker_main(
    topology: Topology, tasks: Sequence[str] | None, url: str, settings: BusSettings, ignore_sigint: bool
) -> None:
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    from pytempest.errors import ConfigError, SourceError

    try:
        asyncio.run(run_worker(topology, tasks, url, settings=settings, ignore_sigint=ignore_sigint))
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(EXIT_USAGE)
    except SourceError as exc:
        log.error("%s", exc)
        sys.exit(EXIT_SOURCE)
    sys.exit(EXIT_OK)


def start_workers(
    topology: Topology,
    task_sets: Sequence[Sequence[str] | None],
    url: str,
    settings: BusSettings,
    *,
    ignore_sigint: bool = False,
) -> list[BaseProcess]:
    """Fork one worker process per entry of ``task_sets`` (None: every task)."""
    ctx = multiprocessing.get_context("fork")
    procs: list[BaseProcess] = []
    for i, tasks in enumerate(task_sets):
        proc = ctx.Process(
            target=_worker_main,
            args=(topology, tasks, url, settings, ignore_sigint),
            name=f"pytempest-worker-{i}",
            daemon=False,
        )
        proc.start()
        procs.append(proc)
    return procs


def stop_workers(procs: Sequence[BaseProcess], timeout_s: float) -> list[int | None]:
    """SIGTERM every live worker, wait up to ``timeout_s``, SIGKILL what is left."""
    for proc in procs:
        if proc.exitcode is None:
            proc.terminate()
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.exitcode is None:
            log.error("worker process %s did not stop within %.0f s; killing it", proc.pid, timeout_s)
            proc.kill()
            proc.join(5)
    return [p.exitcode for p in procs]


def supervise(procs: Sequence[BaseProcess]) -> int:
    """Wait for forked workers, forwarding SIGTERM/SIGINT to them; return the exit code.

    If a worker exits on its own with an error, the others are stopped and the exit code
    is 1 (a worker that dies is a failure, never silently ignored).
    """
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for proc in procs:
            if proc.exitcode is None and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = EXIT_OK
    try:
        live = list(procs)
        while live:
            multiprocessing.connection.wait([p.sentinel for p in live], timeout=0.5)
            for proc in [p for p in live if p.exitcode is not None]:
                live.remove(proc)
                if proc.exitcode != 0 and not stopping:
                    log.error(
                        "worker process %s exited with code %s; stopping the others", proc.pid, proc.exitcode
                    )
                    code = EXIT_FAILED
                    forward(signal.SIGTERM, None)
                elif proc.exitcode not in (0, -signal.SIGTERM):
                    code = EXIT_FAILED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
