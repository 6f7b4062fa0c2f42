"""Fixtures of the metrics tests: the book pipeline, a UDP listener, servers that hang."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from pytempest import Pipeline, Task


class Emit(Task):
    """Emits ``n`` copies of its input."""

    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.n = n

    def handle(self, body: bytes) -> list[bytes] | None:
        return [body] * self.n if self.n else None


def make_book() -> Pipeline:
    """T1 emits 10; T2 emits 5 per input; T3 nothing; T4 handles T2's outputs."""
    return (
        Pipeline()
        .task(Emit("T1", 10))
        .task(Emit("T2", 5))
        .task(Emit("T3", 0))
        .task(Emit("T4", 0))
        .edges(("T1", "T2"), ("T1", "T3"), ("T2", "T4"), ("T3", "T4"))
    )


@pytest.fixture
def book() -> Callable[[], Pipeline]:
    """A factory of the book pipeline (per source message: T1 1, T2 10, T3 10, T4 50)."""
    return make_book


class UdpListener:
    """A UDP socket on loopback that collects every datagram sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]

    def drain(self, quiet_s: float = 0.3, max_datagrams: int = 100_000) -> list[bytes]:
        """Every datagram received until none arrives for ``quiet_s``."""
        self.sock.settimeout(quiet_s)
        out = []
        for _ in range(max_datagrams):
            try:
                out.append(self.sock.recv(65535))
            except TimeoutError:
                break
        return out


@pytest.fixture
def udp() -> Iterator[UdpListener]:
    listener = UdpListener()
    yield listener
    listener.sock.close()


class HangingServer:
    """A TCP server on loopback that accepts connections, reads, and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hanging-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()
