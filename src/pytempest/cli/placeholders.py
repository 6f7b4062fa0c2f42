"""``topology``, ``task`` and ``status`` when the distributed runtime is not installed.

They parse their arguments and check the topology and its configuration like the real
commands would, then say clearly what is missing and exit with code 2. ``main`` registers
them only when ``pytempest.cli.distributed`` does not exist.
"""

from __future__ import annotations

import click

from pytempest.cli.loader import load_configured
from pytempest.cli.options import config_option, exit_codes, fail
from pytempest.config import kinds

MISSING = (
    "the distributed runtime (pytempest.cli.distributed, pytempest.runtimes.redis_bus) is not in "
    "this installation, so '{command}' cannot run; 'pytempest run' runs every task in one process"
)


@click.command()
@click.argument("target")
@config_option
def topology(target: str, config: str | None) -> None:
    """Distributed runtime: run the topology process of TARGET (reads the source, tracks
    every message, sends task messages to workers through Redis)."""
    with exit_codes():
        load_configured(target, config)
    fail(MISSING.format(command="topology"))


@click.command()
@click.argument("target")
@click.argument("names", nargs=-1, required=True)
@config_option
def task(target: str, names: tuple[str, ...], config: str | None) -> None:
    """Distributed runtime: run worker processes for the tasks NAMES of TARGET."""
    with exit_codes():
        graph = load_configured(target, config).topology.graph
    for name in names:
        if name not in graph.names:
            hint = kinds.did_you_mean(name, graph.names)
            fail(f"{name!r} is not a task of {target}{hint} (tasks: {', '.join(graph.names)})")
    fail(MISSING.format(command="task"))


@click.command()
@click.option("--redis-url", default=None, help="The Redis the distributed runtime uses.")
def status(redis_url: str | None) -> None:
    """Distributed runtime: what runs against a Redis (topologies, workers, backlogs)."""
    fail(MISSING.format(command="status"))
