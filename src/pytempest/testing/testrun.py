"""``TestRun``: run a whole topology in this process and get its metrics back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pytempest.engine.engine import Engine, StopReason
from pytempest.engine.events import EngineObserver
from pytempest.engine.executor import Executor
from pytempest.metrics.registry import Registry
from pytempest.topology import Topology

log = logging.getLogger("pytempest.testing")


class RunMetrics(dict[str, float]):
    """The flat metric snapshot of a run (``metrics["wordcount.source.msg.read"]``).

    ``reason`` says why the run stopped: ``idle``, ``duration`` or ``timeout``.
    """

    reason: str = ""

    def get_int(self, key: str) -> int:
        """The value of ``key`` as an int, 0 when it was never counted."""
        return int(self.get(key, 0))


class TestRun:
    """Runs ``topology`` in process, as ``pytempest run`` would, and returns its metrics.

    Example::

        metrics = TestRun(topology).run(until_idle=True, timeout_ms=10_000)
        assert metrics["wordcount.source.msg.acked.success"] == 2

    Args:
        topology: what to run.
        executor: where tasks run (default: in process).
        observers: extra engine observers (e.g. to record events in a test).
        cohorts: allow the engine's cohort fast path (see ``Engine``).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        topology: Topology,
        executor: Executor | None = None,
        observers: Sequence[EngineObserver] = (),
        *,
        cohorts: bool = True,
    ) -> None:
        self.topology = topology
        self.executor = executor
        self.observers = observers
        self.cohorts = cohorts
        self.engine: Engine | None = None

    def run(
        self,
        *,
        until_idle: bool = True,
        duration_ms: int | None = None,
        timeout_ms: int = 10_000,
    ) -> RunMetrics:
        """Run until the source is idle and nothing is in flight (``until_idle``), or for
        ``duration_ms``; stop anyway after ``timeout_ms``. Returns the metrics."""
        return asyncio.run(self.arun(until_idle=until_idle, duration_ms=duration_ms, timeout_ms=timeout_ms))

    async def arun(
        self,
        *,
        until_idle: bool = True,
        duration_ms: int | None = None,
        timeout_ms: int = 10_000,
    ) -> RunMetrics:
        """:meth:`run` for code already inside an event loop."""
        engine = Engine(self.topology, self.executor, Registry(), self.observers, cohorts=self.cohorts)
        self.engine = engine
        run = asyncio.ensure_future(engine.run(until_idle=until_idle, duration_ms=duration_ms))
        reason: StopReason | str
        try:
            reason = await asyncio.wait_for(asyncio.shield(run), timeout_ms / 1000)
        except TimeoutError:
            log.warning(
                "TestRun of %s did not finish within %d ms (in flight: %d); stopping it",
                self.topology.name, timeout_ms, len(engine.inflight),
            )  # fmt: skip
            engine.request_stop()
            engine.request_stop()
            await run
            reason = "timeout"
        metrics = RunMetrics(engine.snapshot())
        metrics.reason = str(reason)
        return metrics
