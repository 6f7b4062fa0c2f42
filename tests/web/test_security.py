"""The dashboard's guard over a real server on loopback: Host check (DNS rebinding),
token, CSRF on every POST, no state change by GET, safe headers, masked passwords."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pytempest import Pipeline, Topology, task
from pytempest.deadletters import MemoryDeadLetter
from pytempest.metrics.registry import Registry
from pytempest.runtimes.status_publisher import StatusPublisher
from pytempest.sources import MemorySource
from pytempest.web.app import create_app
from pytempest.web.providers import MemoryProvider, Provider, RedisProvider
from pytempest.web.security import Security, host_name, is_loopback
from pytempest.web.server import DashboardServer

from .helpers import csrf_of, http


@task("only")
def only(body: bytes) -> None:
    return None


def _provider() -> MemoryProvider:
    topology = Topology("sec", Pipeline().task(only), MemorySource(), dead_letter=MemoryDeadLetter())
    publisher = StatusPublisher(topology, Registry(), instance="i", mode="in_process")
    publisher.take()
    return MemoryProvider(publisher, topology.dead_letter)


def _serve(provider: Provider, security: Security) -> Iterator[str]:
    server = DashboardServer(create_app(provider, security), "127.0.0.1", 0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        server.stop()


@pytest.fixture
def open_server() -> Iterator[str]:
    yield from _serve(_provider(), Security())


@pytest.fixture
def token_server() -> Iterator[str]:
    yield from _serve(_provider(), Security(token="s3cret-token"))


def test_host_names_and_loopback() -> None:
    assert host_name("127.0.0.1:8090") == "127.0.0.1"
    assert host_name("[::1]:8090") == "::1"
    assert host_name("LocalHost.") == "localhost"
    assert host_name("evil.example:80") == "evil.example"
    for bad in ("", "[::1", "a@b", "x:y:z", "[::1]junk"):
        assert host_name(bad) is None, bad
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    sec = Security(allow_hosts=["dash.internal"])
    assert sec.host_allowed("dash.internal:8090") and sec.host_allowed("10.1.2.3:8090")
    assert not sec.host_allowed("evil.example") and not sec.host_allowed("")


def test_host_header_check_refuses_rebinding(open_server: str) -> None:
    status, headers, page = http("GET", open_server)
    assert status == 200 and 'name="pt-csrf"' in page
    assert headers["x-frame-options"] == "DENY" and "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    for host in ("localhost:1234", "[::1]:1234", "10.1.2.3"):
        assert http("GET", open_server + "api/overview", headers={"Host": host})[0] == 200, host
    status, _, body = http("GET", open_server + "api/overview", headers={"Host": "evil.example"})
    assert status == 421 and "DNS rebinding" in body["error"]


def test_state_changes_need_post_and_the_csrf_token(open_server: str) -> None:
    purge = open_server + "api/topologies/sec/deadletters/purge"
    assert http("GET", purge)[0] == 405
    assert http("POST", purge, {"all": True})[0] == 403
    assert http("POST", purge, {"all": True}, {"X-CSRF-Token": "guess"})[0] == 403
    csrf = csrf_of(open_server)
    status, _, body = http(
        "POST", purge, {"all": True}, {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
    )
    assert status == 403 and "cross-origin" in body["error"]
    status, _, body = http(
        "POST", purge, {"all": True}, {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}
    )
    assert status == 403 and "cross-site" in body["error"]
    # Past the guard: a memory dead letter can be browsed, not changed (409).
    origin = open_server.rstrip("/")
    status, _, body = http("POST", purge, {"all": True}, {"X-CSRF-Token": csrf, "Origin": origin})
    assert status == 409 and "browsed" in body["error"]
    status, _, body = http("POST", purge, {"ids": ["1"], "all": True}, {"X-CSRF-Token": csrf})
    assert status == 400 and "not both" in body["error"]


def test_token_by_bearer_or_by_cookie_after_opening_the_link(token_server: str) -> None:
    api = token_server + "api/overview"
    status, _, body = http("GET", api)
    assert status == 401 and "token" in body["error"]
    assert http("GET", api, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert http("GET", api, headers={"Authorization": "Bearer s3cret-token"})[0] == 200
    assert http("GET", token_server + "?token=wrong")[0] == 401
    status, headers, _ = http("GET", token_server + "topology/sec?token=s3cret-token")
    assert status == 303 and headers["location"] == "/topology/sec"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret-token" not in cookie
    session = cookie.split(";")[0]
    assert http("GET", api, headers={"Cookie": session})[0] == 200
    status, headers, _ = http("GET", token_server + "/evil.example/?token=s3cret-token")
    assert status == 303 and not headers["location"].startswith("//")


def test_passwords_are_masked_in_errors() -> None:
    provider = RedisProvider("redis://app:hunter2@127.0.0.1:1/0")
    assert provider.where == "redis://app:***@127.0.0.1:1/0"
    for base in _serve(provider, Security()):
        status, _, body = http("GET", base + "api/overview")
        assert status == 503, body
        text: Any = body["error"]
        assert "hunter2" not in text and "redis://app:***@127.0.0.1:1/0" in text
