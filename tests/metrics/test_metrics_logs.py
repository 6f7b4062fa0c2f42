"""Structured logging: JSON lines with the message context on every line about a message."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytempest import FailurePolicy, Pipeline, TestRun, Topology, task
from pytempest.deadletters import MemoryDeadLetter
from pytempest.errors import ConfigError
from pytempest.logs import JsonFormatter, configure_logging
from pytempest.sources import MemorySource


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Root logging to a buffer as JSON at DEBUG; restored afterwards."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    root.setLevel(saved[0])


def test_every_line_about_a_message_carries_its_context(json_log: io.StringIO) -> None:
    @task("parse")
    def parse(body: bytes) -> list[bytes]:
        if body == b"bad":
            raise ValueError("cannot parse")
        return [body]

    @task("store")
    def store(body: bytes) -> None:
        return None

    topology = Topology(
        "ctx", Pipeline().task(parse).task(store).edge("parse", "store"), MemorySource(["good", "bad"]),
        failure_policy=FailurePolicy.retry(1, delay_ms=1), dead_letter=MemoryDeadLetter(),
    )  # fmt: skip
    assert TestRun(topology).run(timeout_ms=10_000).reason == "idle"
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    about_bad = [line for line in lines if line.get("source_id") == "1"]
    failed = [line for line in about_bad if "failed in task" in line["message"]]
    assert [(x["level"], x["topology"], x["task"], x["attempt"]) for x in failed] == [
        ("WARNING", "ctx", "parse", 1),
        ("WARNING", "ctx", "parse", 2),
    ]
    assert any("ValueError: cannot parse" in x["message"] for x in failed)
    dead = [x for x in about_bad if "dead-lettered" in x["message"]]
    assert [(x["task"], x["attempt"]) for x in dead] == [("parse", 2)]
    # DEBUG lines: read, retried, done, each with the context.
    assert any("will run again" in x["message"] and x["attempt"] == 1 for x in about_bad)
    done = [x for x in lines if x.get("source_id") == "0" and " done in " in x["message"]]
    assert done and done[0]["topology"] == "ctx" and done[0]["attempt"] == 1
    # Every engine line that names a message id carries the context fields.
    for line in lines:
        if line["logger"] == "pytempest.engine" and "message " in line["message"]:
            assert {"topology", "source_id", "attempt"} <= set(line), line


def test_json_formatter_keeps_exceptions_and_metrics() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("now",), sys.exc_info())
    record.metrics = {"a.b": 1}
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "boom now" and out["metrics"] == {"a.b": 1}
    assert "KeyError" in out["exc"] and out["ts"].endswith("Z")


def test_configure_logging_checks_its_arguments_and_replaces_itself(json_log: io.StringIO) -> None:
    with pytest.raises(ConfigError, match="log format must be one of text, json"):
        configure_logging("INFO", "yaml")
    with pytest.raises(ConfigError, match="log level"):
        configure_logging("LOUD", "text")
    text = io.StringIO()
    configure_logging("warning", "text", stream=text)
    logging.getLogger("pytempest.test").warning("plain %d", 1)
    logging.getLogger("pytempest.test").info("hidden")
    assert text.getvalue().endswith("WARNING pytempest.test: plain 1\n")
    assert "hidden" not in text.getvalue() and "plain" not in json_log.getvalue()


def test_cli_log_format_json(tmp_path: Path) -> None:
    """``pytempest run --log-format json`` in a real process: stderr is JSON lines only."""
    script = tmp_path / "topo.py"
    script.write_text(
        "from pytempest import FailurePolicy, Pipeline, Topology, task\n"
        "from pytempest.sources import MemorySource\n"
        "@task('boom')\n"
        "def boom(body):\n"
        "    raise RuntimeError('no')\n"
        "topology = Topology('proc', Pipeline().task(boom), MemorySource(['x']),\n"
        "                    failure_policy=FailurePolicy.best_effort())\n"
    )
    command = [sys.executable, "-c", "from pytempest.cli.main import main; main()"]
    args = ["run", f"{script}:topology", "--until-idle", "--quiet", "--log-format", "json"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    failed = [x for x in lines if "failed in task" in x["message"]]
    assert failed and failed[0]["task"] == "boom" and failed[0]["source_id"] == "0"
    assert failed[0]["topology"] == "proc" and failed[0]["attempt"] == 1
