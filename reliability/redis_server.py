"""A redis-server of the test's own on a spare port: persistence as asked, and faults.

Generalises the servers of ``tests/redis/helpers.py`` (AOF, restartable) and
``tests/distributed/cluster.py`` (no persistence): :class:`RedisServer` takes the
persistence a scenario needs and can be stopped cleanly (``SIGTERM``: AOF flushed),
killed (``SIGKILL``: what was not persisted is gone), paused (``SIGSTOP``) and resumed
(``SIGCONT``), and restarted on the same port. Optionally it serves TLS only, with
certificates made by :func:`make_certificates`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import redis

Persistence = Literal["none", "aof", "aof-everysec", "rdb"]


def free_port() -> int:
    """A TCP port nobody listens on right now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    """Whether a ``redis-server`` binary is on the path."""
    return shutil.which("redis-server") is not None


@dataclass(frozen=True)
class Certificates:
    """Paths of a CA and of a server and a client certificate signed by it."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(directory: Path, host: str = "localhost") -> Certificates:
    """A throw-away CA, a server certificate for ``host`` only (so a client that connects
    to 127.0.0.1 fails the hostname check) and a client certificate, made with the
    ``openssl`` command line."""
    directory.mkdir(parents=True, exist_ok=True)
    d = directory

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"),
        "-out", str(d / "ca.crt"), "-days", "1", "-subj", "/CN=pytempest-test-ca")  # fmt: skip
    (d / "san.cnf").write_text(f"subjectAltName=DNS:{host}\n")  # no IP: 127.0.0.1 fails hostname checks
    for name, cn in (("server", host), ("client", "pytempest-client")):
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key"),
            "-out", str(d / f"{name}.csr"), "-subj", f"/CN={cn}")  # fmt: skip
        ssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / f"{name}.crt"),
            "-days", "1", *(["-extfile", str(d / "san.cnf")] if name == "server" else []))  # fmt: skip
    return Certificates(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


class RedisServer:
    """A private ``redis-server`` on a spare port of 127.0.0.1.

    Args:
        directory: its working folder (AOF and RDB files, the log ``redis.log``).
        persistence: ``aof`` (fsync always: nothing acknowledged is lost on a kill),
            ``aof-everysec``, ``rdb`` (a snapshot on a clean stop only) or ``none``.
        tls: serve TLS only, with these certificates (clients must present one).
    """

    def __init__(
        self, directory: Path, persistence: Persistence = "aof", tls: Certificates | None = None
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.persistence = persistence
        self.tls = tls
        self.port = free_port()
        host = "localhost" if tls else "127.0.0.1"
        self.url = f"{'rediss' if tls else 'redis'}://{host}:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.starts = 0

    # -- lifecycle -----------------------------------------------------------------------
    def args(self) -> list[str]:
        p = self.persistence
        aof = ["--appendonly", "yes", "--appendfsync", "always" if p == "aof" else "everysec"]
        persist = {
            "none": ["--save", "", "--appendonly", "no"],
            "aof": ["--save", "", *aof],
            "aof-everysec": ["--save", "", *aof],
            "rdb": ["--save", "3600 1", "--appendonly", "no"],
        }[p]
        net = ["--port", str(self.port)]
        if self.tls is not None:
            t = self.tls
            net = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(t.server_cert),
                   "--tls-key-file", str(t.server_key), "--tls-ca-cert-file", str(t.ca),
                   "--tls-auth-clients", "yes"]  # fmt: skip
        return ["redis-server", *net, "--bind", "127.0.0.1", *persist, "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log")]  # fmt: skip

    def start(self, timeout_s: float = 10.0) -> None:
        """Start it and wait until it answers."""
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}: see {self.dir}/redis.log"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not answer in {timeout_s} s")
            time.sleep(0.02)

    def answers(self) -> bool:
        client = self.client(socket_timeout=0.3)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Stop it cleanly (SIGTERM): with AOF or RDB its data is on disk."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: what was not persisted yet is gone."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if self.paused:
            proc.send_signal(signal.SIGCONT)
            self.paused = False
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self, kill: bool = False, down_s: float = 0.0) -> None:
        """Stop (or kill) it, stay down ``down_s`` seconds, start it on the same port."""
        self.kill() if kill else self.stop()
        if down_s:
            time.sleep(down_s)
        self.start()

    def pause(self) -> None:
        """SIGSTOP: it keeps its sockets but answers nothing (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def client(self, socket_timeout: float = 5.0) -> redis.Redis:
        """A plain client (TLS with the client certificate when the server is TLS)."""
        if self.tls is None:
            return redis.Redis(port=self.port, socket_timeout=socket_timeout, socket_connect_timeout=1.0)
        t = self.tls
        return redis.Redis(
            host="localhost", port=self.port, ssl=True, ssl_ca_certs=str(t.ca), ssl_certfile=str(t.client_cert),
            ssl_keyfile=str(t.client_key), socket_timeout=socket_timeout, socket_connect_timeout=1.0,
        )  # fmt: skip

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
