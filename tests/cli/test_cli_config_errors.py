"""Each kind of configuration error: exit code 2, one line naming the file, the line, the key
path, what was expected and what was found, before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from .clitools import APP, pytempest

ERRORS = {
    "unknown top-level key": (
        "name = 'x'\nmax_pendng = 3\n", 2, "max_pendng: unknown key; did you mean 'max_pending'?"),
    "unknown source key, per kind": (
        "[source]\nkind = 'file'\npath = 'x'\nreed_count = 3\n", 4,
        "source.reed_count: unknown key for a file source; did you mean 'read_count'? (its keys: path,"),
    "unknown key of the code's source kind": (
        "[source]\nrequeu = false\n", 2, "source.requeu: unknown key for a memory source; did you mean 'requeue'?"),
    "unknown [[task]] key": (
        "[[task]]\nname = 'count'\nworker = 2\n", 3, "task[0].worker: unknown key; did you mean 'workers'?"),
    "wrong type at top level": (
        "max_pending = '10k'\n", 1, "max_pending: expected an integer (messages); got a string '10k'"),
    "wrong type of a source option": (
        "[source]\nread_count = true\n", 2, "source.read_count: expected an integer; got a boolean True"),
    "wrong type inside an inline metric target": (
        "[metric]\ntargets = [{ kind = 'console' },\n  { kind = 'statsd', prefix = 7 }]\n", 3,
        "metric.targets[1].prefix: expected a string; got an integer 7"),
    "out of range": ("msg_timeout_ms = -5\n", 1, "msg_timeout_ms: must be >= 0; got -5"),
    "[[task]] not in the pipeline": (
        "[[task]]\nname = 'cont'\n", 2,
        "[[task]] name: 'cont' is not a task of topology 'sample'; did you mean 'count'? (tasks: split, count)"),
    "bad failure policy": (
        "failure_policy = 'retry(3, dely_ms=5)'\n", 1,
        "failure_policy: failure policy 'retry(3, dely_ms=5)': unknown argument 'dely_ms'"),
    "bad ack policy": (
        "[source]\nack_policy = 'bach(10)'\n", 2, "source.ack_policy: ack policy 'bach(10)' is unknown"),
    "unknown kind": (
        "[dead_letter]\nkind = 'redis_steam'\n", 2,
        "dead_letter.kind: unknown dead letter kind 'redis_steam'; did you mean 'redis_stream'?"),
    "missing required key": (
        "[source]\nkind = 'redis_stream'\nurl = 'redis://127.0.0.1:1/0'\nkey = 'k'\n", 1,
        "source: missing key 'group': a redis_stream source needs url, key, group"),
    "value the constructor rejects": (
        "[source]\nkind = 'redis_list'\nurl = 'http://h/0'\nkey = 'k'\n", 3, "must start with redis://"),
    "the original's obsolete keys": ("port = '8765'\n", 1, "port: not a pytempest key"),
    "a key and its original alias both": (
        "graceful_shutdown = 5\ngraceful_shutdown_ms = 6\n", 2, "given twice: as 'graceful_shutdown_ms' and as 'graceful_shutdown'"),
    "not TOML": ("max_pending = = 3\n", 1, "not valid TOML: Invalid value (at line 1, column 15)"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ERRORS))
def test_config_error_names_file_line_and_key(tmp_path: Path, case: str) -> None:
    text, line, message = ERRORS[case]
    path = tmp_path / "Topology.toml"
    path.write_text(text)
    out = pytempest("validate", f"{APP}:topology", "--config", str(path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""
    assert out.stderr.startswith(f"Error: {path}:{line}: "), out.stderr
    assert message in out.stderr
    assert out.stderr.count("\n") == 1, "one line"


def test_missing_config_file() -> None:
    out = pytempest("validate", f"{APP}:topology", "--config", "/nonexistent/Topology.toml")
    assert out.returncode == 2
    assert out.stderr == "Error: config file /nonexistent/Topology.toml does not exist\n"


def test_bad_environment_variable_and_bad_flag() -> None:
    out = pytempest("validate", f"{APP}:topology", env={"PYTEMPEST_MSG_TIMEOUT_MS": "soon"})
    assert out.returncode == 2
    assert (
        out.stderr
        == "Error: environment variable PYTEMPEST_MSG_TIMEOUT_MS: expected an integer; got 'soon'\n"
    )
    out = pytempest("validate", f"{APP}:topology", "--failure-policy", "sometimes")
    assert out.returncode == 2
    assert out.stderr.startswith("Error: --failure-policy: failure policy 'sometimes' is unknown")


def test_secrets_are_masked_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "Topology.toml"
    path.write_text(
        "[source]\nkind = 'redis_stream'\nurl = 'http://u:hunter2@h:1/0'\nkey = 'k'\ngroup = 'g'\n"
    )
    first = pytempest("validate", f"{APP}:topology", "--config", str(path))
    assert first.returncode == 2
    assert "url 'http://u:***@h:1/0' must start with redis://" in first.stderr
    env = {"PYTEMPEST_SOURCE_URL": "http://:hunter2@h/0"}
    second = pytempest("validate", f"{APP}:redis", "--config", str(path), env=env)
    assert second.returncode == 2 and "http://:***@h/0" in second.stderr
    for out in (first, second):
        assert "hunter2" not in out.stderr + out.stdout


def test_run_reports_config_errors_before_connecting(tmp_path: Path) -> None:
    """The source is a Redis stream at a closed port: a run that connected first would keep
    retrying it (wait_for_source); it exits 2 at once instead."""
    path = tmp_path / "Topology.toml"
    path.write_text("[[task]]\nname = 'nope'\n")
    out = pytempest("run", f"{APP}:redis", "--config", str(path), timeout=30)
    assert out.returncode == 2
    assert "'nope' is not a task of topology 'redis-sample'" in out.stderr
