"""Runtimes: where tasks run (in process; the Redis bus for many processes)."""

from pytempest.runtimes.inprocess import InProcessExecutor

__all__ = ["InProcessExecutor"]
