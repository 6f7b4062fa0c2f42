"""Histogram buckets from the code (``Topology(metric_buckets_ms=...)``) and from
``Topology.toml`` (``[metric] buckets_ms``): the timers use them, a Prometheus scrape shows
them, and a bad list is a configuration error naming the file, the line and the key."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytempest import Pipeline, TestRun, Topology
from pytempest.config import configure
from pytempest.engine.engine import Engine
from pytempest.errors import ConfigError
from pytempest.metrics import PrometheusTarget
from pytempest.metrics.registry import DEFAULT_BUCKETS_MS, Registry
from pytempest.sources import MemorySource

from ..cli.clitools import APP, pytempest, setting

N = 40


def bucket_samples(registry: Registry) -> dict[tuple[str, str], dict[str, float]]:
    """``{(family, task): {le: cumulative count}}`` of every histogram, scraped over HTTP."""
    target = PrometheusTarget(port=0)
    target.open(registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{target.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        target.close()
    out: dict[tuple[str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_bucket"):
                out.setdefault((family.name, s.labels.get("task", "")), {})[s.labels["le"]] = s.value
    return out


def run(topology: Topology) -> Registry:
    test = TestRun(topology)
    metrics = test.run()
    assert metrics[f"{topology.name}.source.msg.acked.success"] == N
    assert test.engine is not None
    return test.engine.registry


def check_buckets_scraped(registry: Registry, seconds: list[str]) -> None:
    """Every histogram has exactly the ``le`` bounds ``seconds`` and ``+Inf``, cumulative,
    and the one of T4 counted every T4 message."""
    scraped = bucket_samples(registry)
    handle = scraped[("pytempest_task_handle_duration_seconds", "T4")]
    latency = scraped[("pytempest_message_latency_seconds", "")]
    for buckets in (handle, latency):
        assert list(buckets) == [*seconds, "+Inf"]
        counts = list(buckets.values())
        assert counts == sorted(counts), "cumulative"
    assert handle["+Inf"] == N * 50
    assert latency["+Inf"] == N


def test_buckets_from_the_code(book: Callable[[], Pipeline]) -> None:
    topology = Topology(
        "bk", book(), MemorySource([f"m{i}" for i in range(N)]), metric_buckets_ms=[1, 10, 100]
    )
    assert topology.metric_buckets_ms == (1.0, 10.0, 100.0)
    registry = run(topology)
    timers = [m for m in registry if m.kind == "timer"]
    assert timers and all(t.bounds == (1.0, 10.0, 100.0) for t in timers)  # type: ignore[attr-defined]
    check_buckets_scraped(registry, ["0.001", "0.01", "0.1"])
    # replace() keeps them; the default is the registry's
    assert topology.replace(max_pending=5).metric_buckets_ms == (1.0, 10.0, 100.0)
    plain = Topology("bk", book(), MemorySource([f"m{i}" for i in range(N)]))
    assert plain.metric_buckets_ms is None
    assert all(t.bounds == DEFAULT_BUCKETS_MS for t in run(plain) if t.kind == "timer")  # type: ignore[attr-defined]


def test_buckets_from_topology_toml(tmp_path: Path, book: Callable[[], Pipeline]) -> None:
    path = tmp_path / "Topology.toml"
    path.write_text("[metric]\nbuckets_ms = [0.5, 5, 50, 500]\n")
    code = Topology("bk", book(), MemorySource([f"m{i}" for i in range(N)]), metric_buckets_ms=[1, 2])
    configured = configure(code, path, env={})
    assert configured.topology.metric_buckets_ms == (0.5, 5.0, 50.0, 500.0)
    assert configured.config.origin("metric.buckets_ms") == f"{path}:2"
    check_buckets_scraped(run(configured.topology), ["0.0005", "0.005", "0.05", "0.5"])


def test_validate_shows_the_buckets_and_where_they_come_from(tmp_path: Path) -> None:
    path = tmp_path / "Topology.toml"
    path.write_text("name = 'x'\n\n[metric]\nbuckets_ms = [1, 2.5, 10_000]\n")
    out = pytempest("validate", f"{APP}:topology", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert setting(out.stdout, "metric.buckets_ms") == ("1,2.5,10000", f"{path}:4")


BAD = {
    "not increasing": ("[10, 5, 100]", "strictly increasing list of positive, finite milliseconds", "got [10, 5, 100]"),
    "equal bounds": ("[1, 1]", "strictly increasing", "got [1, 1]"),
    "not numbers": ('["1ms", 5]', "list of positive, finite milliseconds", "got ['1ms', 5]"),
    "booleans": ("[true, 5]", "list of positive, finite milliseconds", "got [True, 5]"),
    "zero": ("[0, 5]", "positive, finite milliseconds", "got [0, 5]"),
    "empty": ("[]", "non-empty", "got []"),
    "not an array": ("25", "expected an array of numbers (ms)", "got an integer 25"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_buckets_in_topology_toml_name_file_line_and_key(tmp_path: Path, case: str) -> None:
    value, expected, got = BAD[case]
    path = tmp_path / "Topology.toml"
    path.write_text(f"name = 'x'\n\n[metric]\nflush_interval_ms = 100\nbuckets_ms = {value}\n")
    out = pytempest("validate", f"{APP}:topology", "--config", str(path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""
    assert out.stderr.startswith(f"Error: {path}:5: metric.buckets_ms: "), out.stderr
    assert expected in out.stderr and got in out.stderr
    assert out.stderr.count("\n") == 1, "one line"


@pytest.mark.parametrize("value", [[5, 1], ["a"], [], "1,5", 5, [float("nan")], [1, float("inf")]], ids=repr)
def test_bad_buckets_in_code_are_config_errors(book: Callable[[], Pipeline], value: object) -> None:
    with pytest.raises(ConfigError, match=r"topology 'bk': metric_buckets_ms must be"):
        Topology("bk", book(), MemorySource([]), metric_buckets_ms=value)  # type: ignore[arg-type]
    good = Topology("bk", book(), MemorySource([]))
    with pytest.raises(ConfigError, match="metric_buckets_ms"):
        good.replace(metric_buckets_ms=value)


def test_timers_made_before_the_engine_get_the_topologys_buckets(book: Callable[[], Pipeline]) -> None:
    """An observer (the status publisher) may make its timers before the engine exists:
    the engine's registry rebuckets those still empty; one with observations keeps its own."""
    registry = Registry()
    early = registry.timer("task.handle", topology="bk", task="T4")
    used = registry.timer("user.thing", topology="bk")
    used.observe(3.0)
    own = Registry()
    own.set_buckets("task.handle", [7, 70])
    pinned = own.timer("task.handle", topology="bk", task="T4")
    topology = Topology("bk", book(), MemorySource([f"m{i}" for i in range(N)]), metric_buckets_ms=[2, 20])
    Engine(topology, registry=registry)
    Engine(topology, registry=own)
    assert early.bounds == (2.0, 20.0) and len(early.buckets) == 3
    assert used.bounds == DEFAULT_BUCKETS_MS and used.count == 1
    assert pinned.bounds == (7.0, 70.0)
    assert registry.timer("task.handle", topology="bk", task="T1").bounds == (2.0, 20.0)
    with pytest.raises(ValueError, match="has observations"):
        used.rebucket((1.0,))
