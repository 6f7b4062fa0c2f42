"""``pytempest deadletter``: list, requeue and purge a Redis dead letter.

Thin over :mod:`pytempest.deadletters.admin`. Exit codes: 0 done; 1 the key is not a
dead letter, Redis refused a command, or some ids were not found or could not be
requeued; 2 bad usage; 3 Redis cannot be reached.
"""

from __future__ import annotations

import json
from typing import Any

import click

from pytempest.cli.options import EXIT_FAILED, exit_codes
from pytempest.deadletters import admin
from pytempest.deadletters.file import record_to_json

_redis = click.option(
    "--redis",
    "url",
    envvar="PYTEMPEST_REDIS_URL",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    help="Redis URL (or $PYTEMPEST_REDIS_URL).",
)
_key = click.option("--key", required=True, help="The dead-letter stream or list.")


def _run(func: Any, *args: Any, **kwargs: Any) -> Any:
    with exit_codes():
        return func(*args, **kwargs)


def _preview(body: bytes, width: int = 60) -> str:
    text = body.decode("utf-8", "replace").replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


@click.group()
def deadletter() -> None:
    """List, requeue or purge the entries of a Redis dead letter (stream or list)."""


@deadletter.command("list")
@_redis
@_key
@click.option("--count", type=int, default=100, show_default=True, help="At most this many (0: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (with entry_id).")
def list_command(url: str, key: str, count: int, as_json: bool) -> None:
    """Show the oldest entries: id, attempts, task, source, error and the body's start."""
    entries = _run(admin.list_entries, url, key, count=count)
    for e in entries:
        r = e.record
        if as_json:
            data = json.loads(record_to_json(r))
            data["entry_id"] = e.entry_id
            click.echo(json.dumps(data, sort_keys=True))
        else:
            click.echo(
                f"{e.entry_id}  attempts={r.attempts}  task={r.task or '-'}  source={r.source}"
                f"  id={r.source_id}\n    error: {_preview(r.error.encode(), 100)}\n    body:  {_preview(r.body)}"
            )
    if not as_json:
        click.echo(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}", err=True)


@deadletter.command()
@_redis
@_key
@click.argument("ids", nargs=-1)
@click.option("--all", "all_entries", is_flag=True, help="Requeue every entry.")
@click.option("--to", default=None, help="Send to this key instead of each record's source key.")
@click.option(
    "--to-kind", type=click.Choice(["stream", "list", "zset"]), default=None, help="The kind of the --to key."
)
@click.option("--field", "field_name", default="body", show_default=True, help="Stream field for the body.")
def requeue(
    url: str,
    key: str,
    ids: tuple[str, ...],
    all_entries: bool,
    to: str | None,
    to_kind: str | None,
    field_name: str,
) -> None:
    """Send entries IDS (or --all) back to their source as new messages."""
    result = _run(
        admin.requeue,
        url,
        key,
        list(ids),
        all_entries=all_entries,
        to=to,
        to_kind=to_kind,
        field_name=field_name,
    )
    for entry_id, target in result.requeued:
        click.echo(f"requeued {entry_id} -> {target}")
    for entry_id, why in result.skipped:
        click.echo(f"skipped {entry_id}: {why}", err=True)
    for entry_id in result.missing:
        click.echo(f"not found: {entry_id}", err=True)
    click.echo(f"{len(result.requeued)} requeued", err=True)
    if result.skipped or result.missing:
        raise SystemExit(EXIT_FAILED)


@deadletter.command()
@_redis
@_key
@click.argument("ids", nargs=-1)
@click.option("--all", "all_entries", is_flag=True, help="Delete the whole dead letter.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(url: str, key: str, ids: tuple[str, ...], all_entries: bool, yes: bool) -> None:
    """Delete entries IDS (or --all) for good."""
    if all_entries and not yes:
        click.confirm(f"Delete every entry of {key!r}?", abort=True)
    removed = _run(admin.purge, url, key, list(ids), all_entries=all_entries)
    click.echo(f"{removed} deleted", err=True)
    if ids and removed < len(ids):
        raise SystemExit(EXIT_FAILED)
