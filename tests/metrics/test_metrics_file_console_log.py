"""The file, console and log targets, read back after real runs."""

from __future__ import annotations

import io
import itertools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytempest import Pipeline, SourceMsg, TestRun, Topology, task
from pytempest.errors import ConfigError
from pytempest.metrics import ConsoleTarget, FileTarget, LogTarget, Registry
from pytempest.sources import MemorySource


def run_book(book: Callable[[], Pipeline], n: int, *targets: object, name: str = "book") -> dict[str, float]:
    topology = Topology(
        name, book(), MemorySource([f"m{i}" for i in range(n)], read_count=10),
        metric_targets=list(targets), metric_flush_interval_ms=5,  # type: ignore[arg-type]
    )  # fmt: skip
    metrics = TestRun(topology).run(timeout_ms=20_000)
    assert metrics.reason == "idle"
    return metrics


def test_file_target_writes_json_lines_with_the_run_counts(
    tmp_path: Path, book: Callable[[], Pipeline]
) -> None:
    path = tmp_path / "sub" / "metrics.jsonl"
    metrics = run_book(book, 150, FileTarget(path, prefix="pt"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines, "no line written"
    last = lines[-1]
    assert set(last) == {"ts_ms", "counters", "gauges", "timers"}
    assert last["counters"]["pt.book.source.msg.acked.success"] == 150
    assert last["counters"]["pt.book.T4.task.msg.handle"] == 150 * 50 == metrics["book.T4.task.msg.handle"]
    assert last["gauges"]["pt.book.pipeline.inflight"] == 0
    assert last["timers"]["pt.book.T2.task.handle"]["count"] == 150 * 10
    # Counters are totals: they never go down from one line to the next.
    for before, after in itertools.pairwise(lines):
        assert after["ts_ms"] >= before["ts_ms"]
        for key, value in before["counters"].items():
            assert after["counters"][key] >= value


def test_file_target_appends_or_clobbers(tmp_path: Path, book: Callable[[], Pipeline]) -> None:
    path = tmp_path / "m.jsonl"
    run_book(book, 5, FileTarget(path))
    first = len(path.read_text().splitlines())
    run_book(book, 5, FileTarget(path))
    assert len(path.read_text().splitlines()) > first
    start_ms = int(time.time() * 1000)
    run_book(book, 5, FileTarget(path, clobber=True))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines and all(line["ts_ms"] >= start_ms for line in lines)  # only this run's lines are left


def test_file_target_rotates_by_size(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    registry = Registry()
    counter = registry.counter("source.msg.read", topology="wc")
    target = FileTarget(path, max_bytes=300, backups=2)
    target.open(registry)
    try:
        for i in range(12):
            counter.inc()
            target.flush(registry)
            assert path.stat().st_size <= 300, i
    finally:
        target.close()
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["m.jsonl", "m.jsonl.1", "m.jsonl.2"]
    values = []
    for name in ("m.jsonl.2", "m.jsonl.1", "m.jsonl"):
        values += [
            json.loads(x)["counters"]["wc.source.msg.read"]
            for x in (tmp_path / name).read_text().splitlines()
        ]
    assert values == list(range(13 - len(values), 13))  # the newest lines, in order, none lost between files


def test_file_target_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        FileTarget("x.jsonl", max_bytes=-1)
    with pytest.raises(ConfigError, match="path"):
        FileTarget("")


def test_console_target_prints_a_table(book: Callable[[], Pipeline]) -> None:
    out = io.StringIO()
    run_book(book, 20, ConsoleTarget(stream=out))
    tables = out.getvalue().split("-- pytempest metrics ")
    last = tables[-1].splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in last[1:]}
    assert rows["book.source.msg.acked.success"][:2] == ["counter", "20"]
    assert rows["book.T4.task.msg.handle"][:2] == ["counter", "1000"]
    assert rows["book.pipeline.inflight"] == ["gauge", "0"]
    assert rows["book.T4.task.handle"][:2] == ["timer", "1000"]
    assert "book.T1.task.msg.error" not in rows  # zero counters are left out
    # The "+n" column adds up to the total over all the tables.
    gained = sum(
        int(line.split()[3].lstrip("+"))
        for table in tables
        for line in table.splitlines()
        if line.startswith("book.source.msg.read ")
    )
    assert gained == 20


def test_log_target_writes_one_line_per_flush(
    caplog: pytest.LogCaptureFixture, book: Callable[[], Pipeline]
) -> None:
    with caplog.at_level(logging.INFO, logger="pytempest.metrics"):
        run_book(book, 10, LogTarget(level="warning", prefix="pt"))
    records = [
        r for r in caplog.records if r.name == "pytempest.metrics" and r.getMessage().startswith("metrics:")
    ]
    assert records and all(r.levelno == logging.WARNING for r in records)
    last = records[-1]
    assert "pt.book.T4.task.msg.handle=500" in last.getMessage()
    assert last.metrics["pt.book.source.msg.acked.success"] == 10  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="level"):
        LogTarget(level="loud")


def test_task_and_source_metrics_are_flushed_with_the_rest(tmp_path: Path) -> None:
    @task("score")
    def score(body: bytes) -> None:
        if body.startswith(b"perfect"):
            score.metrics.incr("perfect_msg")
        score.metrics.gauge("model_version", 7)
        score.metrics.timing("lookup", 2.5)

    class CountingSource(MemorySource):
        async def poll(self, max_count: int) -> list[SourceMsg]:
            msgs = await super().poll(max_count)
            if msgs and self.metrics is not None:
                self.metrics.incr("batches")
            return msgs

    path = tmp_path / "m.jsonl"
    topology = Topology(
        "user", Pipeline().task(score), CountingSource(["perfect 1", "meh", "perfect 2"], read_count=1),
        metric_targets=[FileTarget(path)], metric_flush_interval_ms=5,
    )  # fmt: skip
    metrics = TestRun(topology).run(timeout_ms=10_000)
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["counters"]["user.score.perfect_msg"] == 2 == metrics["user.score.perfect_msg"]
    assert last["gauges"]["user.score.model_version"] == 7
    assert last["timers"]["user.score.lookup"]["count"] == 3
    assert last["counters"]["user.source.batches"] == 3
