"""A one-line progress display for ``pytempest run`` on a terminal.

Rewritten in place every second on standard error: messages read, acked, failed, the ack
rate and what is in flight. Log lines do not collide with it: the line is cleared before
any record is written and redrawn at the next tick. ``run`` shows it only when standard
error is a terminal and ``--quiet`` is not given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TextIO

from pytempest.engine.engine import Engine

CLEAR = "\r\x1b[K"


def progress_line(topology: str, metrics: Mapping[str, float], rate: float) -> str:
    """``read 120  acked 118  failed 1  118.0/s  in flight 2`` for ``topology``'s metrics."""
    p = topology + "."

    def v(key: str) -> int:
        return int(metrics.get(p + key, 0))

    failed = v("topology.source.msg.error") + v("topology.source.msg.timeout")
    return (
        f"{topology}: read {v('source.msg.read')}  acked {v('source.msg.acked.success')}  "
        f"failed {failed}  {rate:.1f}/s  in flight {v('pipeline.inflight')}"
    )


class Progress(logging.Filter):
    """Draws :func:`progress_line` on ``stream`` every ``interval_ms`` while :meth:`run` runs."""

    def __init__(self, stream: TextIO, interval_ms: int = 1000) -> None:
        super().__init__()
        self.stream = stream
        self.interval_ms = interval_ms
        self._shown = False

    def filter(self, record: logging.LogRecord) -> bool:
        """Clear the line before a log record is written (installed on the root handlers)."""
        self.clear()
        return True

    def clear(self) -> None:
        """Remove the progress line from the terminal."""
        if self._shown:
            self.stream.write(CLEAR)
            self.stream.flush()
            self._shown = False

    def draw(self, text: str) -> None:
        """Replace the progress line with ``text``."""
        self.stream.write(CLEAR + text)
        self.stream.flush()
        self._shown = True

    async def run(self, engine: Engine) -> None:
        """Redraw until cancelled; the line is cleared when it ends."""
        handlers = list(logging.getLogger().handlers)
        for handler in handlers:
            handler.addFilter(self)
        name = engine.topology.name
        last_acked, last_time = 0, time.monotonic()
        try:
            while True:
                metrics = engine.snapshot()
                acked = int(metrics.get(f"{name}.source.msg.acked.success", 0))
                now = time.monotonic()
                rate = (acked - last_acked) / (now - last_time) if now > last_time else 0.0
                last_acked, last_time = acked, now
                self.draw(progress_line(name, metrics, rate))
                await asyncio.sleep(self.interval_ms / 1000)
        finally:
            for handler in handlers:
                handler.removeFilter(self)
            self.clear()
