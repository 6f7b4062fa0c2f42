"""Metrics: the registry of counters, gauges and timers, and the targets they are flushed to.

Targets (``kind`` in ``[metric] targets`` of ``Topology.toml``): :class:`ConsoleTarget`
(``console``), :class:`LogTarget` (``log``), :class:`FileTarget` (``file``),
:class:`StatsdTarget` (``statsd``) and :class:`PrometheusTarget` (``prometheus``). They are
imported on first use, so ``import pytempest`` does not load ``prometheus_client``.
Every built-in metric is listed in :mod:`pytempest.metrics.catalog`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytempest.metrics.registry import Counter, Gauge, Registry, ScopedMetrics, Timer
from pytempest.metrics.target import MetricTarget

if TYPE_CHECKING:
    from pytempest.metrics.console import ConsoleTarget
    from pytempest.metrics.file import FileTarget
    from pytempest.metrics.log import LogTarget
    from pytempest.metrics.prometheus import PrometheusTarget
    from pytempest.metrics.statsd import StatsdTarget

TARGETS = {
    "ConsoleTarget": "pytempest.metrics.console",
    "LogTarget": "pytempest.metrics.log",
    "FileTarget": "pytempest.metrics.file",
    "StatsdTarget": "pytempest.metrics.statsd",
    "PrometheusTarget": "pytempest.metrics.prometheus",
}
"""Where each target class lives (``kind`` -> class is the config loader's business)."""

__all__ = [
    "ConsoleTarget",
    "Counter",
    "FileTarget",
    "Gauge",
    "LogTarget",
    "MetricTarget",
    "PrometheusTarget",
    "Registry",
    "ScopedMetrics",
    "StatsdTarget",
    "Timer",
]


def __getattr__(name: str) -> Any:
    module = TARGETS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytempest.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
