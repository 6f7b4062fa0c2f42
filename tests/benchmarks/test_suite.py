"""The benchmark suite runs end to end at its quick sizes and its figures add up.

Not a timing test: it checks that every system processed and acked every message of
every workload (the suite itself verifies each consumer group afterwards), with the
right number of handle calls, and that the report renders. Peers that are not installed
(the ``bench`` extra) are skipped by the suite and by these checks.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS = [p for p in ("bytewax", "dramatiq", "celery") if importlib.util.find_spec(p) is not None]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> dict:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "all", "--quick", "--url", redis_url, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def _records(results: dict, workload: str) -> dict[str, dict]:
    return {r["system"]: r for r in results["records"] if r["workload"] == workload}


@pytest.mark.timeout(600)
def test_every_system_handles_every_message_of_w1_and_w2(results: dict) -> None:
    for workload, calls in (("W1", 1), ("W2", 71)):
        records = _records(results, workload)
        assert {"baseline", "pytempest", *PEERS} <= set(records), records.keys()
        for system, r in records.items():
            assert r["handled"] == calls * r["n"], (workload, system, r)
            assert r["msgs_per_s"] > 0


@pytest.mark.timeout(600)
def test_w3_has_a_latency_per_message_and_w4_a_memory_figure(results: dict) -> None:
    w3 = _records(results, "W3")
    assert {"baseline", "pytempest", *PEERS} <= set(w3)
    for r in w3.values():
        assert r["handled"] == r["n"] == 200  # 200/s for 1 s
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
    w4 = _records(results, "W4")
    assert set(w4) == {"baseline", "pytempest"}
    assert all(r["rss_bytes"] > 0 and r["handled"] == r["n"] for r in w4.values())


@pytest.mark.timeout(600)
def test_w5_runs_the_distributed_runtime_at_each_worker_count(results: dict) -> None:
    w5 = [r for r in results["records"] if r["workload"] == "W5"]
    assert sorted((r["job"], r["system"]) for r in w5) == [
        ("W1", "pytempest-dist-1w"), ("W1", "pytempest-dist-2w"),
        ("W2", "pytempest-dist-1w"), ("W2", "pytempest-dist-2w"),
    ]  # fmt: skip
    assert all(r["handled"] == (71 if r["job"] == "W2" else 1) * r["n"] for r in w5)


@pytest.mark.timeout(600)
def test_the_report_fills_the_page_between_its_markers(results: dict, tmp_path: Path) -> None:
    from benchmarks.suite.report import BEGIN, END, targets, write_doc

    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nprose before\n\n{BEGIN}\nold\n{END}\n\nprose after\n")
    write_doc(results, doc)
    text = doc.read_text()
    assert text.startswith("# Performance\n\nprose before") and text.endswith("prose after\n")
    assert "old" not in text and "### W1, one no-op task" in text and "### W5" in text
    assert {t for t, _, _ in targets(results["records"])} >= {
        "W1 in process >= 0.7 of the baseline",
        "W2 in process >= 0.6 of the baseline",
        "W4 <= 2 KiB of framework memory per in-flight message",
    }
    if importlib.util.find_spec("matplotlib") is not None:
        from benchmarks.suite.report import chart

        png = tmp_path / "chart.png"
        chart(results, png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
