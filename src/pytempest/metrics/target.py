"""The metric target interface: where the registry is flushed (console, statsd, ...).

Targets are called from worker threads, never on the engine's event loop, so a slow or
dead backend cannot slow message handling: ``open`` once, then ``flush`` every
``flush_interval_ms`` and a last time at shutdown, then ``close``. Values in the registry
are cumulative; a target that needs deltas (statsd) keeps the last values it sent.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from pytempest.metrics.registry import Registry


class MetricTarget(abc.ABC):
    """Base class of every metric target."""

    kind: ClassVar[str] = "target"

    def open(self, registry: Registry) -> None:  # noqa: B027 - optional hook
        """Start servers, open files or sockets. Called once, in a worker thread."""

    @abc.abstractmethod
    def flush(self, registry: Registry) -> None:
        """Send the current values. Called in a worker thread; may block."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop servers, close files. Called once, last, in a worker thread."""

    def describe(self) -> str:
        """A one-line description without secrets."""
        return self.kind
