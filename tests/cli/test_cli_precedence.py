"""The precedence table of docs/configuration.md, one test per row, through ``pytempest validate``
(which prints every setting in effect and where it came from)."""

from __future__ import annotations

from pathlib import Path

from .clitools import APP, line_of, pytempest, setting


def validate(*args: str, env: dict[str, str] | None = None) -> str:
    out = pytempest("validate", *args, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def toml(tmp_path: Path, text: str, name: str = "Topology.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_nothing_set_keeps_the_codes_values() -> None:
    out = validate(f"{APP}:topology")
    assert setting(out, "max_pending") == ("50", "code")
    assert setting(out, "msg_timeout_ms") == ("30000", "code")
    assert setting(out, "name") == ("sample", "code")


def test_topology_toml_overrides_the_code(tmp_path: Path) -> None:
    path = toml(tmp_path, "# comment\nmax_pending = 60\n")
    assert setting(validate(f"{APP}:topology", "--config", path), "max_pending") == ("60", f"{path}:2")


def test_environment_overrides_topology_toml(tmp_path: Path) -> None:
    path = toml(tmp_path, "max_pending = 60\n")
    out = validate(f"{APP}:topology", "--config", path, env={"PYTEMPEST_MAX_PENDING": "70"})
    assert setting(out, "max_pending") == ("70", "env PYTEMPEST_MAX_PENDING")


def test_a_flag_overrides_the_environment(tmp_path: Path) -> None:
    path = toml(tmp_path, "max_pending = 60\n")
    out = validate(
        f"{APP}:topology", "--config", path, "--max-pending", "80", env={"PYTEMPEST_MAX_PENDING": "70"}
    )
    assert setting(out, "max_pending") == ("80", "--max-pending")


def test_source_with_a_kind_replaces_the_codes_source(tmp_path: Path) -> None:
    lines = tmp_path / "lines.txt"
    path = toml(tmp_path, f'[source]\nkind = "file"\npath = "{lines}"\nread_count = 2\n')
    source = line_of(validate(f"{APP}:topology", "--config", path), "source")
    assert f"file:{lines}" in source and f"[{path}:1]" in source
    out = validate(f"{APP}:topology", "--config", path)
    assert "read_count=2" in out and "requeue" not in out and "bodies" not in out


def test_source_without_a_kind_overrides_only_the_options_it_names(tmp_path: Path) -> None:
    for text in ("[source]\nread_count = 3\n", "[source.config]\nread_count = 3\n"):
        out = validate(f"{APP}:topology", "--config", toml(tmp_path, text))
        assert "memory  [code, options from" in line_of(out, "source")
        assert "read_count=3" in out, "the file's option"
        assert "requeue=False" in out and "'a b'" in out, "the code's other options are kept"


def test_source_url_from_the_environment_overrides_the_files_and_is_masked(tmp_path: Path) -> None:
    path = toml(
        tmp_path, '[source]\nkind = "redis_stream"\nurl = "redis://127.0.0.1:2/0"\nkey = "k"\ngroup = "g"\n'
    )
    env = {"PYTEMPEST_SOURCE_URL": "redis://app:hunter2@127.0.0.1:3/0"}
    out = pytempest("validate", f"{APP}:redis", "--config", path, env=env)
    assert out.returncode == 0, out.stderr
    assert "at redis://app:***@127.0.0.1:3/0" in line_of(out.stdout, "source")
    assert "hunter2" not in out.stdout + out.stderr


def test_a_redis_dead_letter_without_url_uses_the_sources(tmp_path: Path) -> None:
    path = toml(tmp_path, '[dead_letter]\nkind = "redis_stream"\nkey = "sample:dead"\n')
    out = validate(f"{APP}:redis", "--config", path, env={"PT_TEST_URL": "redis://127.0.0.1:4/2"})
    assert "redis_stream:sample:dead at redis://127.0.0.1:4/2" in line_of(out, "dead letter")


def test_metric_targets_replace_all_the_codes_targets(tmp_path: Path) -> None:
    assert "log(info" in line_of(validate(f"{APP}:topology"), "metric targets")
    path = toml(tmp_path, '[metric]\ntargets = [{ kind = "console" }]\n')
    targets = line_of(validate(f"{APP}:topology", "--config", path), "metric targets")
    assert "console" in targets and "log(" not in targets


def test_task_table_overrides_the_tasks_own_options(tmp_path: Path) -> None:
    path = toml(tmp_path, '[[task]]\nname = "count"\nthreaded = true\nbatch = 5\nworkers = 3\n')
    out = validate(f"{APP}:topology", "--config", path)
    count = line_of(out, "count  workers")
    assert "workers 3  batch 5  threaded true" in count and count.endswith(f"{path}:2")
    assert line_of(out, "split  workers").endswith(
        "threaded false  concurrency 64  poll_interval_ms 0  max_backoff_ms 1000  code"
    )


def test_config_flag_is_read_instead_of_the_environments_file(tmp_path: Path) -> None:
    from_env = toml(tmp_path, "max_pending = 60\n", "env.toml")
    from_flag = toml(tmp_path, "max_pending = 90\n", "flag.toml")
    out = validate(f"{APP}:topology", env={"PYTEMPEST_CONFIG": from_env})
    assert setting(out, "max_pending") == ("60", f"{from_env}:1")
    out = validate(f"{APP}:topology", "--config", from_flag, env={"PYTEMPEST_CONFIG": from_env})
    assert setting(out, "max_pending") == ("90", f"{from_flag}:1")
