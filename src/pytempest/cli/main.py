"""``pytempest``: the command line entry point.

Exit codes: 0 success; 1 the run failed (a background loop died, or ``test`` saw failed
messages); 2 bad usage, bad target or bad configuration; 3 the source could not be
reached; 130 a second SIGTERM/SIGINT stopped the run at once (in-flight messages stay
unacked at the source).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import click

from pytempest.engine.engine import Engine, EngineError
from pytempest.errors import ConfigError, PipelineError, SourceError, TargetError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SOURCE = 3
EXIT_ABORTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pytempest")
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")
def cli(log_level: str) -> None:
    """Run every message from a source through a DAG of Python tasks."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
@click.argument("target")
@click.option("--until-idle", is_flag=True, help="Stop once the source is empty and nothing is in flight.")
@click.option("--duration-ms", type=int, default=None, help="Stop after this many milliseconds.")
@click.option("--quiet", is_flag=True, help="Do not print the summary.")
def run(target: str, until_idle: bool, duration_ms: int | None, quiet: bool) -> None:
    """Run TARGET (module:attribute or path/to/file.py:attribute) in this process."""
    from pytempest.cli.loader import load_topology
    from pytempest.cli.runner import run_engine
    from pytempest.cli.summary import format_summary

    try:
        topology = load_topology(target)
    except (TargetError, PipelineError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    engine = Engine(topology)
    try:
        reason = asyncio.run(run_engine(engine, until_idle=until_idle, duration_ms=duration_ms))
    except SourceError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_SOURCE)
    except EngineError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    if not quiet:
        click.echo(format_summary(topology.name, engine.snapshot(), list(topology.graph.names)))
    if reason == "aborted":
        exit_now(EXIT_ABORTED)


def exit_now(code: int) -> None:
    """Exit without waiting for task threads still blocked in ``handle`` (second signal)."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pytempest")


click.ClickException.exit_code = EXIT_USAGE
