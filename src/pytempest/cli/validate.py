"""``pytempest validate`` and ``pytempest graph``: look at a topology without running it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Any

import click

from pytempest.cli.loader import load_configured, load_topology
from pytempest.cli.options import (
    config_option,
    exit_codes,
    fail,
    log_options,
    setting_flags,
    setting_options,
    setup_logging,
)
from pytempest.config import Configured
from pytempest.config.apply import source_url
from pytempest.config.settings import mask_secrets

SHOWN_SETTINGS = {
    "name": "name",
    "max_pending": "max_pending",
    "msg_timeout_ms": "msg_timeout_ms",
    "graceful_shutdown_ms": "graceful_shutdown_ms",
    "failure_policy": "failure_policy",
    "metric.flush_interval_ms": "metric_flush_interval_ms",
}
TASK_FIELDS = ("workers", "batch", "threaded", "concurrency", "poll_interval_ms", "max_backoff_ms")


@click.command()
@click.argument("target")
@config_option
@setting_options
@log_options
def validate(
    target: str, config: str | None, log_level: str | None, log_format: str | None, **settings: Any
) -> None:
    """Load TARGET and its configuration and check everything (the graph, every key and
    type) without connecting to anything. Prints the settings in effect and where each
    comes from; exit code 2 on the first error."""
    with exit_codes():
        setup_logging(log_level, log_format)
        configured = load_configured(target, config, setting_flags(settings))
    click.echo(describe(configured))


def describe(configured: Configured) -> str:
    """The report ``validate`` prints: the parts, the settings with their origins, the tasks."""
    topology, config = configured.topology, configured.config
    graph = topology.graph
    edges = ", ".join(f"{a} -> {b}" for a, b in graph.edges()) or "(one task)"

    def part_origin(spec: Any, table: str) -> str:
        if spec is None:
            return "code"
        where = config.locator.where((table,)) if config.path else "environment"
        return where if spec.kind else f"code, options from {where}"

    targets = ", ".join(t.describe() for t in topology.metric_targets) or "none"
    lines = [
        f"topology {topology.name}: valid ({len(graph)} tasks, {graph.release} release)",
        f"  pipeline        {edges}",
        f"  source          {_part(topology.source)}  [{part_origin(config.source, 'source')}]",
    ]
    options = getattr(topology.source, "options", None)
    if callable(options):
        lines.append(f"                  {_options(options())}")
    lines += [
        f"  dead letter     {_part(topology.dead_letter)}  [{part_origin(config.dead_letter, 'dead_letter')}]",
        f"  metric targets  {targets}  [{'code' if config.metric_targets is None else config.locator.where(('metric',))}]",
        "",
        "settings",
    ]
    rows = [(key, str(getattr(topology, attr)), config.origin(key)) for key, attr in SHOWN_SETTINGS.items()]
    if topology.metric_buckets_ms is not None:
        shown = ",".join(f"{b:g}" for b in topology.metric_buckets_ms)
        rows.append(("metric.buckets_ms", shown, config.origin("metric.buckets_ms")))
    redis_origin = config.origin("redis_url")
    if redis_origin == "code":
        redis_origin = "the source's url" if source_url(topology.source) else "default"
    rows.append(("redis_url", configured.redis_url, redis_origin))
    rows = [(k, mask_secrets(v), o) for k, v, o in rows]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines += [f"  {k:<{width}}  {v:<{value_width}}  {o}" for k, v, o in rows]
    lines += ["", "tasks"]
    name_width = max(len(n) for n in configured.tasks)
    for name, ts in configured.tasks.items():
        values = "  ".join(f"{f} {_show(getattr(ts, f))}" for f in TASK_FIELDS)
        origin = config.tasks[name].origin if name in config.tasks else "code"
        lines.append(f"  {name:<{name_width}}  {values}  {origin}")
    if configured.warnings:
        lines += ["", "warnings"]
        lines += [f"  - {w}" for w in configured.warnings]
    return "\n".join(lines)


def _part(part: object) -> str:
    """A source or dead letter: its description, and its URL (masked) when it has one."""
    if part is None:
        return "none"
    text = str(part.describe())  # type: ignore[attr-defined]
    url = getattr(part, "url", None)
    if isinstance(url, str) and url not in text:
        text += f" at {url}"
    return mask_secrets(text)


def _options(options: dict[str, Any]) -> str:
    """``key=value`` pairs, each value cut to 40 characters, passwords masked."""
    pairs = []
    for key, value in options.items():
        shown = str(value) if isinstance(value, str | int | float | bool) else repr(value)
        if value is None:
            shown = "unset"
        elif hasattr(type(value), "parse"):
            shown = str(value)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        pairs.append(f"{key}={shown}")
    return mask_secrets(" ".join(pairs))


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@click.command()
@click.argument("target")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dot", "mermaid", "svg", "png"]),
    default="dot",
    show_default=True,
    help="dot and mermaid are text; svg and png need Graphviz's dot program.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write here instead of standard output.")  # fmt: skip
def graph(target: str, fmt: str, output: str | None) -> None:
    """Print the pipeline graph of TARGET (Graphviz DOT, Mermaid, or SVG/PNG through Graphviz)."""
    with exit_codes():
        topology = load_topology(target)
    dot = topology.graph.to_dot()
    if fmt == "dot":
        data = dot.encode()
    elif fmt == "mermaid":
        data = topology.graph.to_mermaid().encode()
    else:
        data = render_with_graphviz(dot, fmt)
    if output is not None:
        with open(output, "wb") as f:
            f.write(data)
    elif fmt == "png" and sys.stdout.isatty():
        fail("a PNG is binary: give -o FILE.png or redirect standard output to a file")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def render_with_graphviz(dot: str, fmt: str) -> bytes:
    """``dot`` rendered by Graphviz as ``fmt``; a clear error when Graphviz is missing."""
    program = shutil.which("dot")
    if program is None:
        fail(
            f"--format {fmt} needs Graphviz's 'dot' program, which is not on PATH: install "
            "Graphviz (apt install graphviz, brew install graphviz, ...) or use --format dot "
            "or --format mermaid"
        )
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        fail(f"Graphviz's dot ({program}) failed to run: {exc}")
    if done.returncode != 0:
        fail(
            f"Graphviz's dot ({program}) exited with {done.returncode}: {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout
