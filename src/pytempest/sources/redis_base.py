"""What the Redis sources share: option checks, pending handlers, a guarded client.

* Options are checked in the constructor, before any I/O: a wrong value raises
  :class:`~pytempest.errors.ConfigError` naming the source kind, the option, what was
  expected and what was given.
* :class:`PendingHandler` says what to do with entries nobody finished: ``claim``,
  ``ack``, ``delete`` or ``dead_letter``, selected by idle time and delivery count.
* :class:`RedisSourceBase` owns the client. Every Redis call goes through
  :meth:`RedisSourceBase._run`, which turns a broken connection into
  :class:`~pytempest.errors.SourceConnectionError` (the engine backs off and calls
  again; redis-py reconnects on the next call), wrong credentials into a
  :class:`~pytempest.errors.SourceError` that names the URL without its password, and
  counts ``reconnects`` when Redis answers again.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from pytempest.deadletters.base import DeadLetter
from pytempest.errors import ConfigError, SourceError
from pytempest.model.policy import AckPolicy
from pytempest.redis.connection import (
    check_url,
    connect,
    connection_error,
    connection_problem,
    is_auth_error,
    is_nogroup,
    is_tls_error,
    mask_url,
)
from pytempest.sources.base import Source

log = logging.getLogger("pytempest.sources.redis")

T = TypeVar("T")

CONSUMER_ENV = "PYTEMPEST_CONSUMER"

TEMPEST_ALIASES: dict[str, str] = {
    "uri": "url",
    "read_msg_count": "read_count",
    "poll_interval": "poll_interval_ms",
    "max_backoff": "max_backoff_ms",
    "monitor_interval": "monitor_interval_ms",
}
"""The original Tempest's ``[source.config]`` key names every Redis source accepts."""
"""Environment variable that sets the default consumer name of the Redis sources."""

Action = Literal["claim", "ack", "delete", "dead_letter"]
ACTIONS: tuple[str, ...] = ("claim", "ack", "delete", "dead_letter")


def default_consumer() -> str:
    """``$PYTEMPEST_CONSUMER``, else the host name: stable across restarts of one host."""
    return os.environ.get(CONSUMER_ENV) or socket.gethostname() or "pytempest"


def _bad(where: str, name: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"{where}: option {name!r} must be {expected}; got {value!r}")


def opt_int(where: str, name: str, value: object, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, name, f"a whole number >= {minimum}", value)
    if value < minimum:
        raise _bad(where, name, f">= {minimum}", value)
    return value


def opt_str(where: str, name: str, value: object) -> str:
    """``value`` as a non-empty string."""
    if not isinstance(value, str) or not value:
        raise _bad(where, name, "a non-empty string", value)
    return value


