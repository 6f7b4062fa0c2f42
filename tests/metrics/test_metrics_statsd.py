"""The statsd target against a real UDP socket on loopback."""

from __future__ import annotations

import asyncio
import collections
import re
import threading
from collections.abc import Callable

import pytest

from pytempest import Pipeline, TestRun, Topology
from pytempest.errors import ConfigError
from pytempest.metrics import Registry, StatsdTarget
from pytempest.sources import MemorySource

LINE = re.compile(
    r"^(?P<name>[^:|]+):(?P<value>-?[0-9.e+-]+)\|(?P<type>c|g|ms)(?:\|@(?P<rate>[0-9.e-]+))?(?:\|#(?P<tags>.*))?$"
)


def parse(datagrams: list[bytes]) -> list[dict[str, str]]:
    lines = []
    for d in datagrams:
        for line in d.decode().split("\n"):
            match = LINE.match(line)
            assert match, f"not a statsd line: {line!r}"
            lines.append(match.groupdict())
    return lines


class FlaggedStatsd(StatsdTarget):
    """Sets ``flushed`` after each flush."""

    flushed = threading.Event()

    def flush(self, registry: Registry) -> None:
        super().flush(registry)
        self.flushed.set()


def test_counts_gauges_and_timers_match_the_run(udp, book: Callable[[], Pipeline]) -> None:
    n = 300
    target = FlaggedStatsd(host=f"127.0.0.1:{udp.port}", prefix="pt", max_datagram_bytes=512)
    pipeline = book()
    t1 = pipeline.tasks[0]
    handle = t1.handle

    async def wait_for_a_flush_midway(body: bytes) -> object:
        if body == b"m150":  # so that the run spans at least two flushes
            for _ in range(2000):  # bounded: at most ~10 s
                if target.flushed.is_set():
                    break
                await asyncio.sleep(0.005)
        return handle(body)

    t1.handle = wait_for_a_flush_midway  # type: ignore[method-assign]
    topology = Topology(
        "book", pipeline, MemorySource([f"m{i}" for i in range(n)], read_count=20),
        metric_targets=[target], metric_flush_interval_ms=2, max_pending=2,
    )  # fmt: skip
    metrics = TestRun(topology).run(timeout_ms=20_000)
    assert metrics.reason == "idle"
    datagrams = udp.drain()
    assert datagrams and all(len(d) <= 512 for d in datagrams)
    lines = parse(datagrams)

    counters: dict[str, int] = collections.Counter()
    for line in lines:
        if line["type"] == "c":
            counters[line["name"]] += int(line["value"])
    # Counters are sent as deltas: summed over every flush they equal the run's totals.
    assert counters["pt.book.source.msg.read"] == n
    read_lines = [line for line in lines if line["name"] == "pt.book.source.msg.read"]
    assert len(read_lines) > 1, "the run should span several flushes"
    assert counters["pt.book.source.msg.acked.success"] == n
    assert counters["pt.book.T4.task.msg.handle"] == n * 50 == metrics["book.T4.task.msg.handle"]
    assert counters["pt.book.T2.task.msg.outflow"] == n * 50
    for key, value in metrics.items():
        if key.endswith((".count", ".sum_ms", ".p50_ms", ".p99_ms", ".max_ms")) or "{" in key:
            continue
        if key.endswith(("inflight", "waiting", "backoff", "depth")):
            continue  # gauges
        assert counters.get(f"pt.{key}", 0) == value, key

    gauges = {line["name"] for line in lines if line["type"] == "g"}
    assert {"pt.book.pipeline.inflight", "pt.book.T1.task.queue.depth", "pt.book.source.backoff"} <= gauges
    last_inflight = [float(line["value"]) for line in lines if line["name"] == "pt.book.pipeline.inflight"][
        -1
    ]
    assert last_inflight == 0

    # Timers: one |ms line per bucket with a sample rate; 1/rate adds up to the count.
    observed: dict[str, float] = collections.Counter()
    total_ms: dict[str, float] = collections.Counter()
    for line in lines:
        if line["type"] == "ms":
            count = round(1 / float(line["rate"])) if line["rate"] else 1
            observed[line["name"]] += count
            total_ms[line["name"]] += count * float(line["value"])
    assert observed["pt.book.T4.task.handle"] == metrics["book.T4.task.handle.count"] == n * 50
    assert observed["pt.book.topology.source.msg.latency"] == n
    assert total_ms["pt.book.T4.task.handle"] == pytest.approx(
        metrics["book.T4.task.handle.sum_ms"], rel=0.05, abs=1
    )


def test_dogstatsd_tags_and_constant_tags(udp) -> None:
    registry = Registry()
    registry.counter("task.msg.handle", topology="wc", task="count").inc(7)
    registry.gauge("pipeline.inflight", topology="wc").set(-3)
    target = StatsdTarget(host=f"127.0.0.1:{udp.port}", prefix="pt", tags={"env": "test"})
    target.open(registry)
    try:
        target.flush(registry)
        registry.counter("task.msg.handle", topology="wc", task="count").inc(2)
        target.flush(registry)
    finally:
        target.close()
    lines = [line for d in udp.drain() for line in d.decode().split("\n")]
    handle = [line for line in lines if line.startswith("pt.task.msg.handle:")]
    assert handle == [
        "pt.task.msg.handle:7|c|#task:count,topology:wc,env:test",
        "pt.task.msg.handle:2|c|#task:count,topology:wc,env:test",
    ]
    # A negative gauge is reset to 0 first: statsd reads "-3|g" as "subtract 3".
    assert lines[lines.index("pt.pipeline.inflight:0|g|#topology:wc,env:test") + 1] == (
        "pt.pipeline.inflight:-3|g|#topology:wc,env:test"
    )


def test_labels_beyond_status_go_in_the_name_without_tags(udp) -> None:
    registry = Registry()
    registry.counter("topology.source.msg.ack.dropped", topology="wc", reason="failure_policy_none").inc()
    target = StatsdTarget(host=f"127.0.0.1:{udp.port}")
    target.open(registry)
    try:
        target.flush(registry)
    finally:
        target.close()
    assert udp.drain() == [b"wc.topology.source.msg.ack.dropped.failure_policy_none:1|c"]


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="host:port"):
        StatsdTarget(host="localhost")
    with pytest.raises(ConfigError, match="prefix"):
        StatsdTarget(prefix="bad prefix")
    with pytest.raises(ConfigError, match="max_datagram_bytes"):
        StatsdTarget(max_datagram_bytes=10)
    assert (StatsdTarget(host="[::1]:8125").host, StatsdTarget(host="[::1]:8125").port) == ("::1", 8125)
