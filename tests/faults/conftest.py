"""Fixtures of the fault tests: a :class:`reliability.lab.Lab` per test.

The harness lives in ``reliability/`` at the top of the repository (it is also run on its
own: ``python -m reliability``); this folder runs its fastest scenarios in CI.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reliability.lab import Lab, Result  # noqa: E402


@pytest.fixture
def lab(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[Lab]:
    """A lab whose keys live under this test's key prefix (deleted after)."""
    with Lab(tmp_path, redis_url, key_prefix) as the_lab:
        yield the_lab


def passed(result: Result) -> None:
    """Assert that a scenario passed, showing its report and criteria when not."""
    print(result.explain())
    assert result.passed, result.explain()
