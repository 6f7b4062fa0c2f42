"""The Prometheus target: /metrics scraped over HTTP, a real push gateway, a hanging one."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytempest import Pipeline, TestRun, Topology, task
from pytempest.engine.engine import Engine
from pytempest.errors import ConfigError
from pytempest.metrics import PrometheusTarget, Registry
from pytempest.sources import MemorySource


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` by (name, labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return samples(text)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_endpoint_serves_the_live_registry(book: Callable[[], Pipeline]) -> None:
    n = 200
    target = PrometheusTarget(port=0)
    topology = Topology(
        "book", book(), MemorySource([f"m{i}" for i in range(n)], read_count=25),
        metric_targets=[target], metric_flush_interval_ms=10,
    )  # fmt: skip

    async def main() -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], dict[str, float]]:
        engine = Engine(topology)
        run = asyncio.create_task(engine.run(duration_ms=30_000))
        acked = ("pytempest_source_messages_acked_total", (("status", "success"), ("topology", "book")))
        deadline = time.monotonic() + 20
        scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            if target.port == 0:
                continue  # not serving yet
            scraped = await asyncio.to_thread(scrape, target.port)
            if (
                scraped.get(acked) == n
                and scraped.get(("pytempest_messages_in_flight", (("topology", "book"),))) == 0
            ):
                break
        engine.request_stop()
        await run
        return scraped, engine.snapshot()

    scraped, snapshot = asyncio.run(main())
    book_ = (("topology", "book"),)
    assert scraped[("pytempest_source_messages_acked_total", (("status", "success"), *book_))] == n
    assert scraped[("pytempest_source_messages_read_total", book_)] == n
    for name, per_msg in (("T1", 1), ("T2", 10), ("T3", 10), ("T4", 50)):
        labels = (("task", name), *book_)
        assert scraped[("pytempest_task_messages_handled_total", labels)] == n * per_msg
        assert snapshot[f"book.{name}.task.msg.handle"] == n * per_msg
        # The histogram: buckets in seconds, cumulative, +Inf is the count.
        assert scraped[("pytempest_task_handle_duration_seconds_count", labels)] == n * per_msg
        assert (
            scraped[("pytempest_task_handle_duration_seconds_bucket", (("le", "+Inf"), *labels))]
            == n * per_msg
        )
        assert (
            scraped[("pytempest_task_handle_duration_seconds_bucket", (("le", "0.005"), *labels))]
            <= n * per_msg
        )
        assert scraped[("pytempest_task_handle_duration_seconds_sum", labels)] == pytest.approx(
            snapshot[f"book.{name}.task.handle.sum_ms"] / 1000, rel=0.01, abs=1e-4
        )
    # Both failure reasons are one family with a reason label.
    assert scraped[("pytempest_messages_failed_total", (("reason", "error"), *book_))] == 0
    assert scraped[("pytempest_messages_failed_total", (("reason", "timeout"), *book_))] == 0
    # The server is gone once the run ended.
    with pytest.raises(urllib.error.URLError):
        scrape(target.port)


def test_user_metrics_get_prometheus_names() -> None:
    from pytempest.metrics.prometheus import RegistryCollector

    registry = Registry()
    registry.counter("perfect_msg", topology="wc", task="score").inc(3)
    registry.timer("lookup", topology="wc", task="score").observe(2.0)
    registry.counter("source.reconnects", topology="wc").inc()
    registry.gauge("source.backoff", topology="wc").set(250)
    families = {f.name: f for f in RegistryCollector(registry).collect()}
    assert families["pytempest_user_perfect_msg"].samples[0].value == 3
    assert families["pytempest_user_perfect_msg"].type == "counter"
    assert families["pytempest_user_lookup_seconds"].type == "histogram"
    assert families["pytempest_source_reconnects"].samples[0].labels == {"topology": "wc"}
    assert families["pytempest_source_backoff_seconds"].samples[0].value == 0.25


class _Gateway(BaseHTTPRequestHandler):
    bodies: list[tuple[str, str, bytes, str | None]]

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.bodies.append(("PUT", self.path, body, self.headers.get("Authorization")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def gateway() -> Iterator[tuple[ThreadingHTTPServer, list[tuple[str, str, bytes, str | None]]]]:
    bodies: list[tuple[str, str, bytes, str | None]] = []
    handler = type("Gateway", (_Gateway,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, bodies
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_push_gateway_gets_the_final_counts(gateway, book: Callable[[], Pipeline]) -> None:
    server, bodies = gateway
    n = 100
    port = server.server_address[1]
    target = PrometheusTarget(
        push_gateway=f"http://bob:s3cret@127.0.0.1:{port}", job="nightly", grouping_key={"instance": "a"}
    )
    assert "s3cret" not in target.describe()
    topology = Topology(
        "book", book(), MemorySource([f"m{i}" for i in range(n)]),
        metric_targets=[target], metric_flush_interval_ms=20,
    )  # fmt: skip
    metrics = TestRun(topology).run(timeout_ms=20_000)
    assert metrics.reason == "idle"
    assert bodies, "nothing was pushed"
    method, path, body, auth = bodies[-1]
    assert (method, path) == ("PUT", "/metrics/job/nightly/instance/a")
    assert auth == "Basic " + base64.b64encode(b"bob:s3cret").decode()
    pushed = samples(body.decode())
    labels = (("task", "T4"), ("topology", "book"))
    assert (
        pushed[("pytempest_task_messages_handled_total", labels)]
        == n * 50
        == metrics["book.T4.task.msg.handle"]
    )
    assert (
        pushed[("pytempest_source_messages_acked_total", (("status", "success"), ("topology", "book")))] == n
    )


def test_a_hanging_push_gateway_does_not_slow_message_handling(hanging_server) -> None:
    """The gateway accepts and never answers; every message is still handled, and only
    after the push hung (the root task waits for the gateway's first connection)."""
    n = 300
    handled_after_hang = 0

    @task("gate")
    async def gate(body: bytes) -> list[bytes]:
        nonlocal handled_after_hang
        for _ in range(1000):  # bounded: at most ~5 s
            if hanging_server.accepted.is_set():
                break
            await asyncio.sleep(0.005)
        if hanging_server.accepted.is_set():
            handled_after_hang += 1
        return [body, body]

    @task("sink")
    def sink(body: bytes) -> None:
        return None

    target = PrometheusTarget(push_gateway=f"http://127.0.0.1:{hanging_server.port}", timeout_ms=1_000)
    topology = Topology(
        "hang", Pipeline().task(gate).task(sink).edge("gate", "sink"),
        MemorySource([f"m{i}" for i in range(n)]),
        metric_targets=[target], metric_flush_interval_ms=10, msg_timeout_ms=30_000,
    )  # fmt: skip
    metrics = TestRun(topology).run(timeout_ms=20_000)
    assert metrics.reason == "idle"
    assert hanging_server.accepted.is_set()
    assert handled_after_hang == n
    assert metrics["hang.source.msg.acked.success"] == n
    assert metrics["hang.sink.task.msg.handle"] == 2 * n


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="push_gateway"):
        PrometheusTarget(push_gateway="ftp://x")
    with pytest.raises(ConfigError, match="port"):
        PrometheusTarget(port=70000)
    with pytest.raises(ConfigError, match="timeout_ms"):
        PrometheusTarget(timeout_ms=0)


def test_a_port_in_use_fails_the_run_with_the_address() -> None:
    first = PrometheusTarget(port=0)
    registry = Registry()
    first.open(registry)
    try:
        topology = Topology(
            "clash", Pipeline().task(task("t")(lambda b: None)), MemorySource(["x"]),
            metric_targets=[PrometheusTarget(port=first.port)],
        )  # fmt: skip
        with pytest.raises(OSError, match=r"cannot serve on 127.0.0.1:\d+: Address already in use"):
            TestRun(topology).run(timeout_ms=5_000)
    finally:
        first.close()
