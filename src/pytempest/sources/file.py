"""A source that reads the lines of a file, resuming after the last acked line.

Each line (without its line ending) is a message; its id is the byte offset where it
starts. Acked lines advance a committed offset: the end of the longest run of acked lines
from the start. It is checkpointed to a side file (``<path>.offset`` by default, written
atomically), so a restart resumes in order with nothing skipped: lines read but not acked
before a crash are read again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

from pytempest.errors import SourceError
from pytempest.model.message import SourceMsg, now_ms
from pytempest.model.policy import AckPolicy
from pytempest.sources.base import Source


class FileSource(Source):
    """Lines of ``path`` as messages.

    Args:
        path: the file to read.
        checkpoint_path: where the committed offset is kept (default ``<path>.offset``).
        read_count: at most this many lines per poll.
        ack_policy: default ``batch(1000, ack_interval_ms=200)`` (each ack writes the
            checkpoint).
        follow: keep waiting for lines appended to the file (like ``tail -f``); when
            False a final line without a newline is read as a message.
        skip_empty: skip empty lines (they are committed as if acked).
        max_backoff_ms: the longest wait between polls when the file has no new line.
    """

    kind: ClassVar[str] = "file"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        checkpoint_path: str | os.PathLike[str] | None = None,
        read_count: int = 1000,
        ack_policy: AckPolicy | None = None,
        follow: bool = False,
        skip_empty: bool = True,
        max_backoff_ms: int = 500,
    ) -> None:
        self._options: dict[str, Any] = {
            "path": path,
            "checkpoint_path": checkpoint_path,
            "read_count": read_count,
            "ack_policy": ack_policy,
            "follow": follow,
            "skip_empty": skip_empty,
            "max_backoff_ms": max_backoff_ms,
        }
        self.path = Path(path)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else Path(f"{path}.offset")
        self.read_count = read_count
        self.ack_policy = ack_policy or AckPolicy.batch(1000, ack_interval_ms=200)
        self.follow = follow
        self.skip_empty = skip_empty
        self.max_backoff_ms = max_backoff_ms
        self._file: IO[bytes] | None = None
        self._pos = 0
        self.committed = 0
        self._ends: dict[int, int] = {}
        self._order: deque[int] = deque()
        self._acked: set[int] = set()
        self._again: deque[SourceMsg] = deque()

    def options(self) -> dict[str, Any]:
        """The constructor arguments this source was built with (``Topology.toml`` keys
        override some of them and rebuild it: ``FileSource(**{**s.options(), **changes})``)."""
        return dict(self._options)

    def _read_checkpoint(self) -> int:
        if not self.checkpoint_path.exists():
            return 0
        try:
            data = json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
            offset = int(data["offset"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(
                f"checkpoint {self.checkpoint_path} is not valid ({exc}); "
                "fix it or delete it to read the file from its start"
            ) from None
        return offset

    async def setup(self) -> None:
        try:
            self._file = self.path.open("rb")
        except OSError as exc:
            raise SourceError(f"file source cannot open {self.path}: {exc.strerror}") from None
        try:
            offset = self._read_checkpoint()
            self._check_offset(offset)
        except SourceError:
            self._file.close()
            self._file = None
            raise
        self._file.seek(offset)
        self._pos = self.committed = offset

    def _check_offset(self, offset: int) -> None:
        assert self._file is not None
        size = os.fstat(self._file.fileno()).st_size
        if offset > size:
            raise SourceError(
                f"checkpoint {self.checkpoint_path} says offset {offset} but {self.path} has only "
                f"{size} bytes (was the file replaced?); delete the checkpoint to start over"
            )

    async def poll(self, max_count: int) -> list[SourceMsg]:
        n = min(max_count, self.read_count)
        out: list[SourceMsg] = []
        while self._again and len(out) < n:
            out.append(self._again.popleft())
        f = self._file
        if f is None:
            raise SourceError("file source polled before setup()")
        now = now_ms()
        while len(out) < n:
            start = self._pos
            line = f.readline()
            if not line:
                break
            if not line.endswith(b"\n") and self.follow:
                f.seek(start)  # a partial line: wait until the writer ends it
                break
            self._pos = end = start + len(line)
            body = line.rstrip(b"\r\n")
            self._order.append(start)
            self._ends[start] = end
            if not body and self.skip_empty:
                self._acked.add(start)
                continue
            out.append(SourceMsg(str(start), body, now))
        if self._acked:
            self._advance()
        return out

    async def ack(self, ids: Sequence[str]) -> None:
        for msg_id in ids:
            start = int(msg_id)
            if start in self._ends:
                self._acked.add(start)
        self._advance()

    def _advance(self) -> None:
        order, acked, ends = self._order, self._acked, self._ends
        moved = False
        while order and order[0] in acked:
            start = order.popleft()
            acked.discard(start)
            self.committed = ends.pop(start)
            moved = True
        if moved:
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        tmp = self.checkpoint_path.with_name(self.checkpoint_path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump({"offset": self.committed, "path": str(self.path)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.checkpoint_path)

    async def release(self, msgs: Sequence[SourceMsg]) -> None:
        for msg in msgs:
            self._again.append(dataclasses.replace(msg, deliveries=msg.deliveries + 1))

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def describe(self) -> str:
        return f"file:{self.path}"
