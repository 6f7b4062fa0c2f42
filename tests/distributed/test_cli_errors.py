"""Exit codes and messages of ``pytempest topology``, ``task`` and ``status`` when something
is wrong before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys

from .cluster import BOOK, ENTRY

SECRET_URL = "redis://app:s3cret-pw@127.0.0.1:1/0"


def pytempest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PT_SOURCE": "memory", "PT_NAME": "cli-errors", **env}
    environ.pop("PYTEMPEST_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args], capture_output=True, text=True, timeout=60, env=environ
    )


def test_unreachable_redis_exits_3_without_the_password() -> None:
    for args in (
        ("topology", BOOK, "--redis", SECRET_URL),
        ("task", BOOK, "--all", "--redis", SECRET_URL),
        ("status", "--redis", SECRET_URL),
    ):
        out = pytempest(*args)
        assert out.returncode == 3, (args, out.stdout, out.stderr)
        assert "cannot reach Redis at redis://app:***@127.0.0.1:1/0" in out.stderr, out.stderr
        assert "s3cret-pw" not in out.stdout + out.stderr


def test_task_names_are_checked() -> None:
    out = pytempest("task", BOOK, "T1", "T9")
    assert out.returncode == 2
    assert "has no task 'T9'; its tasks: T1, T2, T3, T4" in out.stderr
    out = pytempest("task", BOOK)
    assert out.returncode == 2
    assert "name the tasks to serve" in out.stderr
    out = pytempest("task", BOOK, "T1", "--all")
    assert out.returncode == 2


def test_bad_bus_setting_in_the_environment_exits_2() -> None:
    out = pytempest("task", BOOK, "--all", PYTEMPEST_BUS_CLAIM_IDLE_MS="soon")
    assert out.returncode == 2
    assert "PYTEMPEST_BUS_CLAIM_IDLE_MS must be a whole number; got 'soon'" in out.stderr
