"""The examples run and do what their docstrings say."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from pytempest import TestRun

EXAMPLES = Path(__file__).parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wordcount_counts_every_word_of_every_line() -> None:
    module = load("wordcount")
    metrics = TestRun(module.topology()).run()
    lines = [ln for ln in module.TEXT.read_text().splitlines() if ln.strip()]
    assert metrics["wordcount.source.msg.acked.success"] == len(lines)
    assert metrics["wordcount.count.task.msg.handle"] == sum(module.COUNTS.values())
    word, n = module.top_words(1)[0]
    assert n >= 5 and word


def test_book_dag_makes_71_handle_calls_per_message() -> None:
    module = load("book_dag")
    metrics = TestRun(module.topology(50)).run()
    assert [metrics[f"book.T{i}.task.msg.handle"] for i in (1, 2, 3, 4)] == [50, 500, 500, 2500]
    assert metrics["book.source.msg.acked.success"] == 50


def test_readme_first_command_runs_the_wordcount_example() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from pytempest.cli.main import main; main()", "run",
         str(EXAMPLES / "wordcount.py") + ":topology", "--until-idle"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "topology wordcount" in out.stdout
    assert "errors 0" in out.stdout
