"""The dashboard's guard: Host check, token, CSRF, and safe response headers.

One pure ASGI middleware (:class:`Guard`) in front of every route:

* **Host header** (DNS rebinding): a request is served only when its ``Host`` is an IP
  address, ``localhost``, or a name given with ``--allow-host`` (plus this machine's
  own names when bound beyond loopback). A rebinding page's requests carry its own
  domain name and are refused.
* **Token** (when one is set; the CLI requires one to bind beyond loopback):
  ``Authorization: Bearer TOKEN``, or the session cookie set when a page is opened once
  with ``?token=TOKEN`` (then redirected without it).
* **No state change on GET**: state changes are POST routes, and every POST must carry
  the page's CSRF token in ``X-CSRF-Token`` (a custom header: another origin cannot
  send it without a CORS preflight, which is never granted) and, when the browser sends
  one, an ``Origin`` equal to the page's own.
* **Headers**: a Content-Security-Policy that allows only this origin's scripts and
  styles (no inline script), no framing, no sniffing, no referrer.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "pytempest_director"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]  # fmt: skip


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str | None:
    """The host of a ``Host`` header without its port (lower case), None when malformed."""
    header = header.strip().lower()
    if not header:
        return None
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        rest = header[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return header[1:end]
    name, sep, port = header.rpartition(":")
    if sep and port.isdigit():
        header = name
    if not header or ":" in header or "/" in header or "@" in header:
        return None
    return header.rstrip(".")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass
class Security:
    """What the guard enforces.

    Args:
        token: the token every request must carry (None: none, loopback only).
        allow_hosts: extra host names accepted in the ``Host`` header.
        bind: the address the server listens on (its machine names are allowed when it
            is not a loopback address).
    """

    token: str | None = None
    allow_hosts: Iterable[str] = ()
    bind: str = "127.0.0.1"
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def __post_init__(self) -> None:
        names = {h.strip().lower().rstrip(".") for h in self.allow_hosts if h.strip()}
        names |= LOOPBACK_NAMES
        if not is_loopback(self.bind):
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
            if not _is_ip(self.bind.strip("[]")) and self.bind not in ("", "0.0.0.0", "::"):
                names.add(self.bind.lower())
        self.hosts = frozenset(names)
        self._session = (
            hmac.new(self.token.encode(), b"pytempest-director-session", hashlib.sha256).hexdigest()
            if self.token else ""
        )  # fmt: skip

    def host_allowed(self, header: str) -> bool:
        """Whether a request with this ``Host`` header may be served."""
        host = host_name(header)
        return host is not None and (host in self.hosts or _is_ip(host))

    def token_ok(self, value: str | None) -> bool:
        """Whether ``value`` is the token (constant time)."""
        if not self.token or value is None:
            return False
        return hmac.compare_digest(value.encode(), self.token.encode())

    def session_ok(self, value: str | None) -> bool:
        """Whether ``value`` is the session cookie of this token."""
        return bool(self._session) and value is not None and hmac.compare_digest(value, self._session)

    @property
    def session(self) -> str:
        """The session cookie's value."""
        return self._session

    def csrf_ok(self, value: str | None) -> bool:
        """Whether ``value`` is this server's CSRF token."""
        return value is not None and hmac.compare_digest(value.encode(), self.csrf.encode())


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class Guard:
    """The ASGI middleware that applies :class:`Security` (see the module docstring)."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sec = self.security
        headers = _headers(scope)
        host = headers.get("host", "")
        path = scope.get("path", "/")
        method = scope.get("method", "GET")
        if not sec.host_allowed(host):
            await _deny(send, 421, f"Host {host!r} is not allowed here (DNS rebinding protection); "
                                   "open the dashboard by IP address, localhost, or a name given with --allow-host")  # fmt: skip
            return
        if sec.token:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if method == "GET" and "token" in query and sec.token_ok(query["token"]):
                rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
                # "/" + path without leading slashes: never "//host" (an open redirect)
                here = "/" + quote(path.lstrip("/"))
                await _login(send, here + ("?" + rest if rest else ""), sec.session)
                return
            bearer = headers.get("authorization", "")
            cookie = SimpleCookie(headers.get("cookie", ""))
            morsel = cookie.get(COOKIE)
            if not (sec.token_ok(bearer[7:] if bearer.lower().startswith("bearer ") else None)
                    or sec.session_ok(morsel.value if morsel else None)):  # fmt: skip
                await _deny(send, 401, "this dashboard needs its token: open the URL printed by "
                                       "`pytempest director` (…/?token=...) or send Authorization: Bearer TOKEN")  # fmt: skip
                return
        if method not in SAFE_METHODS:
            problem = _cross_site(headers, host)
            if problem is None and not sec.csrf_ok(headers.get(CSRF_HEADER)):
                problem = "missing or wrong X-CSRF-Token header (reload the page)"
            if problem:
                await _deny(send, 403, problem)
                return
        await self.app(scope, receive, _with_headers(send))


def _cross_site(headers: dict[str, str], host: str) -> str | None:
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc.lower() != host.lower():
            return f"cross-origin request from {origin!r} refused"
    elif origin == "null":
        return "request from an opaque origin refused"
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request ({site}) refused"
    return None


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            have = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in have]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def _deny(send: Send, status: int, why: str) -> None:
    body = json.dumps({"error": why}).encode()
    await _respond(send, status, body, [(b"content-type", b"application/json")])


async def _login(send: Send, location: str, session: str) -> None:
    cookie = f"{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"
    headers: list[tuple[bytes, bytes]] = [(b"location", location.encode("latin-1", "replace")),
                                          (b"set-cookie", cookie.encode())]  # fmt: skip
    await _respond(send, 303, b"", headers)
