"""Metrics: the registry of counters, gauges and timers, and where they are flushed."""

from pytempest.metrics.registry import Counter, Gauge, Registry, ScopedMetrics, Timer

__all__ = ["Counter", "Gauge", "Registry", "ScopedMetrics", "Timer"]
