"""The statsd target: UDP datagrams of ``name:value|type`` lines, DogStatsD tags optional."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from pytempest.errors import ConfigError
from pytempest.metrics.registry import Counter, Gauge, Metric, Registry, Timer
from pytempest.metrics.target import Deltas, MetricTarget, check_prefix

log = logging.getLogger("pytempest.metrics")

_BAD = re.compile(r"[^A-Za-z0-9_.\-]")
_BAD_TAG = re.compile(r"[^A-Za-z0-9_.\-/:]")


def parse_host(host: object) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:8125"`` for IPv6) as ``(host, port)``."""
    text = str(host) if isinstance(host, str) else ""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text)
    if match:
        name = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if 0 < port < 65536:
            return name, port
    raise ConfigError(
        f"metric target 'statsd': host must be 'host:port' (e.g. '127.0.0.1:8125'); got {host!r}"
    )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(round(value, 6))


class StatsdTarget(MetricTarget):
    """``kind = "statsd"``: UDP datagrams to a statsd server (or the Datadog agent).

    Each flush sends, for every metric that changed:

    * a counter as ``name:<increase since the last flush>|c`` (counters that did not
      move are not sent);
    * a gauge as ``name:<value>|g`` (a negative value is sent as ``0|g`` then the
      value, because statsd reads a signed value as a change);
    * a timer as the observations of the interval, in milliseconds, summarised by
      histogram bucket: one ``name:<mean of the bucket's observations>|ms|@<1/n>`` line
      per bucket that got ``n`` observations (``@`` omitted when ``n`` is 1). The
      sample rate makes the server count ``n`` observations, so counts (and with
      DogStatsD, which weights values by it, sums and averages) are exact; percentiles
      are exact to the bucket. Etsy statsd weights each line once for its mean and
      percentiles.

    Names: ``[<prefix>.]<topology>[.<task>].<name>[.<status>]``, other labels' values
    appended. With ``dogstatsd``, the name is ``[<prefix>.]<name>`` and every label is a
    tag (``|#topology:wc,task:count``). Lines are packed into datagrams of at most
    ``max_datagram_bytes``.

    Keys:
        host: ``"host:port"`` of the server (default ``127.0.0.1:8125``); resolved at
            start and again after a failure.
        prefix: put in front of every name (default none).
        dogstatsd: labels as DogStatsD tags instead of in the name (default false).
        tags: constant tags added to every line, e.g. ``{env = "prod"}`` (implies
            ``dogstatsd``).
        max_datagram_bytes: default 1432 (fits an Ethernet MTU); 8192 is fine on loopback.
    """

    kind: ClassVar[str] = "statsd"

    def __init__(
        self,
        host: str = "127.0.0.1:8125",
        prefix: str = "",
        dogstatsd: bool = False,
        tags: Mapping[str, str] | None = None,
        max_datagram_bytes: int = 1432,
    ) -> None:
        self.host, self.port = parse_host(host)
        self.prefix = check_prefix(prefix, self.kind)
        if tags is not None and not isinstance(tags, Mapping):
            raise ConfigError(f"metric target 'statsd': tags must be a table of strings; got {tags!r}")
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.dogstatsd = bool(dogstatsd) or bool(self.tags)
        if (
            isinstance(max_datagram_bytes, bool)
            or not isinstance(max_datagram_bytes, int)
            or not (128 <= max_datagram_bytes <= 65507)
        ):
            raise ConfigError(
                f"metric target 'statsd': max_datagram_bytes must be 128..65507; got {max_datagram_bytes!r}"
            )
        self.max_datagram_bytes = max_datagram_bytes
        self._deltas = Deltas()
        self._names: dict[int, tuple[str, str]] = {}
        self._sock: socket.socket | None = None
        self._addr: Any = None

    def open(self, registry: Registry) -> None:
        try:
            self._resolve()
        except OSError as exc:  # DNS may come back: every flush tries again
            log.warning("metric target %s: %s; will retry at each flush", self.describe(), exc)

    def _resolve(self) -> None:
        try:
            info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise OSError(f"statsd host {self.host}:{self.port} cannot be resolved: {exc}") from exc
        family, kind, proto, _, addr = info[0]
        if self._sock is not None:
            self._sock.close()
        self._sock = socket.socket(family, kind, proto)
        self._addr = addr

    def _name(self, m: Metric) -> tuple[str, str]:
        """``(name, tag suffix)`` of a metric, computed once."""
        cached = self._names.get(id(m))
        if cached is not None:
            return cached
        labels = dict(m.labels)
        if self.dogstatsd:
            parts = [self.prefix, m.name]
            tags = {**labels, **self.tags}
            suffix = "|#" + ",".join(
                f"{_BAD_TAG.sub('_', k)}:{_BAD_TAG.sub('_', v)}" for k, v in tags.items()
            )
        else:
            first = [labels.pop("topology", ""), labels.pop("task", ""), m.name, labels.pop("status", "")]
            parts = [self.prefix, *first, *(v for _, v in sorted(labels.items()))]
            suffix = ""
        name = ".".join(_BAD.sub("_", p) for p in parts if p)
        self._names[id(m)] = (name, suffix)
        return name, suffix

    def lines(self, registry: Registry) -> Iterator[str]:
        """The statsd lines of this flush (advances the counter and timer baselines)."""
        for m in registry:
            name, tags = self._name(m)
            if isinstance(m, Counter):
                delta = self._deltas.counter(m)
                if delta:
                    yield f"{name}:{delta}|c{tags}"
            elif isinstance(m, Gauge):
                if m.value < 0:
                    yield f"{name}:0|g{tags}"
                yield f"{name}:{_num(m.value)}|g{tags}"
            elif isinstance(m, Timer):
                for n, total in self._deltas.timer(m):
                    if n > 0:
                        rate = "" if n == 1 else f"|@{1 / n!r}"
                        yield f"{name}:{_num(max(0.0, total / n))}|ms{rate}{tags}"

    def datagrams(self, lines: Iterator[str]) -> Iterator[bytes]:
        """Pack lines, newline-separated, into datagrams of at most ``max_datagram_bytes``."""
        batch: list[bytes] = []
        size = 0
        for line in lines:
            data = line.encode("utf-8")
            if batch and size + 1 + len(data) > self.max_datagram_bytes:
                yield b"\n".join(batch)
                batch, size = [], 0
            size += len(data) + (1 if batch else 0)
            batch.append(data)
        if batch:
            yield b"\n".join(batch)

    def flush(self, registry: Registry) -> None:
        if self._sock is None:
            self._resolve()
        assert self._sock is not None
        try:
            for datagram in self.datagrams(self.lines(registry)):
                self._sock.sendto(datagram, self._addr)
        except OSError:
            self.close()  # resolve again next time
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def describe(self) -> str:
        return f"statsd({self.host}:{self.port})"
