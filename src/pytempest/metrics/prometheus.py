"""The Prometheus target: an HTTP ``/metrics`` endpoint, or pushes to a push gateway.

Both read the registry through :class:`RegistryCollector`, which names every metric the
Prometheus way from the catalog (:mod:`pytempest.metrics.catalog`).
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import basic_auth_handler, default_handler, make_wsgi_app, push_to_gateway
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import (
    Metric as PromMetric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from pytempest.errors import ConfigError
from pytempest.metrics.catalog import BY_NAME, prometheus_family
from pytempest.metrics.registry import Counter, Gauge, Metric, Registry, Timer
from pytempest.metrics.target import MetricTarget


class RegistryCollector(Collector):
    """Exposes a pytempest registry to prometheus-client, read at every scrape or push.

    Counters are ``_total`` counters; gauges are gauges (a ``ms`` gauge in seconds);
    timers are histograms in seconds, with the registry's millisecond bucket bounds
    divided by 1000 (``le="0.005"`` is the 5 ms bucket). Metrics sharing a family (the
    failure reasons) get the union of their label names; a missing label is empty.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def describe(self) -> Iterable[PromMetric]:
        return []  # the names are not known before the engine made its metrics

    def collect(self) -> Iterable[PromMetric]:
        groups: dict[str, list[tuple[Metric, dict[str, str], str]]] = {}
        for m in self.registry:
            family, constant, doc = prometheus_family(m)
            labels = {**dict(m.labels), **dict(constant)}
            groups.setdefault(family, []).append((m, labels, doc))
        for family, members in sorted(groups.items()):
            kinds = {m.kind for m, _, _ in members}
            if len(kinds) > 1:  # a user metric named like another of a different kind
                members = [x for x in members if x[0].kind == members[0][0].kind]
            names = sorted({k for _, labels, _ in members for k in labels})
            yield self._family(family, members[0][0], members[0][2], names, members)

    def _family(
        self,
        family: str,
        first: Metric,
        doc: str,
        names: list[str],
        members: list[tuple[Metric, dict[str, str], str]],
    ) -> PromMetric:
        prom: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
        if isinstance(first, Counter):
            prom = CounterMetricFamily(family, doc, labels=names)
        elif isinstance(first, Gauge):
            prom = GaugeMetricFamily(family, doc, labels=names)
        else:
            prom = HistogramMetricFamily(family, doc, labels=names)
        for m, labels, _ in members:
            values = [labels.get(n, "") for n in names]
            if isinstance(m, Counter) and isinstance(prom, CounterMetricFamily):
                prom.add_metric(values, m.value)
            elif isinstance(m, Gauge) and isinstance(prom, GaugeMetricFamily):
                spec = BY_NAME.get(m.name)
                prom.add_metric(values, m.value / 1000 if spec and spec.unit == "ms" else m.value)
            elif isinstance(m, Timer) and isinstance(prom, HistogramMetricFamily):
                prom.add_metric(values, _buckets(m), m.sum_ms / 1000)
        return prom


