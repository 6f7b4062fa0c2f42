"""``pytempest topology``, ``pytempest task`` and ``pytempest status``: the distributed runtime.

Every process finds the others through the Redis URL (``--redis``, else ``redis_url`` of
Topology.toml, ``$PYTEMPEST_REDIS_URL``, the source's url when it is a Redis source, else
redis://127.0.0.1:6379/0) and the topology name. Tuning (heartbeats, claim times, size
limits) comes from ``PYTEMPEST_BUS_*`` variables (see docs/distributed.md).

Exit codes: 0 ok; 1 a loop died or a worker process failed; 2 bad usage, target or
configuration; 3 Redis or the source unreachable; 130 stopped at once by a second signal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import click

from pytempest.cli.loader import load_configured
from pytempest.cli.options import (
    EXIT_ABORTED,
    EXIT_SOURCE,
    config_option,
    exit_codes,
    fail,
    log_options,
    setting_flags,
    setting_options,
    setup_logging,
)

log = logging.getLogger("pytempest.cli")

REDIS_HELP = "Redis of the distributed runtime (overrides redis_url / $PYTEMPEST_REDIS_URL)."


def _flags(settings: dict[str, Any], redis: str | None) -> dict[str, Any]:
    flags = setting_flags(settings)
    if redis:
        flags["redis_url"] = redis
    return flags


@click.command()
@click.argument("target")
@config_option
@click.option("--redis", metavar="URL", default=None, help=REDIS_HELP)
@click.option("--until-idle", is_flag=True, help="Stop once the source is empty and nothing is in flight.")
@click.option(
    "--duration-ms", type=click.IntRange(min=1), default=None, metavar="MS", help="Stop after this long."
)
@click.option("--quiet", is_flag=True, help="Do not print the summary.")
@setting_options
@log_options
def topology(target: str, config: str | None, redis: str | None, until_idle: bool, duration_ms: int | None,
             quiet: bool, log_level: str | None, log_format: str | None, **settings: Any) -> None:  # fmt: skip
    """Run TARGET's topology process: read the source, send task messages to workers
    through Redis, ack what is done. Start workers with `pytempest task`.

    The first SIGTERM/SIGINT stops reading and lets in-flight messages finish (up to
    graceful_shutdown_ms); the second stops at once. Workers keep running.
    """
    from pytempest.cli.summary import format_summary
    from pytempest.runtimes.redis_bus.process import run_topology
    from pytempest.runtimes.redis_bus.settings import BusSettings

    with exit_codes():
        setup_logging(log_level, log_format)
        configured = load_configured(target, config, _flags(settings, redis))
        bus = BusSettings.from_env()
    for warning in configured.warnings:
        log.warning("%s", warning)
    top = configured.topology
    with exit_codes():
        reason, engine = asyncio.run(
            run_topology(
                top, configured.redis_url, settings=bus, until_idle=until_idle, duration_ms=duration_ms
            )
        )
    if not quiet:
        click.echo(format_summary(top.name, engine.snapshot(), list(top.graph.names)))
    if reason == "aborted":
        sys.exit(EXIT_ABORTED)


@click.command()
@click.argument("target")
@click.argument("tasks", nargs=-1)
@click.option("--all", "all_tasks", is_flag=True, help="Serve every task of the topology.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Fork N worker processes that each serve every named task "
                   "(default: each task's [[task]] workers, 1 unless configured).")  # fmt: skip
@config_option
@click.option("--redis", metavar="URL", default=None, help=REDIS_HELP)
@log_options
def task(target: str, tasks: tuple[str, ...], all_tasks: bool, workers: int | None, config: str | None,
         redis: str | None, log_level: str | None, log_format: str | None) -> None:  # fmt: skip
    """Run worker processes for TASKS of TARGET's topology (or --all).

    Workers may start before the topology (they wait) and on any machine that reaches the
    Redis. SIGTERM/SIGINT: finish the entries in hand, ack them, exit 0; a second signal
    exits at once (what was in hand is claimed by other workers after claim_idle_ms).
    """
    from pytempest.runtimes.redis_bus.process import run_worker, start_workers, supervise
    from pytempest.runtimes.redis_bus.settings import BusSettings

    with exit_codes():
        setup_logging(log_level, log_format)
        if all_tasks == bool(tasks):
            fail("name the tasks to serve (pytempest task TARGET T1 T2 ...) or give --all, not both")
        configured = load_configured(target, config, _flags({}, redis))
        bus = BusSettings.from_env()
        top = configured.topology
        names = list(top.graph.names) if all_tasks else list(dict.fromkeys(tasks))
        unknown = [n for n in names if n not in top.graph.names]
        if unknown:
            fail(f"topology {top.name!r} has no task {', '.join(map(repr, unknown))}; "
                 f"its tasks: {', '.join(top.graph.names)}")  # fmt: skip
    if workers is not None:
        task_sets = [names] * workers
    else:
        # Each task gets its [[task]] workers processes; process k serves every task
        # that wants more than k of them.
        wanted = {n: configured.tasks[n].workers if n in configured.tasks else 1 for n in names}
        task_sets = [[n for n in names if wanted[n] > k] for k in range(max(wanted.values()))]
    url = configured.redis_url
    if len(task_sets) == 1:
        with exit_codes():
            asyncio.run(run_worker(top, task_sets[0], url, settings=bus))
        return
    click.echo(f"starting {len(task_sets)} worker processes for topology {top.name}", err=True)
    sys.exit(supervise(start_workers(top, task_sets, url, bus)))


@click.command()
@click.argument("topology_name", required=False, metavar="[TOPOLOGY]")
@click.option(
    "--redis", metavar="URL", default=None, help="Redis to inspect (default $PYTEMPEST_REDIS_URL or local)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(topology_name: str | None, redis: str | None, as_json: bool) -> None:
    """Show what runs against a Redis: topology instances, workers per task (live or
    stale), and the task messages waiting in each task stream."""
    from pytempest.errors import SourceError
    from pytempest.redis.connection import check_url
    from pytempest.runtimes.redis_bus.settings import redis_url_from_env
    from pytempest.runtimes.redis_bus.status import collect_status, format_status

    with exit_codes():
        url = check_url(redis_url_from_env(redis), "--redis")
    try:
        data = asyncio.run(collect_status(url, topology_name))
    except SourceError as exc:
        fail(str(exc), EXIT_SOURCE)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(format_status(data))


COMMANDS = (topology, task, status)
"""What ``pytempest.cli.main`` registers."""
