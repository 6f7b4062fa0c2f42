"""The reference pages match the code: configuration.md is generated from the declarations,
cli.md documents every command and exit code."""

from __future__ import annotations

import inspect
import re

from pytempest.cli import main as cli_main
from pytempest.config.reference import parse_args_doc, render

from .clitools import ROOT


def test_configuration_md_is_generated_from_the_declarations() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(), (
        "docs/configuration.md is stale: run `.venv/bin/python -m pytempest.config.reference "
        "> docs/configuration.md`"
    )


def test_cli_md_documents_every_command_and_exit_code() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    for name in cli_main.cli.commands:
        assert f"`{name}" in text, name
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", text, re.MULTILINE)}
    codes = {getattr(cli_main, n) for n in dir(cli_main) if n.startswith("EXIT_")}
    assert documented == codes
    docstring = cli_main.__doc__ or ""
    assert {int(c) for c in re.findall(r"^\* (\d+):", docstring, re.MULTILINE)} == codes


def test_option_docs_are_read_from_args_and_keys_sections() -> None:
    doc = """A thing.

    Args:
        url: where it is,
            on two lines.
        poll_interval_ms, max_backoff_ms: pacing.

    Returns nothing.
    """
    assert parse_args_doc(inspect.cleandoc(doc)) == {
        "url": "where it is, on two lines.",
        "poll_interval_ms": "pacing.",
        "max_backoff_ms": "pacing.",
    }
