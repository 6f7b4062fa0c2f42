"""A userspace TCP proxy between our processes and Redis, to cut, delay or black-hole.

Runs an asyncio server in its own thread (the tests drive it from plain code)::

    with TcpProxy(("127.0.0.1", 6379)) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"   # give this URL to the processes
        proxy.delay(200)       # every chunk, both ways, 200 ms late
        proxy.blackhole()      # nothing goes through; held bytes flow on heal (a partition)
        proxy.drop()           # nothing goes through; bytes are discarded (lost in transit)
        proxy.cut()            # close every connection now (RST); new ones work
        proxy.refuse()         # stop listening: connection refused
        proxy.heal()           # back to forwarding (listening again)

Only loopback addresses are proxied. Every wait is bounded by the caller's timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Mode = Literal["pass", "delay", "blackhole", "drop"]
CHUNK = 65536


class TcpProxy:
    """Forwards connections made to ``127.0.0.1:port`` to ``upstream``."""

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        host = upstream[0]
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the proxy forwards to loopback only; got {host!r}")
        self.upstream = upstream
        self.port = port
        self.mode: Mode = "pass"
        self.delay_ms = 0
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._healed: asyncio.Event | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> TcpProxy:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=main, name="reliability-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the proxy thread did not start")
        self._call(self._listen())
        return self

    def close(self) -> None:
        if self._loop is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, scheme: str = "redis", db: int = 0, auth: str = "") -> str:
        """A Redis URL through this proxy (``auth``: ``user:password@`` or empty)."""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{db}"

    # -- faults ----------------------------------------------------------------------------
    def delay(self, ms: int) -> None:
        """Forward every chunk ``ms`` late (both directions)."""
        self.delay_ms = ms
        self._call(self._set_mode("delay" if ms > 0 else "pass"))

    def blackhole(self) -> None:
        """Keep every connection (and accept new ones) but forward nothing: bytes wait
        (as TCP retransmits through a network partition) and flow on :meth:`heal`, unless
        a side gave up on its connection meanwhile (its socket timeout)."""
        self._call(self._set_mode("blackhole"))

    def drop(self) -> None:
        """Keep every connection but discard every byte (a middlebox eating data):
        requests sent meanwhile are never answered; only a socket timeout ends the wait."""
        self._call(self._set_mode("drop"))

    def cut(self) -> int:
        """Abort every open connection now (both sides see a reset); return how many."""
        return self._call(self._cut())

    def refuse(self) -> None:
        """Close the listening socket (new connections are refused) and cut the open ones."""
        self._call(self._stop_listening())
        self.cut()

    def heal(self) -> None:
        """Forward again without delay, and listen again after :meth:`refuse`."""
        self.delay_ms = 0
        self._call(self._set_mode("pass"))
        if self._server is None:
            self._call(self._listen())

    # -- internals ---------------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _set_mode(self, mode: Mode) -> None:
        if self._healed is None:
            self._healed = asyncio.Event()
        self.mode = mode
        if mode == "blackhole":
            self._healed.clear()
        else:
            self._healed.set()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _cut(self) -> int:
        writers = list(self._open)
        for w in writers:
            _reset(w)
        self._open.clear()
        return len(writers)

    async def _shutdown(self) -> None:
        await self._stop_listening()
        await self._cut()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 5)
        except (OSError, TimeoutError):
            _reset(writer)
            return
        self._open.update((writer, up_writer))
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, True)),
            asyncio.ensure_future(self._pump(up_reader, writer, False)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pumps:
                p.cancel()
            for w in (writer, up_writer):
                self._open.discard(w)
                _reset(w)
            self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                if self.mode == "blackhole" and self._healed is not None:
                    await self._healed.wait()  # read nothing: the bytes wait in the kernel
                data = await reader.read(CHUNK)
                if not data:
                    return
                mode = self.mode
                if mode == "blackhole" and self._healed is not None:
                    await self._healed.wait()
                    mode = self.mode
                if mode == "drop":
                    continue
                if mode == "delay":
                    await asyncio.sleep(self.delay_ms / 1000)
                if writer.is_closing():
                    return
                writer.write(data)
                await writer.drain()
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0): the peer sees the connection die at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
