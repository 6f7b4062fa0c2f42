"""A dead letter that appends JSON lines to a file."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pytempest.deadletters.base import DeadLetter, DeadLetterRecord


def record_to_json(record: DeadLetterRecord) -> str:
    """One JSON line: the body as UTF-8 text when it is, else base64 (``body_b64``)."""
    data: dict[str, Any] = record.to_dict()
    body: bytes = data.pop("body")
    try:
        data["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        data["body_b64"] = base64.b64encode(body).decode("ascii")
    return json.dumps(data, sort_keys=True)


def record_from_json(line: str) -> DeadLetterRecord:
    """Read back a line written by :func:`record_to_json`."""
    data = json.loads(line)
    if "body_b64" in data:
        data["body"] = base64.b64decode(data.pop("body_b64"))
    else:
        data["body"] = data["body"].encode("utf-8")
    return DeadLetterRecord(**data)


class FileDeadLetter(DeadLetter):
    """Appends one JSON object per record to ``path`` and fsyncs before returning."""

    kind: ClassVar[str] = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    async def setup(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    async def put(self, records: Sequence[DeadLetterRecord]) -> None:
        lines = "".join(record_to_json(r) + "\n" for r in records)
        await asyncio.to_thread(self._append, lines)

    def _append(self, text: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[DeadLetterRecord]:
        """Every record in the file, oldest first."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as f:
            return [record_from_json(line) for line in f if line.strip()]

    def describe(self) -> str:
        return f"file:{self.path}"
