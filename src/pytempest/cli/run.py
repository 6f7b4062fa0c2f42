"""``pytempest run`` and ``pytempest test``: run a topology in this process (or, with
``run --processes N``, its tasks in worker processes through Redis)."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

import click

from pytempest.cli.director import cluster_dashboard, dashboard_options, embedded_dashboard
from pytempest.cli.loader import load_configured
from pytempest.cli.options import (
    EXIT_ABORTED,
    EXIT_FAILED,
    EXIT_OK,
    config_option,
    exit_codes,
    fail,
    log_options,
    setting_flags,
    setup_logging,
)
from pytempest.cli.options import setting_options as settings_options
from pytempest.cli.summary import format_summary
from pytempest.config.settings import BY_KEY

log = logging.getLogger("pytempest.cli")

LOCAL_CLUSTER = "pytempest.runtimes.redis_bus.local"


@click.command()
@click.argument("target")
@config_option
@click.option("--until-idle", is_flag=True, help="Stop once the source is empty and nothing is in flight.")
@click.option(
    "--duration-ms",
    type=click.IntRange(min=1),
    default=None,
    metavar="MS",
    help="Stop after this many milliseconds.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Distributed runtime: run the tasks in N worker processes that talk through Redis (redis_url).",
)
@click.option("--quiet", is_flag=True, help="No progress line and no summary.")
@click.option(
    "--no-wait",
    is_flag=True,
    help="Exit with code 3 when the source cannot be reached at start, instead of waiting for it.",
)
@dashboard_options
@settings_options
@log_options
def run(target: str, config: str | None, until_idle: bool, duration_ms: int | None, processes: int | None,
        quiet: bool, no_wait: bool, log_level: str | None, log_format: str | None,
        **settings: Any) -> None:  # fmt: skip
    """Run TARGET (package.module:attribute or path/to/file.py:attribute) in this process.

    The first SIGTERM/SIGINT stops reading and lets in-flight messages finish (up to
    graceful_shutdown_ms); a second one stops at once (exit code 130).
    """
    from pytempest.cli.progress import Progress
    from pytempest.cli.runner import run_engine
    from pytempest.engine.engine import Engine

    flags = setting_flags(settings)
    with exit_codes():
        setup_logging(log_level, log_format)
        configured = load_configured(target, config, flags)
    if processes is not None:
        with cluster_dashboard(configured.redis_url, settings):
            code = _run_processes(
                target, config, processes, configured.redis_url, flags, until_idle, duration_ms
            )
        sys.exit(code)
    topology = configured.topology
    dashboard = embedded_dashboard(topology, settings)
    engine = (
        Engine(topology, wait_for_source=not no_wait)
        if dashboard is None
        else Engine(topology, None, dashboard.registry, dashboard.observers, wait_for_source=not no_wait)
    )
    progress = Progress(sys.stderr) if not quiet and sys.stderr.isatty() else None
    with exit_codes():
        running = run_engine(engine, until_idle=until_idle, duration_ms=duration_ms, progress=progress)
        reason = asyncio.run(running if dashboard is None else dashboard.run(running))
    if not quiet:
        click.echo(format_summary(topology.name, engine.snapshot(), list(topology.graph.names)))
    if reason == "aborted":
        exit_now(EXIT_ABORTED)


def _run_processes(target: str, config: str | None, processes: int, redis_url: str, flags: Mapping[str, Any],
                   until_idle: bool, duration_ms: int | None) -> int:  # fmt: skip
    if importlib.util.find_spec(LOCAL_CLUSTER) is None:
        fail(
            "run --processes needs the distributed runtime (pytempest.runtimes.redis_bus), which is "
            "not in this installation; run without --processes to run every task in this process"
        )
    local = importlib.import_module(LOCAL_CLUSTER)
    # The processes read the same Topology.toml and environment; flags reach them as
    # PYTEMPEST_* variables, which keeps flags above the environment there too.
    for key, value in flags.items():
        env = BY_KEY[key].env
        if env:
            os.environ[env] = str(value).lower() if isinstance(value, bool) else str(value)
    code: int = local.run_local_cluster(
        target=target,
        processes=processes,
        redis_url=redis_url,
        config_path=config,
        until_idle=until_idle,
        duration_ms=duration_ms,
    )
    return code


def exit_now(code: int) -> None:
    """Exit without waiting for task threads still blocked in ``handle`` (second signal)."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


@click.command()
@click.argument("target")
@config_option
@click.option(
    "--duration-ms",
    type=click.IntRange(min=1),
    default=None,
    metavar="MS",
    help="Run this long instead of until the source is idle.",
)
@click.option(
    "--timeout-ms",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    metavar="MS",
    help="Stop anyway after this long (and fail).",
)
@settings_options
@log_options
def test(target: str, config: str | None, duration_ms: int | None, timeout_ms: int, log_level: str | None,
         log_format: str | None, **settings: Any) -> None:  # fmt: skip
    """A test run of TARGET: run it in this process until its source is idle, print the
    metrics, and exit 1 if any message failed (usable in CI)."""
    from pytempest.testing.testrun import TestRun

    with exit_codes():
        setup_logging(log_level, log_format)
        topology = load_configured(target, config, setting_flags(settings)).topology
        metrics = TestRun(topology).run(
            until_idle=duration_ms is None, duration_ms=duration_ms, timeout_ms=timeout_ms
        )
    click.echo(format_summary(topology.name, metrics, list(topology.graph.names)))
    click.echo("")
    click.echo(metric_table(metrics))
    click.echo("")
    verdict, code = test_verdict(topology.name, metrics, metrics.reason, timeout_ms)
    click.echo(verdict)
    sys.exit(code)


def metric_table(metrics: Mapping[str, float]) -> str:
    """Every metric, sorted by name, one per line."""
    if not metrics:
        return "(no metrics)"
    width = max(len(k) for k in metrics)
    lines = []
    for key in sorted(metrics):
        value = metrics[key]
        shown = f"{int(value)}" if float(value).is_integer() else f"{value:.3f}"
        lines.append(f"{key:<{width}}  {shown:>12}")
    return "\n".join(lines)


def test_verdict(
    topology: str, metrics: Mapping[str, float], reason: str, timeout_ms: int
) -> tuple[str, int]:
    """The last line of ``pytempest test`` and its exit code."""

    def v(key: str) -> int:
        return int(metrics.get(f"{topology}.{key}", 0))

    errors, timeouts = v("topology.source.msg.error"), v("topology.source.msg.timeout")
    problems = []
    if errors or timeouts:
        problems.append(f"{errors + timeouts} failed attempts ({errors} errors, {timeouts} timeouts)")
    if v("topology.source.msg.deadletter"):
        problems.append(f"{v('topology.source.msg.deadletter')} dead-lettered")
    if v("topology.source.msg.retry.dropped"):
        problems.append(f"{v('topology.source.msg.retry.dropped')} dropped after their retries")
    if v("topology.deadletter.error"):
        problems.append(f"{v('topology.deadletter.error')} dead letter errors")
    if reason == "timeout":
        problems.append(f"not idle after --timeout-ms {timeout_ms} (in flight: {v('pipeline.inflight')})")
    if problems:
        return "FAILED: " + "; ".join(problems), EXIT_FAILED
    acked = v("source.msg.acked.success")
    return f"OK: {v('source.msg.read')} messages read, {acked} acked, none failed", EXIT_OK
