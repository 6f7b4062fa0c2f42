"""Redis connections: one place that parses URLs, masks secrets and reads server errors.

Every Redis-backed part of pytempest (sources, dead letters, the distributed runtime,
status) opens its clients with :func:`connect` so socket timeouts, TLS options and health
checks are the same everywhere, and classifies errors with :func:`is_busygroup`,
:func:`is_nogroup` and :func:`connection_problem` so server error strings are parsed
here only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis import exceptions as rexc

from pytempest.errors import ConfigError, SourceConnectionError

DEFAULT_SOCKET_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe for logs, errors and reprs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_url(url: object, where: str) -> str:
    """Return ``url`` if it is a redis://, rediss:// or unix:// URL, else a ConfigError."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: url must be a string like redis://127.0.0.1:6379/0; got {url!r}")
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"{where}: url {mask_url(url)!r} must start with redis://, rediss:// (TLS) or unix://"
        )
    return url


def connect(
    url: str,
    *,
    socket_timeout_s: float | None = DEFAULT_SOCKET_TIMEOUT_S,
    decode_responses: bool = False,
    **options: Any,
) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` (no I/O yet).

    ``socket_timeout_s`` bounds every command that does not block on purpose; pass a
    larger value (or ``None``) for clients that issue ``BLOCK`` reads. TLS options of
    redis-py (``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname``)
    may be given in ``options`` or as query parameters of a ``rediss://`` URL.
    """
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=DEFAULT_CONNECT_TIMEOUT_S,
        socket_keepalive=True,
        health_check_interval=30,
        decode_responses=decode_responses,
        **options,
    )


def connect_sync(
    url: str, *, socket_timeout_s: float | None = DEFAULT_SOCKET_TIMEOUT_S, **options: Any
) -> redis.Redis:
    """A blocking Redis client for ``url`` with the same options as :func:`connect`, for
    code that runs in its own thread (a worker's heartbeat, which must keep beating while
    a task's ``handle`` holds the event loop)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=DEFAULT_CONNECT_TIMEOUT_S,
        socket_keepalive=True,
        health_check_interval=30,
        **options,
    )


def is_busygroup(exc: BaseException) -> bool:
    """The consumer group already exists (``XGROUP CREATE``)."""
    return isinstance(exc, rexc.ResponseError) and str(exc).startswith("BUSYGROUP")


def is_nogroup(exc: BaseException) -> bool:
    """The stream or its consumer group does not exist (e.g. after a Redis restart)."""
    return isinstance(exc, rexc.ResponseError) and str(exc).startswith("NOGROUP")


def is_auth_error(exc: BaseException) -> bool:
    """A wrong password, unknown user or missing permission."""
    if isinstance(exc, rexc.AuthenticationError | rexc.AuthorizationError | rexc.NoPermissionError):
        return True
    text = str(exc)
    return isinstance(exc, rexc.ResponseError) and text.startswith(("WRONGPASS", "NOAUTH", "NOPERM"))


TLS_REFUSALS = (
    "CERTIFICATE_VERIFY_FAILED",
    "CERTIFICATE_REQUIRED",
    "HOSTNAME MISMATCH",
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "WRONG_VERSION_NUMBER",
)


def is_tls_error(exc: BaseException) -> bool:
    """The TLS handshake was refused (a certificate that does not verify, a host name it
    does not name, no client certificate, TLS against a plain port): retrying cannot help."""
    text = str(exc).upper()
    return isinstance(exc, rexc.ConnectionError | OSError) and any(t in text for t in TLS_REFUSALS)


def connection_problem(exc: BaseException) -> bool:
    """The server cannot be reached or the connection broke (worth a reconnect)."""
    return (
        isinstance(exc, rexc.ConnectionError | rexc.TimeoutError | OSError)
        and not is_auth_error(exc)
        and not is_tls_error(exc)
    )


def connection_error(url: str, exc: BaseException, what: str) -> SourceConnectionError:
    """A ``SourceConnectionError`` that names the masked URL and never the password."""
    detail = str(exc).replace(urlsplit(url).password or "\0", "***") if "://" in url else str(exc)
    return SourceConnectionError(
        f"{what}: cannot reach Redis at {mask_url(url)}: {type(exc).__name__}: {detail}"
    )
