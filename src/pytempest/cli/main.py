"""``pytempest``: the command line entry point, thin over library functions.

Commands: ``run``, ``test``, ``validate``, ``graph``, ``new``; ``topology``, ``task`` and
``status`` (the distributed runtime, pytempest.cli.distributed); ``deadletter``
(pytempest.cli.deadletter); ``director`` (the web dashboard, pytempest.cli.director). See docs/cli.md.

Exit codes:

* 0: success;
* 1: the run failed (a background loop died), or ``test`` saw a failed message or did
  not finish in time;
* 2: bad usage, a bad target, a bad configuration (file, environment or flag), or a part
  the command needs is missing (Graphviz for ``graph --format svg``, the distributed
  runtime for ``run --processes``); nothing was started or connected;
* 3: the source could not be reached;
* 130: a second SIGTERM/SIGINT stopped the run at once (in-flight messages stay unacked
  at the source).
"""

from __future__ import annotations

import os

import click

from pytempest.cli.deadletter import deadletter
from pytempest.cli.director import director
from pytempest.cli.distributed import status, task, topology
from pytempest.cli.new import new
from pytempest.cli.options import (
    EXIT_ABORTED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SOURCE,
    EXIT_USAGE,
    exit_codes,
    log_options,
    setup_logging,
)
from pytempest.cli.run import exit_now, run, test
from pytempest.cli.validate import graph, validate
from pytempest.config.settings import BY_KEY

__all__ = [
    "EXIT_ABORTED",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SOURCE",
    "EXIT_USAGE",
    "cli",
    "exit_now",
    "main",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pytempest")
@log_options
def cli(log_level: str | None, log_format: str | None) -> None:
    """Run every message from a source through a DAG of Python tasks.

    TARGET is package.module:attribute or path/to/file.py:attribute, naming a Topology or
    a function returning one. Settings come from the code, then Topology.toml (--config),
    then PYTEMPEST_* environment variables, then flags (see docs/configuration.md).
    """
    # Flags given before the command apply to it as if they were environment variables
    # (a flag after the command still wins).
    for key, value in (("run.log_level", log_level), ("run.log_format", log_format)):
        env = BY_KEY[key].env
        if value is not None and env:
            os.environ[env] = value
    with exit_codes():
        setup_logging(None, None)


for command in (run, test, validate, graph, new, topology, task, status, deadletter, director):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pytempest")


click.ClickException.exit_code = EXIT_USAGE