def opt_ack_policy(where: str, value: object, default: AckPolicy) -> AckPolicy:
    """An :class:`AckPolicy`, its string form (``"batch(100, ack_interval_ms=50)"``) or
    the original Tempest's table (``{type = "Batch", value = 100}``)."""
    if value is None:
        return default
    if isinstance(value, AckPolicy):
        return value
    if isinstance(value, str):
        try:
            return AckPolicy.parse(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: option 'ack_policy': {exc}") from None
    if isinstance(value, Mapping) and isinstance(value.get("type"), str):
        kind = str(value["type"]).lower()
        if kind == "batch" and "value" in value:
            size = opt_int(where, "ack_policy.value", value["value"], 1)
            return AckPolicy.batch(size, default.interval_ms or 100)
        if kind in ("individual", "none"):
            return AckPolicy.parse(kind)
    raise _bad(where, "ack_policy", "individual, none or batch(n, ack_interval_ms=...)", value)


@dataclass(frozen=True, slots=True)
class PendingHandler:
    """What to do with entries that were delivered but not acked for a while.

    The monitor looks at every pending entry nobody in this process holds and applies
    the first handler (in list order) with ``idle >= min_idle_ms`` and
    ``deliveries >= times_delivered``:

    * ``claim``: take the entry over and process it here;
    * ``ack``: acknowledge it without processing (it is dropped);
    * ``delete``: acknowledge it and delete it from the stream;
    * ``dead_letter``: write it to the dead letter, then acknowledge it.

    Args:
        action: one of the four above (``"Claim"`` and ``{type = "Claim"}`` work too).
        min_idle_ms: the entry has not been delivered or claimed for this long.
        times_delivered: the entry has been delivered at least this many times.
    """

    action: Action
    min_idle_ms: int = 60_000
    times_delivered: int = 1

    config_aliases: ClassVar[dict[str, str]] = {"min_idle_time": "min_idle_ms", "type": "action"}

    def __post_init__(self) -> None:
        where = "PendingHandler"
        if self.action not in ACTIONS:
            raise _bad(where, "action", "one of " + ", ".join(ACTIONS), self.action)
        opt_int(where, "min_idle_ms", self.min_idle_ms)
        opt_int(where, "times_delivered", self.times_delivered, 1)

    @classmethod
    def coerce(cls, value: object, where: str) -> PendingHandler:
        """A handler from itself or from a ``Topology.toml`` table."""
        if isinstance(value, PendingHandler):
            return value
        if not isinstance(value, Mapping):
            raise _bad(where, "pending_handlers", "PendingHandler objects or tables", value)
        options: dict[str, Any] = {}
        for key, item in value.items():
            name = cls.config_aliases.get(key, key)
            if name not in ("action", "min_idle_ms", "times_delivered"):
                raise ConfigError(
                    f"{where}: pending handler key {key!r} is unknown; expected action, "
                    "min_idle_ms, times_delivered"
                )
            options[name] = item
        action = options.get("action")
        if isinstance(action, Mapping):  # the original's {type = "Claim"}
            action = action.get("type")
        if isinstance(action, str):
            options["action"] = action.lower()
        try:
            return cls(**options)
        except TypeError:
            raise ConfigError(f"{where}: pending handler {dict(value)!r} needs an action") from None
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def matches(self, idle_ms: int, deliveries: int) -> bool:
        """Whether this handler applies to an entry idle ``idle_ms`` delivered ``deliveries`` times."""
        return idle_ms >= self.min_idle_ms and deliveries >= self.times_delivered


def opt_handlers(where: str, value: object, default: Sequence[PendingHandler]) -> tuple[PendingHandler, ...]:
    """A tuple of handlers from handlers or tables (``None``: the default)."""
    if value is None:
        return tuple(default)
    if isinstance(value, PendingHandler | Mapping | str | bytes) or not isinstance(value, Sequence):
        raise _bad(where, "pending_handlers", "a list of PendingHandler objects or tables", value)
    return tuple(PendingHandler.coerce(v, where) for v in value)


def pick(handlers: Sequence[PendingHandler], idle_ms: int, deliveries: int) -> PendingHandler | None:
    """The first handler that applies, or None."""
    for handler in handlers:
        if handler.matches(idle_ms, deliveries):
            return handler
    return None


def decode_id(raw: object) -> str:
    """A Redis id or member as ``str``; bytes that are not UTF-8 survive a round trip."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "surrogateescape")
    return raw if isinstance(raw, str) else str(raw)


def encode_id(msg_id: str) -> bytes:
    """The inverse of :func:`decode_id`."""
    return msg_id.encode("utf-8", "surrogateescape")


class _NoGroup(Exception):
    """The stream or its consumer group is gone (parsed once, in connection.py)."""


class RedisSourceBase(Source):
    """Common part of the Redis sources: URL, key, client, error mapping, metrics.

    Subclasses call :meth:`_open` from ``setup`` and wrap every Redis call in
    :meth:`_run`. ``self.metrics`` may be ``None`` (a source used without an engine).
    """

    config_aliases: ClassVar[dict[str, str]] = {}

    def __init__(self, url: str, key: str, dead_letter: DeadLetter | None, options: dict[str, Any]) -> None:
        self._options = {k: v for k, v in options.items() if k not in ("self", "__class__")}
        where = self.kind
        self.url = check_url(url, where)
        self.key = opt_str(where, "key", key)
        if dead_letter is not None and not isinstance(dead_letter, DeadLetter):
            raise _bad(where, "dead_letter", "a DeadLetter", dead_letter)
        self.dead_letter = dead_letter
        self._owns_dead_letter = dead_letter is not None  # else the engine binds and runs it
        self._client: aioredis.Redis | None = None
        self._down_since: float | None = None
        self._broken: str | None = None
        self._logged_down = False

    def options(self) -> dict[str, Any]:
        """The constructor arguments this source was built with (``Topology.toml`` keys
        override some of them and rebuild it: ``type(s)(**{**s.options(), **changes})``)."""
        return dict(self._options)

    # -- client ----------------------------------------------------------------------
    def _socket_timeout_s(self) -> float:
        return 10.0

    async def _open(self) -> aioredis.Redis:
        """Create the client and check that Redis answers (``SourceConnectionError`` if not)."""
        if self._client is None:
            self._client = connect(
                self.url,
                socket_timeout_s=self._socket_timeout_s(),
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
            )
        client = self._client
        await self._run("setup", lambda: client.ping())
        if self.dead_letter is not None and self._owns_dead_letter:
            await self.dead_letter.setup()
        return client

    @property
    def client(self) -> aioredis.Redis:
        """The client (``setup`` must have run)."""
        if self._client is None:
            raise SourceError(f"{self.describe()}: used before setup() or after close()")
        return self._client

    async def _run(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call; map failures to pytempest errors; note reconnects."""
        try:
            result = await call()
        except Exception as exc:
            raise self._error(what, exc) from exc
        if self._down_since is not None:
            self._reconnected()
        return result

    def _error(self, what: str, exc: Exception) -> Exception:
        where = f"{self.kind} source {self.key!r} ({what})"
        if is_auth_error(exc):
            self._broken = "credentials refused"
            return SourceError(
                f"{where}: Redis at {mask_url(self.url)} refused the credentials or the "
                f"command ({type(exc).__name__}: {exc}); check the user name and password in "
                "the URL and that the ACL user exists, is enabled and may use this key"
            )
        if is_tls_error(exc):
            self._broken = "TLS handshake refused"
            return SourceError(
                f"{where}: the TLS handshake with Redis at {mask_url(self.url)} failed ({exc}); check "
                "ssl_ca_certs (the CA that signed the server's certificate), ssl_certfile and ssl_keyfile "
                "(when the server asks for a client certificate) and that the host name in the URL is one "
                "the server's certificate names"
            )
        if is_nogroup(exc):
            return _NoGroup(str(exc))
        if connection_problem(exc):
            self._count("errors", op=what)
            if self._down_since is None:
                self._down_since = time.monotonic()
            if not self._logged_down:
                self._logged_down = True
                log.warning("%s: Redis at %s is not reachable: %r", where, mask_url(self.url), exc)
            return connection_error(self.url, exc, where)
        if isinstance(exc, rexc.RedisError):
            self._count("errors", op=what)
            return SourceError(f"{where}: Redis at {mask_url(self.url)} answered {type(exc).__name__}: {exc}")
        return exc

    def _reconnected(self) -> None:
        assert self._down_since is not None
        down_ms = int((time.monotonic() - self._down_since) * 1000)
        self._down_since = None
        self._logged_down = False
        self._count("reconnects")
        log.info(
            "%s source %r: Redis at %s answers again after %d ms",
            self.kind,
            self.key,
            mask_url(self.url),
            down_ms,
        )
        self._on_reconnect()

    def _on_reconnect(self) -> None:
        """Hook: Redis answers again after a failure."""

    # -- metrics -----------------------------------------------------------------------
    def _count(self, name: str, n: int = 1, **labels: str) -> None:
        if self.metrics is not None and n:
            self.metrics.incr(name, n, **labels)

    def _gauge(self, name: str, value: float) -> None:
        if self.metrics is not None:
            self.metrics.gauge(name, value)

    @property
    def topology_name(self) -> str:
        """The topology this source runs in (from the engine's metric labels), or ``""``."""
        labels = getattr(self.metrics, "_labels", None)
        return str(labels.get("topology", "")) if isinstance(labels, dict) else ""

    # -- Source --------------------------------------------------------------------------
    def healthy(self) -> bool:
        return self._client is not None and self._down_since is None and self._broken is None

    async def close(self) -> None:
        client, self._client = self._client, None
        try:
            if client is not None:
                await client.aclose()
        finally:
            if self.dead_letter is not None and self._owns_dead_letter:
                await self.dead_letter.close()

    def describe(self) -> str:
        """``<kind>:<key>``: what dead-letter records name as their source."""
        return f"{self.kind}:{self.key}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_url(self.url)} key={self.key!r}>"
