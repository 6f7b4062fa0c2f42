"""Helpers of the dashboard tests: real ``pytempest`` processes, real HTTP over loopback.

Every wait is bounded (:func:`wait_for` polls until a deadline and fails the test with
what it waited for and the last value it saw).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import redis

HERE = Path(__file__).parent
APP = f"{HERE / 'dash_app.py'}:topology"
ENTRY = "from pytempest.cli.main import main; main()"
URL_LINE = re.compile(r"pytempest dashboard for .*?: (http://\S+/)")
FAST_BUS = {
    "PYTEMPEST_BUS_HEARTBEAT_INTERVAL_MS": "250",
    "PYTEMPEST_BUS_HEARTBEAT_TTL_MS": "2000",
    "PYTEMPEST_BUS_STATUS_INTERVAL_MS": "500",
    "PYTEMPEST_BUS_BLOCK_MS": "200",
}

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T], timeout_s: float = 30.0, every_s: float = 0.1) -> T:
    """Call ``probe`` until it returns something truthy (returned) or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last value: {last!r:.2000}")


class Proc:
    """A ``pytempest`` subprocess whose output goes to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._out = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-c", ENTRY, *args], env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def dashboard_url(self, timeout_s: float = 30.0) -> str:
        """The URL the process printed when its dashboard started listening."""

        def found() -> str | None:
            if self.popen.poll() is not None:
                raise AssertionError(f"pytempest {' '.join(self.args)} exited early:\n{self.log()[-3000:]}")
            m = URL_LINE.search(self.log())
            return m.group(1) if m else None

        return wait_for("the dashboard URL line", found, timeout_s)

    def wait(self, timeout_s: float = 30.0) -> int:
        """Wait for the process to exit on its own; its exit code."""
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"pytempest {' '.join(self.args)} still runs:\n{self.log()[-3000:]}"
            ) from None

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout_s``), return the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise AssertionError(
                f"pytempest {' '.join(self.args)} ignored SIGTERM:\n{self.log()[-3000:]}"
            ) from None
        finally:
            self._out.close()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._out.close()


class Setup:
    """The keys and environment of one test's topology, and its processes."""

    def __init__(self, tmp: Path, url: str, prefix: str, **env: str) -> None:
        self.tmp = tmp
        self.url = url
        self.name = f"{prefix}-dash"
        self.source_key = f"{prefix}:source"
        self.dl_key = f"{prefix}:dead"
        self.env = {**os.environ, **FAST_BUS, "PT_REDIS_URL": url, "PT_NAME": self.name,
                    "PT_SOURCE_KEY": self.source_key, "PT_DL_KEY": self.dl_key, "PYTEMPEST_REDIS_URL": url,
                    "SE_OFFLINE": "true", **env}  # fmt: skip
        self.env.pop("PYTEMPEST_CONFIG", None)
        self.env.pop("PYTEMPEST_DASHBOARD_TOKEN", None)
        self.procs: list[Proc] = []
        self.client = redis.Redis.from_url(url)

    def start(self, *args: str, **env: str) -> Proc:
        proc = Proc(list(args), {**self.env, **env}, self.tmp / f"{len(self.procs)}-{args[0]}.log")
        self.procs.append(proc)
        return proc

    def prime(self, bodies: list[bytes]) -> None:
        from pytempest.sources.redis_stream import prime

        prime(self.url, self.source_key, bodies)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()
        self.client.srem("pt:topologies", self.name)
        self.client.close()


@contextmanager
def setup(tmp: Path, url: str, prefix: str, **env: str) -> Iterator[Setup]:
    s = Setup(tmp, url, prefix, **env)
    try:
        yield s
    finally:
        s.close()


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """One request; ``(status, headers, JSON or text body)``; never follows redirects."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=15) as resp:
            status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, raw, hdrs = err.code, err.read(), dict(err.headers)
        err.close()
    text = raw.decode("utf-8", "replace")
    try:
        return status, hdrs, json.loads(text)
    except ValueError:
        return status, hdrs, text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def csrf_of(base: str, headers: dict[str, str] | None = None) -> str:
    """The CSRF token the pages carry."""
    status, _, page = http("GET", base, headers=headers)
    assert status == 200, page
    m = re.search(r'name="pt-csrf" content="([^"]+)"', page)
    assert m, page[:500]
    return m.group(1)
