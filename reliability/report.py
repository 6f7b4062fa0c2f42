"""The markdown report of a run of the suite or of the soak."""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .lab import Result

COLUMNS = (
    ("produced", "produced"),
    ("completed", "completed"),
    ("dead_lettered", "dead-lettered"),
    ("stuck", "stuck"),
    ("dropped", "dropped"),
    ("lost", "lost"),
    ("lost_by_redis", "lost by Redis"),
    ("dup_task", "dup (task)"),
    ("dup_sink", "dup (sink)"),
    ("stale_dropped", "stale dropped"),
    ("first_progress_ms", "first progress ms"),
    ("drained_ms", "drained ms"),
    ("peak_rss_mib", "peak RSS MiB"),
)


def environment() -> str:
    """One line: the commit, Python, Redis and the machine."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()  # fmt: skip
    except OSError:
        commit = "?"
    try:
        redis = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        redis = redis.split()[2] if redis else "?"
    except (OSError, IndexError):
        redis = "?"
    cpus = (
        len(Path("/proc/cpuinfo").read_text().split("processor")) - 1
        if Path("/proc/cpuinfo").exists()
        else "?"
    )
    return (f"commit {commit}, Python {platform.python_version()}, Redis {redis}, {cpus} CPUs, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")  # fmt: skip


def table(results: Sequence[Result]) -> str:
    head = "| id | scenario | result | s | " + " | ".join(t for _, t in COLUMNS) + " |"
    rule = "|" + "---|" * (4 + len(COLUMNS))
    rows = [head, rule]
    for r in results:
        row = r.report.row()
        cells = ["" if row[k] is None else str(row[k]) for k, _ in COLUMNS]
        rows.append(f"| {r.id} | {r.title} | {'PASS' if r.passed else '**FAIL**'} | {r.seconds:.0f} | "
                    + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(rows)


def details(results: Sequence[Result]) -> str:
    out = []
    for r in results:
        out.append(f"### {r.id} {r.title}: {'PASS' if r.passed else 'FAIL'}\n")
        out += [f"- [{'x' if c.ok else ' '}] {c.name}: {_cell(c.detail)}" for c in r.checks]
        out += [f"- note: {_cell(n)}" for n in r.notes]
        out.append("")
    return "\n".join(out)


def _cell(text: str, limit: int = 300) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[:limit] + "..."


def write(path: Path, title: str, command: str, results: Sequence[Result], extra: str = "") -> str:
    """Write the report to ``path`` and return its text."""
    passed = sum(r.passed for r in results)
    text = "\n".join([
        f"# {title}", "",
        f"`{command}`: {passed} of {len(results)} passed; {environment()}.", "",
        "Columns: see docs/guarantees.md (lost must be 0; lost by Redis counts what a Redis without "
        "persistence lost itself).", "",
        table(results), "", extra, "## Criteria", "", details(results),
    ])  # fmt: skip
    path.write_text(text)
    return text
