"""Run the real ``pytempest`` entry point in a subprocess and read its output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APP = str(HERE / "sample_app.py")


def pytempest(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m pytempest ARGS`` with no inherited ``PYTEMPEST_*`` variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTEMPEST_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pytempest", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def setting(out: str, key: str) -> tuple[str, str]:
    """(value, origin) of ``key`` in the settings table ``pytempest validate`` prints."""
    match = re.search(rf"^  {re.escape(key)}\s+(\S+)\s+(.+)$", out, re.MULTILINE)
    assert match, f"no setting {key!r} in:\n{out}"
    return match.group(1), match.group(2).strip()


def line_of(out: str, start: str) -> str:
    """The first line of ``out`` that starts with ``start`` (after indentation)."""
    for line in out.splitlines():
        if line.strip().startswith(start):
            return line
    raise AssertionError(f"no line starting with {start!r} in:\n{out}")
