"""Every command through the real entry point: outputs and exit codes."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytempest.cli.options import EXIT_FAILED, EXIT_OK, EXIT_SOURCE, EXIT_USAGE
from pytempest.config.settings import with_flags

from .clitools import APP, ROOT, line_of, pytempest


def test_run_until_idle_prints_the_summary_and_the_console_script_works() -> None:
    script = Path(sys.executable).parent / "pytempest"
    out = subprocess.run([str(script), "run", f"{APP}:topology", "--until-idle"],
                         capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)  # fmt: skip
    assert out.returncode == EXIT_OK, out.stderr
    assert out.stdout.startswith("topology sample\n")
    assert "read 3  acked 3  completed 3  errors 0" in out.stdout
    assert "in flight" not in out.stderr, "no progress line when standard error is not a terminal"


def test_run_applies_file_env_and_flags_to_the_running_topology(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    config = tmp_path / "Topology.toml"
    config.write_text(
        f'name = "from-file"\nfailure_policy = "retry(0)"\n[dead_letter]\nkind = "file"\npath = "{dead}"\n'
    )
    out = pytempest("run", f"{APP}:failing", "--config", str(config), "--until-idle", "--name", "from-flag",
                    env={"PYTEMPEST_NAME": "from-env"})  # fmt: skip
    assert out.returncode == EXIT_OK, out.stderr
    assert out.stdout.startswith("topology from-flag\n")
    assert "dead-lettered 1" in out.stdout
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(r["topology"], r["body"], r["attempts"]) for r in records] == [("from-flag", "bad", 1)]


def test_run_quiet_duration_and_json_logs() -> None:
    out = pytempest("run", f"{APP}:failing", "--duration-ms", "300", "--quiet", "--log-format", "json")
    assert out.returncode == EXIT_OK, out.stderr
    assert out.stdout == ""
    records = [json.loads(line) for line in out.stderr.splitlines()]
    failed = [r for r in records if r["level"] == "WARNING" and "failed in task split" in r["message"]]
    assert failed and failed[0]["task"] == "split" and failed[0]["source_id"] == "1"


def test_passwords_in_log_lines_are_masked() -> None:
    for fmt in ("text", "json"):
        out = pytempest("run", f"{APP}:leaky", "--until-idle", "--quiet", "--log-format", fmt)
        assert out.returncode == EXIT_OK, out.stderr
        assert "connecting to redis://app:***@db:6379/0" in out.stderr
        assert "hunter2" not in out.stderr


def test_log_level_flag_before_or_after_the_command() -> None:
    for args in (["--log-level", "error", "run"], ["run", "--log-level", "error"]):
        out = pytempest(*args, f"{APP}:failing", "--until-idle", "--quiet")
        assert out.returncode == EXIT_OK
        assert "WARNING" not in out.stderr and "gave up after 2 attempts" in out.stderr


def test_run_shows_progress_on_a_terminal() -> None:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEMPEST_")}
    proc = subprocess.Popen([sys.executable, "-m", "pytempest", "run", f"{APP}:topology", "--duration-ms", "1500"],
                            stdout=subprocess.PIPE, stderr=slave, env=env)  # fmt: skip
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        stdout, _ = proc.communicate(timeout=30)
    finally:
        os.close(master)
    assert proc.returncode == EXIT_OK
    assert b"sample: read 3  acked 3  failed 0" in seen, seen
    assert b"/s  in flight 0" in seen
    last = seen.rindex(b"in flight 0") + len(b"in flight 0")
    assert seen[last:].startswith(b"\r\x1b[K"), "the line is cleared before log lines and at the end"
    assert stdout.startswith(b"topology sample\n")


def test_test_command_prints_metrics_and_passes() -> None:
    out = pytempest("test", f"{APP}:topology")
    assert out.returncode == EXIT_OK, out.stderr
    assert "topology sample" in out.stdout
    assert line_of(out.stdout, "sample.source.msg.acked.success").split() == [
        "sample.source.msg.acked.success",
        "3",
    ]
    assert out.stdout.rstrip().endswith("OK: 3 messages read, 3 acked, none failed")


def test_test_command_fails_when_a_message_failed() -> None:
    out = pytempest("test", f"{APP}:failing")
    assert out.returncode == EXIT_FAILED
    assert line_of(out.stdout, "failing.topology.source.msg.error").split()[-1] == "2"
    assert out.stdout.rstrip().endswith(
        "FAILED: 2 failed attempts (2 errors, 0 timeouts); 1 dropped after their retries"
    )


def test_validate_reports_and_warns_without_connecting(tmp_path: Path) -> None:
    config = tmp_path / "Topology.toml"
    config.write_text(
        '[source]\nkind = "redis_stream"\nurl = "redis://10.255.255.1:6379/0"\nkey = "k"\ngroup = "g"\n'
    )
    started = time.monotonic()
    out = pytempest("validate", f"{APP}:topology", "--config", str(config), timeout=30)
    assert out.returncode == EXIT_OK, out.stderr
    assert time.monotonic() - started < 25, "no connection attempt to an unroutable address"
    assert out.stdout.startswith("topology sample: valid (2 tasks, stage release)\n")
    assert "pipeline        split -> count" in out.stdout
    assert "redis_stream:k at redis://10.255.255.1:6379/0" in out.stdout
    assert "warnings\n  - failure policy retry(1, delay_ms=10" in out.stdout


def test_graph_formats(tmp_path: Path) -> None:
    out = pytempest("graph", f"{APP}:topology")
    assert out.returncode == EXIT_OK
    assert (
        out.stdout
        == 'digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n  "split";\n  "count";\n  "split" -> "count";\n}\n'
    )
    target = tmp_path / "g.mmd"
    out = pytempest("graph", f"{APP}:topology", "--format", "mermaid", "-o", str(target))
    assert out.returncode == EXIT_OK and out.stdout == ""
    assert target.read_text() == "flowchart LR\n  split[split]\n  count[count]\n  split --> count\n"


def test_graph_svg_without_graphviz_says_what_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    out = pytempest("graph", f"{APP}:topology", "--format", "svg", env={"PATH": str(empty)})
    assert out.returncode == EXIT_USAGE
    assert "--format svg needs Graphviz's 'dot' program, which is not on PATH: install Graphviz" in out.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graph_svg_with_graphviz() -> None:
    out = pytempest("graph", f"{APP}:topology", "--format", "svg")
    assert out.returncode == EXIT_OK and "<svg" in out.stdout and "split" in out.stdout


BAD_TARGETS = {
    "no-colon": "must be module:attribute or path/to/file.py:attribute",
    "missing.py:topology": "file missing.py does not exist",
    "no_such_module_xyz:topology": "no module named 'no_such_module_xyz'",
    f"{APP}:nothing": "has no attribute 'nothing'",
    f"{APP}:not_a_topology": "not_a_topology is a int, not a Topology",
    f"{APP}:broken": "calling broken() raised RuntimeError: the database is down",
}


def test_bad_targets_are_one_line_errors() -> None:
    for target, message in BAD_TARGETS.items():
        out = pytempest("validate", target)
        assert out.returncode == EXIT_USAGE, target
        assert out.stderr.startswith("Error: target ") and message in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1


def test_unreachable_source_exits_3(tmp_path: Path) -> None:
    config = tmp_path / "Topology.toml"
    config.write_text(f'[source]\nkind = "file"\npath = "{tmp_path / "missing.txt"}"\n')
    out = pytempest("run", f"{APP}:topology", "--config", str(config), "--until-idle")
    assert out.returncode == EXIT_SOURCE
    assert "file source cannot open" in out.stderr


def test_help_comes_from_the_setting_declarations() -> None:
    out = pytempest("run", "--help", env={"COLUMNS": "400"})
    assert out.returncode == EXIT_OK
    text = " ".join(out.stdout.split())
    for setting in with_flags():
        assert setting.flag in text and " ".join(setting.help().split()) in text, setting.key


def test_every_command_is_registered() -> None:
    out = pytempest("--help")
    commands = out.stdout.split("Commands:")[1]
    names = [line.split()[0] for line in commands.strip().splitlines()]
    assert names == ["deadletter", "director", "graph", "new", "run", "status", "task", "test", "topology",
                     "validate"]  # fmt: skip
    out = pytempest("run", f"{APP}:topology", "--processes", "0")
    assert out.returncode == EXIT_USAGE and "0 is not in the range x>=1" in out.stderr


def test_run_processes_passes_flags_to_the_worker_processes(redis_url: str, key_prefix: str) -> None:
    out = pytempest("run", f"{APP}:topology", "--until-idle", "--processes", "2", "--name", key_prefix,
                    "--redis-url", redis_url, timeout=120)  # fmt: skip
    assert out.returncode == EXIT_OK, out.stderr
    assert out.stdout.startswith(f"topology {key_prefix}\n")
    assert "read 3  acked 3  completed 3  errors 0" in out.stdout
    assert out.stderr.count(f"serving tasks split, count of topology {key_prefix}") == 2