def _buckets(t: Timer) -> list[tuple[str, float]]:
    counts = list(t.buckets)
    out: list[tuple[str, float]] = []
    seen = 0
    for bound, n in zip(t.bounds, counts, strict=False):
        seen += n
        out.append((repr(bound / 1000), seen))
    out.append(("+Inf", seen + counts[-1]))
    return out


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _serve(bind: str, port: int, registry: CollectorRegistry) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` on ``bind:port`` from a daemon thread (like prometheus-client's
    ``start_http_server``, but its loop checks for shutdown every 50 ms, not 500)."""
    server_class = type(
        "_Server", (_ThreadingServer,), {"address_family": socket.AF_INET6 if ":" in bind else socket.AF_INET}
    )
    server: WSGIServer = make_server(
        bind, port, make_wsgi_app(registry), server_class, handler_class=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="pytempest-prometheus", daemon=True
    )
    thread.start()
    return server, thread


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ConfigError(
            f"metric target 'prometheus': port must be 0..65535 (0: any free port); got {port!r}"
        )
    return port


class PrometheusTarget(MetricTarget):
    """``kind = "prometheus"``: an HTTP endpoint Prometheus scrapes, or pushes to a gateway.

    Names follow Prometheus conventions (see the catalog): ``pytempest_`` first,
    counters ending in ``_total``, durations in seconds, and labels for the topology,
    the task and the status (``pytempest_task_messages_handled_total{topology="wc",
    task="count"}``). Timers are histograms whose buckets are the registry's
    millisecond bounds expressed in seconds.

    Serving (the default): at start, an HTTP server answers ``GET /metrics`` on
    ``bind:port`` from its own thread; every scrape reads the live counters (gauges as
    sampled at the last flush). Pushing (``push_gateway`` set, for batch runs): every
    flush, and a last time at shutdown, every metric is sent (HTTP ``PUT``) to
    ``<push_gateway>/metrics/job/<job>[/<key>/<value>...]`` within ``timeout_ms``; no
    server is started. Credentials in the gateway URL are sent as basic auth and never
    logged.

    Keys:
        port: the port to serve on (default 9464; 0 picks a free one, see :attr:`port`).
        bind: the address to serve on (default ``127.0.0.1``; ``0.0.0.0`` for every
            interface).
        push_gateway: the push gateway's URL (``http://host:9091``); switches to pushing.
        job: the ``job`` of pushed metrics (default ``pytempest``).
        grouping_key: more labels of the pushed group, e.g. ``{instance = "a"}``.
        timeout_ms: how long one push may take (default 5000).
    """

    kind: ClassVar[str] = "prometheus"

    def __init__(
        self,
        port: int = 9464,
        bind: str = "127.0.0.1",
        push_gateway: str | None = None,
        job: str = "pytempest",
        grouping_key: Mapping[str, str] | None = None,
        timeout_ms: int = 5_000,
    ) -> None:
        self.port = _check_port(port)
        if not isinstance(bind, str) or not bind:
            raise ConfigError(f"metric target 'prometheus': bind must be an address; got {bind!r}")
        self.bind = bind
        self.job = str(job)
        self.grouping_key = {str(k): str(v) for k, v in (grouping_key or {}).items()}
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms <= 0:
            raise ConfigError(f"metric target 'prometheus': timeout_ms must be > 0; got {timeout_ms!r}")
        self.timeout_ms = timeout_ms
        self.push_gateway: str | None = None
        self._handler: Callable[..., Callable[[], None]] = default_handler
        if push_gateway is not None:
            self._set_gateway(push_gateway)
        self._prom = CollectorRegistry(auto_describe=False)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _set_gateway(self, url: object) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"metric target 'prometheus': push_gateway must be an http(s) URL "
                f"(e.g. 'http://127.0.0.1:9091'); got {url!r}"
            )
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self.push_gateway = urlunsplit((parts.scheme, host, parts.path, "", ""))
        if parts.username is not None:
            self._handler = functools.partial(
                basic_auth_handler, username=parts.username, password=parts.password or ""
            )

    def open(self, registry: Registry) -> None:
        self._prom.register(RegistryCollector(registry))
        if self.push_gateway is None:
            try:
                self._server, self._thread = _serve(self.bind, self.port, self._prom)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"metric target prometheus cannot serve on {self.bind}:{self.port}: {exc.strerror}; "
                    "set another port (0 picks a free one) or bind address",
                ) from exc
            self.port = self._server.server_port

    def flush(self, registry: Registry) -> None:
        if self.push_gateway is not None:
            push_to_gateway(
                self.push_gateway, self.job, self._prom, grouping_key=self.grouping_key,
                timeout=self.timeout_ms / 1000, handler=self._handler,
            )  # fmt: skip

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def describe(self) -> str:
        if self.push_gateway is not None:
            return f"prometheus(push {self.push_gateway} job={self.job})"
        return f"prometheus(http://{self.bind}:{self.port}/metrics)"
