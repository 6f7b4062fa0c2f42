"""``pytempest run TARGET --processes N``: a whole distributed topology on one machine.

This process runs the topology instance; N forked worker processes share every task.
They start and stop together: Ctrl-C (SIGINT to the whole terminal process group) or
SIGTERM stops the topology first, which lets in-flight messages finish while the
workers still run, then the workers get SIGTERM, finish the entries in hand and exit.
A second Ctrl-C stops the topology at once. A worker that dies during the run stops the
topology and makes the exit code 1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from multiprocessing.process import BaseProcess

from pytempest.engine.engine import Engine, EngineError
from pytempest.errors import ConfigError, PipelineError, SourceError, TargetError
from pytempest.runtimes.redis_bus.process import (
    EXIT_ABORTED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SOURCE,
    EXIT_USAGE,
    run_topology,
    start_workers,
    stop_workers,
)
from pytempest.runtimes.redis_bus.settings import BusSettings
from pytempest.topology import Topology

log = logging.getLogger("pytempest.bus")

WORKER_STOP_GRACE_S = 30.0


def run_local_cluster(
    target: str,
    processes: int,
    redis_url: str,
    config_path: str | None,
    until_idle: bool,
    duration_ms: int | None,
) -> int:
    """Run ``target`` as one topology process plus ``processes`` worker processes that
    share all tasks, all talking through the Redis at ``redis_url``; return the exit code
    (0 ok, 1 failed or a worker died, 2 bad target or configuration, 3 Redis or the
    source unreachable, 130 stopped at once by a second signal)."""
    try:
        topology = _load(target, config_path)
        settings = BusSettings.from_env()
    except (TargetError, PipelineError, ConfigError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if processes < 1:
        log.error("--processes must be at least 1; got %d", processes)
        return EXIT_USAGE
    procs = start_workers(topology, [None] * processes, redis_url, settings, ignore_sigint=True)
    log.info(
        "topology %s: started %d worker processes (pids %s) sharing tasks %s",
        topology.name, processes, ", ".join(str(p.pid) for p in procs), ", ".join(topology.graph.names),
    )  # fmt: skip
    code = EXIT_OK
    engine: Engine | None = None
    try:
        reason, engine, died = asyncio.run(
            _run(topology, redis_url, settings, procs, until_idle, duration_ms)
        )
        if died:
            code = EXIT_FAILED
        elif reason == "aborted":
            code = EXIT_ABORTED
    except SourceError as exc:
        log.error("%s", exc)
        code = EXIT_SOURCE
    except EngineError as exc:
        log.error("%s", exc)
        code = EXIT_FAILED
    finally:
        grace = topology.graceful_shutdown_ms / 1000 + WORKER_STOP_GRACE_S
        codes = stop_workers(procs, grace)
    bad = [c for c in codes if c not in (0, None)]
    if bad and code == EXIT_OK:
        log.error("worker processes exited with codes %s", codes)
        code = EXIT_FAILED
    if engine is not None:
        _print_summary(topology, engine)
    return code


def _load(target: str, config_path: str | None) -> Topology:
    # The CLI's loader and the configuration layer: this function is the CLI's helper.
    from pytempest.cli.loader import load_topology

    topology = load_topology(target)
    try:
        from pytempest.config import configure
    except ImportError:  # pragma: no cover - the config package ships with pytempest
        if config_path:
            raise ConfigError(
                f"--config {config_path}: this installation cannot read Topology.toml"
            ) from None
        return topology
    return configure(topology, config_path).topology


async def _run(
    topology: Topology,
    url: str,
    settings: BusSettings,
    procs: Sequence[BaseProcess],
    until_idle: bool,
    duration_ms: int | None,
) -> tuple[str, Engine, list[BaseProcess]]:
    died: list[BaseProcess] = []
    loop = asyncio.get_running_loop()
    holder: list[Engine] = []

    def on_exit(proc: BaseProcess) -> None:
        loop.remove_reader(proc.sentinel)
        proc.join(1)
        if proc.exitcode == 0:
            log.warning("worker process %s stopped (SIGTERM?) while the topology runs", proc.pid)
            return
        log.error("worker process %s died (exit code %s) during the run; stopping", proc.pid, proc.exitcode)
        died.append(proc)
        if holder and len(died) == 1:
            holder[0].request_stop()

    for proc in procs:
        loop.add_reader(proc.sentinel, on_exit, proc)
    try:
        reason, engine = await run_topology(
            topology, url, settings=settings, until_idle=until_idle, duration_ms=duration_ms,
            engine_ready=holder.append,
        )  # fmt: skip
    finally:
        for proc in procs:
            loop.remove_reader(proc.sentinel)
    return reason, engine, died


def _print_summary(topology: Topology, engine: Engine) -> None:
    from pytempest.cli.summary import format_summary

    print(format_summary(topology.name, engine.snapshot(), list(topology.graph.names)), flush=True)
