"""``pytempest new``: the skeleton is complete and its own tests pass right after creation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytempest.cli.options import EXIT_OK, EXIT_USAGE

from .clitools import pytempest


def test_new_project_passes_its_own_tests_validates_and_runs(tmp_path: Path) -> None:
    out = pytempest("new", "click-events", cwd=tmp_path)
    assert out.returncode == EXIT_OK, out.stderr
    project = tmp_path / "click-events"
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "Topology.toml",
        "click_events/__init__.py",
        "click_events/topology.py",
        "pyproject.toml",
        "tests/test_topology.py",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEMPEST_")}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                           capture_output=True, text=True, timeout=120, check=False, env=env)  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout

    target = "click_events.topology:topology"
    checked = pytempest("validate", target, "--config", "Topology.toml", cwd=project)
    assert checked.returncode == EXIT_OK, checked.stderr
    assert checked.stdout.startswith("topology click-events: valid (2 tasks")
    assert "file:dead-letters.jsonl  [Topology.toml:17]" in checked.stdout
    ran = pytempest("run", target, "--config", "Topology.toml", "--until-idle", cwd=project)
    assert ran.returncode == EXIT_OK, ran.stderr
    assert "read 3  acked 3  completed 3  errors 0" in ran.stdout


def test_new_refuses_bad_names_and_non_empty_folders(tmp_path: Path) -> None:
    for name, message in (("9lives", "must start with a letter"), ("json", "hides another module")):
        out = pytempest("new", name, cwd=tmp_path)
        assert out.returncode == EXIT_USAGE and message in out.stderr, out.stderr
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    out = pytempest("new", "taken", cwd=tmp_path)
    assert out.returncode == EXIT_USAGE and "already exists and is not empty" in out.stderr
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]
