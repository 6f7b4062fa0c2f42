"""Numbered messages with a checksum, and a producer that writes them to a Redis stream.

A harness message is a JSON object (so the codec scenarios can decode it)::

    {"run": "a1b2", "seq": 17, "act": "", "pad": "xxxx", "crc": "9c3b1f0a"}

``crc`` is the CRC-32 of ``run|seq|act|pad``: the sink task checks it, so a message that
reached the end of the pipeline altered is counted as corrupted. ``act`` tells the
harness tasks what to do with this message (``""`` nothing, ``raise``, ``crash``,
``sleep:<ms>``, ``hold``): poison and crash scenarios pick their victims by sequence number.

The :class:`Producer` remembers the stream id of every message it wrote, so the checker
can name a message by its id even when its body cannot be parsed (malformed payloads),
and it never writes a sequence number twice: after an error whose outcome is unknown
(the reply was lost), it looks at the last entry of the stream before sending again.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgpack
import redis

FIELD = "body"


def checksum(run: str, seq: int, act: str, pad: str) -> str:
    """The CRC-32 (8 hex digits) a message carries."""
    return f"{zlib.crc32(f'{run}|{seq}|{act}|{pad}'.encode()):08x}"


def encode(run: str, seq: int, act: str = "", pad_bytes: int = 16, codec: str = "json") -> bytes:
    """One harness message (JSON, or msgpack with ``codec="msgpack"``)."""
    pad = "x" * pad_bytes
    crc = checksum(run, seq, act, pad)
    data = {"run": run, "seq": seq, "act": act, "pad": pad, "crc": crc}
    if codec == "msgpack":
        packed: bytes = msgpack.packb(data)
        return packed
    return json.dumps(data).encode()


@dataclass(frozen=True, slots=True)
class Parsed:
    """A decoded harness message; ``ok`` is False when its checksum does not match."""

    run: str
    seq: int
    act: str
    ok: bool


def parse(body: bytes | str | dict[str, object]) -> Parsed | None:
    """The message in ``body``, or None when it is not a harness message."""
    if not isinstance(body, dict) and (
        len(body) > 4096 or not body.startswith(b"{" if isinstance(body, bytes) else "{")
    ):
        return None  # hostile payloads of the codec scenarios: never decoded here either
    try:
        data = body if isinstance(body, dict) else json.loads(body)
        run, seq, act, pad, crc = (data[k] for k in ("run", "seq", "act", "pad", "crc"))
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if not (isinstance(run, str) and isinstance(seq, int) and isinstance(act, str) and isinstance(pad, str)):
        return None
    return Parsed(run, seq, act, checksum(run, seq, act, pad) == crc)


@dataclass
class Produced:
    """What a producer wrote: sequence number -> stream id, and the reverse."""

    ids: dict[int, str] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    first_ms: dict[int, int] = field(default_factory=dict)
    retries: int = 0

    def add(self, seq: int, entry_id: str) -> None:
        self.ids[seq] = entry_id
        self.seqs[entry_id] = seq
        self.first_ms[seq] = int(entry_id.split("-")[0])


class Producer:
    """Writes numbered messages to the stream ``key`` at ``url``.

    ``acts`` maps sequence numbers to an ``act`` (poison, crash, sleep). Raw payloads
    (malformed ones) are written with :meth:`write_raw`; they get sequence numbers too.
    Every write is retried until it succeeds or ``give_up_s`` passes; a write whose reply
    was lost is checked against the stream's last entry before it is sent again.
    """

    def __init__(
        self,
        url: str,
        key: str,
        run: str,
        *,
        acts: dict[int, str] | None = None,
        pad_bytes: int = 16,
        give_up_s: float = 60.0,
        codec: str = "json",
    ) -> None:
        self.url = url
        self.key = key
        self.run = run
        self.acts = acts or {}
        self.pad_bytes = pad_bytes
        self.codec = codec
        self.give_up_s = give_up_s
        self.produced = Produced()
        self.next_seq = 0
        self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.errors = 0

    def close(self) -> None:
        self.stop()
        self._client.close()

    def body(self, seq: int) -> bytes:
        return encode(self.run, seq, self.acts.get(seq, ""), self.pad_bytes, self.codec)

    def burst(self, n: int, chunk: int = 500) -> list[int]:
        """Write ``n`` messages now (pipelined); return their sequence numbers."""
        seqs: list[int] = []
        while len(seqs) < n:
            with self._lock:
                start = self.next_seq
                count = min(chunk, n - len(seqs))
                self.next_seq += count
            batch = [(s, self.body(s)) for s in range(start, start + count)]
            self._write(batch)
            seqs.extend(s for s, _ in batch)
        return seqs

    def write_raw(self, payloads: Iterable[bytes]) -> list[int]:
        """Write payloads as they are (not harness messages); return their sequence numbers."""
        batch = []
        with self._lock:
            for p in payloads:
                batch.append((self.next_seq, p))
                self.next_seq += 1
        self._write(batch)
        return [s for s, _ in batch]

    def _write(self, batch: list[tuple[int, bytes]]) -> None:
        deadline = time.monotonic() + self.give_up_s
        todo = list(batch)
        while todo:
            try:
                pipe = self._client.pipeline(transaction=False)
                for _, body in todo:
                    pipe.xadd(self.key, {FIELD: body})
                ids = pipe.execute()
            except redis.RedisError:
                self.errors += 1
                self.produced.retries += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                todo = self._not_written(todo)
                continue
            for (seq, _), raw in zip(todo, ids, strict=True):
                self.produced.add(seq, raw.decode() if isinstance(raw, bytes) else str(raw))
            return

    def _not_written(self, todo: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """After a failed pipeline: which of ``todo`` did not reach the stream."""
        try:
            tail = self._client.xrevrange(self.key, "+", "-", count=len(todo))
        except redis.RedisError:
            return todo
        landed: dict[bytes, str] = {}
        for raw_id, fields in tail:
            landed[fields.get(FIELD.encode(), b"")] = raw_id.decode()
        left = []
        for seq, body in todo:
            if body in landed:
                self.produced.add(seq, landed[body])
            else:
                left.append((seq, body))
        return left

    # -- a steady producer in a thread ---------------------------------------------------
    def start(self, rate_per_s: float, total: int | None = None, batch: int = 10) -> None:
        """Write ``rate_per_s`` messages per second in a thread until :meth:`stop` (or
        ``total`` messages)."""
        assert self._thread is None
        self._stop.clear()

        def loop() -> None:
            written = 0
            began = time.monotonic()
            while not self._stop.is_set() and (total is None or written < total):
                n = batch if total is None else min(batch, total - written)
                try:
                    self.burst(n, chunk=n)
                except redis.RedisError:
                    continue
                written += n
                ahead = began + written / rate_per_s - time.monotonic()
                if ahead > 0:
                    self._stop.wait(ahead)

        self._thread = threading.Thread(target=loop, name="reliability-producer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the producer thread (the message being written is finished first)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(self.give_up_s + 5)

    def wait_for(self, n: int, timeout_s: float = 60.0) -> None:
        """Wait until at least ``n`` messages were written."""
        wait_until(lambda: len(self.produced.ids) >= n, timeout_s, f"{n} messages produced")


def wait_until(check: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.02) -> object:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)
