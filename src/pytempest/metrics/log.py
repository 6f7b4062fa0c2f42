"""The log target: one line per flush through :mod:`logging`."""

from __future__ import annotations

import logging
from typing import ClassVar

from pytempest.metrics.registry import Registry
from pytempest.metrics.target import MetricTarget, check_level, check_prefix, flat_values, fmt_num


class LogTarget(MetricTarget):
    """``kind = "log"``: one line per flush through :mod:`logging`.

    The line is ``metrics: <key>=<value> ...`` with every metric by its dotted key
    (timers as ``<key>.count``, ``.sum_ms``, ``.p50_ms``, ``.p99_ms``, ``.max_ms``;
    counters still at 0 left out); the same values are attached to the record as
    ``extra={"metrics": {...}}``, which the JSON log format writes as an object.

    Keys:
        level: ``debug``, ``info`` (default), ``warning`` or ``error``.
        logger: the logger's name (default ``pytempest.metrics``).
        prefix: put in front of every name (default none).
    """

    kind: ClassVar[str] = "log"

    def __init__(
        self, level: str | int = "info", logger: str = "pytempest.metrics", prefix: str = ""
    ) -> None:
        self.level = check_level(level, self.kind)
        self.logger = logging.getLogger(logger)
        self.prefix = check_prefix(prefix, self.kind)

    def flush(self, registry: Registry) -> None:
        if not self.logger.isEnabledFor(self.level):
            return
        values = flat_values(registry, self.prefix, show_zero=False)
        text = " ".join(f"{k}={fmt_num(v)}" for k, v in sorted(values.items()))
        self.logger.log(self.level, "metrics: %s", text or "none yet", extra={"metrics": values})

    def describe(self) -> str:
        return f"log({logging.getLevelName(self.level).lower()}, {self.logger.name})"
