"""Settings of the distributed runtime, each declared once (default, doc, environment).

Every setting can be given in code (``BusSettings(claim_idle_ms=10_000)``) or through
its environment variable (``PYTEMPEST_BUS_CLAIM_IDLE_MS=10000``), which
:meth:`BusSettings.from_env` reads; the CLI commands use that. Durations are ``*_ms``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytempest.errors import ConfigError

ENV_PREFIX = "PYTEMPEST_BUS_"
REDIS_URL_ENV = "PYTEMPEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _setting(default: int, doc: str, minimum: int = 1) -> Any:
    return field(default=default, metadata={"doc": doc, "min": minimum})


@dataclass(frozen=True, slots=True)
class BusSettings:
    """How the topology process and its workers use Redis (see docs/distributed.md)."""

    heartbeat_interval_ms: int = _setting(
        1000, "how often topology instances and workers refresh their heartbeat hash"
    )
    heartbeat_ttl_ms: int = _setting(
        10_000, "a heartbeat not refreshed for this long expires: the process is dead"
    )
    result_ttl_ms: int = _setting(
        60_000, "the result stream of a topology instance expires this long after its last heartbeat"
    )
    block_ms: int = _setting(1000, "how long one blocking XREAD / XREADGROUP waits for data")
    entry_max_batches: int = _setting(
        64,
        "at most this many batches (the task messages of one source message for one task, "
        "up to Task.batch) are packed into one task stream entry",
    )
    entry_max_bytes: int = _setting(
        1 << 20, "a task stream entry is closed once its bodies reach this many bytes"
    )
    max_message_bytes: int = _setting(
        16 << 20, "a batch of task messages or of results larger than this fails its source message"
    )
    prefetch: int = _setting(
        4, "task stream entries a worker holds (read, not answered yet) per task it serves"
    )
    claim_idle_ms: int = _setting(
        30_000, "a worker claims task stream entries pending this long in another consumer (XAUTOCLAIM)"
    )
    claim_interval_ms: int = _setting(5000, "how often a worker looks for such idle entries")
    max_deliveries: int = _setting(
        5, "an entry delivered more times than this fails its source messages (no poison loop)"
    )
    whole_graph: int = _setting(
        1,
        "1: the topology sends each cohort of an all-inline pipeline as one entry, and a worker that "
        "serves every task runs the whole pipeline over it (intermediate outputs never cross Redis); "
        "0: task by task, so the tasks of one cohort can run on several workers",
        minimum=0,
    )
    status_interval_ms: int = _setting(
        5000, "how often a topology instance publishes its metrics and counts live workers"
    )
    no_worker_warn_ms: int = _setting(
        30_000, "how often a topology logs a warning about a task that has no live worker"
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < f.metadata["min"]:
                raise ConfigError(
                    f"distributed runtime setting {f.name} must be a whole number >= "
                    f"{f.metadata['min']}; got {value!r}"
                )
        if self.whole_graph not in (0, 1):
            raise ConfigError(
                f"distributed runtime setting whole_graph must be 0 or 1; got {self.whole_graph!r}"
            )
        if self.heartbeat_ttl_ms <= self.heartbeat_interval_ms:
            raise ConfigError(
                f"heartbeat_ttl_ms ({self.heartbeat_ttl_ms}) must be larger than heartbeat_interval_ms "
                f"({self.heartbeat_interval_ms}), or every process looks dead between two beats"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: int) -> BusSettings:
        """Defaults, then ``PYTEMPEST_BUS_<NAME>`` variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = int(raw.replace("_", ""))
            except ValueError:
                raise ConfigError(
                    f"environment variable {name} must be a whole number; got {raw!r}"
                ) from None
        values.update(overrides)
        return cls(**values)

    @classmethod
    def describe(cls) -> list[tuple[str, str, int, str]]:
        """``(name, environment variable, default, doc)`` of every setting (for docs)."""
        return [
            (f.name, ENV_PREFIX + f.name.upper(), f.default, f.metadata["doc"])  # type: ignore[misc]
            for f in dataclasses.fields(cls)
        ]


def redis_url_from_env(url: str | None) -> str:
    """``url`` if given, else ``$PYTEMPEST_REDIS_URL``, else the local default."""
    return url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
