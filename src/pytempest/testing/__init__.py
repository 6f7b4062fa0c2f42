"""Helpers to test topologies: run them in process and assert on their metrics."""

from pytempest.testing.testrun import RunMetrics, TestRun

__all__ = ["RunMetrics", "TestRun"]
