"""Run a topology in the foreground with signal handling (used by ``pytempest run``).

The first SIGTERM or SIGINT stops polling and lets in-flight messages finish for up to
``graceful_shutdown_ms``; a second one stops at once. What did not finish stays unacked
at the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from pytempest.cli.progress import Progress
from pytempest.engine.engine import Engine, StopReason


async def run_engine(
    engine: Engine,
    *,
    until_idle: bool = False,
    duration_ms: int | None = None,
    progress: Progress | None = None,
) -> StopReason:
    """Run ``engine`` with SIGTERM/SIGINT handlers installed on the running loop (and
    ``progress`` drawn while it runs)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, engine.request_stop)
            installed.append(sig)
    shown = asyncio.create_task(progress.run(engine)) if progress is not None else None
    try:
        return await engine.run(until_idle=until_idle, duration_ms=duration_ms)
    finally:
        if shown is not None:
            shown.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shown
        for sig in installed:
            loop.remove_signal_handler(sig)
