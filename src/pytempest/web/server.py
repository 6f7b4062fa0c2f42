"""Serve the dashboard with uvicorn: in the foreground (``pytempest director``) or on a
thread beside a running topology (``pytempest run --dashboard``).

The listening socket is bound before uvicorn starts, so a port in use is a clear error
(:class:`DashboardError`) instead of an exit from inside uvicorn, and port 0 gives a
free port (tests). On its own thread the server has its own event loop: a busy
topology loop does not slow the pages, and the pages never touch the engine's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from pytempest.errors import PytempestError


class DashboardError(PytempestError):
    """The dashboard could not start (address in use, bad bind address)."""


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    host = host.strip("[]")
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise DashboardError(
            f"dashboard: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port (or --bind address)"
        ) from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, but a SIGINT/SIGTERM that stopped it is not raised again after
    the shutdown (uvicorn does that; the command then exits 0 as documented)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class DashboardServer:
    """uvicorn serving ``app`` on ``host:port``.

    :meth:`serve` runs in the foreground (SIGINT/SIGTERM stop it);
    :meth:`start` / :meth:`stop` run it on a daemon thread.
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 8090, log_level: str = "warning"
    ) -> None:
        self.host = host
        self.sock = bind_socket(host, port)
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                                timeout_graceful_shutdown=3)  # fmt: skip
        self.server = _Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Where to open the dashboard."""
        host = self.host.strip("[]")
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def serve(self) -> None:
        """Serve until SIGINT/SIGTERM (call from the main thread)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def start(self, timeout_s: float = 10.0) -> None:
        """Serve on a daemon thread; return once it accepts connections."""

        def main() -> None:
            try:
                asyncio.run(self.server.serve(sockets=[self.sock]))
            except BaseException as exc:  # reported by start() / stop()
                self._error = exc

        self._thread = threading.Thread(target=main, name="pytempest-dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise DashboardError(f"dashboard did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise DashboardError(f"dashboard did not start within {timeout_s} s")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread started by :meth:`start` (bounded by ``timeout_s``)."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(2)
        self.sock.close()
