"""Small value objects for policies: failure policy, ack policy, backoff.

Each can be parsed once from the string form used in ``Topology.toml`` and on the
command line (``FailurePolicy.parse("retry(3, delay_ms=500)")``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pytempest.errors import ConfigError

_CALL = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$")


def _parse_call(text: str, what: str) -> tuple[str, list[str], dict[str, str]]:
    match = _CALL.match(text)
    if not match:
        raise ConfigError(f"{what} {text!r} is not of the form name or name(args)")
    name, inner = match.group(1), match.group(2)
    args: list[str] = []
    kwargs: dict[str, str] = {}
    if inner and inner.strip():
        for part in inner.split(","):
            part = part.strip()
            if "=" in part:
                key, _, value = part.partition("=")
                kwargs[key.strip()] = value.strip()
            elif kwargs:
                raise ConfigError(f"{what} {text!r}: positional argument after a keyword one")
            else:
                args.append(part)
    return name, args, kwargs


def _int(value: str, key: str, text: str, what: str) -> int:
    try:
        return int(value.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{what} {text!r}: {key} must be a whole number; got {value!r}") from None


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """What happens to a source message whose processing failed or timed out.

    * ``none``: not acked; the source's own redelivery takes over;
    * ``best_effort``: acked anyway, counted as failed;
    * ``retry(n, delay_ms)``: re-run from the root after a delay that doubles on each
      attempt (capped at ``max_delay_ms``), up to ``n`` more times; then dead-lettered
      when a dead letter is set, then acked.
    """

    kind: Literal["none", "best_effort", "retry"]
    retries: int = 0
    delay_ms: int = 0
    max_delay_ms: int = 60_000

    @classmethod
    def none(cls) -> FailurePolicy:
        """Leave failed messages unacked at the source."""
        return cls("none")

    @classmethod
    def best_effort(cls) -> FailurePolicy:
        """Ack failed messages anyway (counted as failed)."""
        return cls("best_effort")

    @classmethod
    def retry(cls, retries: int = 3, delay_ms: int = 1000, max_delay_ms: int = 60_000) -> FailurePolicy:
        """Re-run a failed message up to ``retries`` more times, waiting ``delay_ms``
        before the first retry and twice as long before each next one."""
        if retries < 0 or delay_ms < 0 or max_delay_ms < 0:
            raise ConfigError(
                f"retry({retries}, delay_ms={delay_ms}, max_delay_ms={max_delay_ms}): "
                "every value must be >= 0"
            )
        return cls("retry", retries, delay_ms, max_delay_ms)

    def delay_for(self, attempt: int) -> int:
        """Milliseconds to wait before re-running after failed attempt number ``attempt``."""
        return int(min(self.max_delay_ms, self.delay_ms * 2 ** max(0, attempt - 1)))

    def may_retry(self, deliveries: int) -> bool:
        """True when a message delivered ``deliveries`` times may run once more."""
        return self.kind == "retry" and deliveries <= self.retries

    @classmethod
    def parse(cls, text: str) -> FailurePolicy:
        """Parse ``"none"``, ``"best_effort"`` or ``"retry(3, delay_ms=500)"``."""
        what = "failure policy"
        name, args, kwargs = _parse_call(text, what)
        if name in ("none", "best_effort"):
            if args or kwargs:
                raise ConfigError(f"{what} {text!r}: {name} takes no arguments")
            return cls(name)  # type: ignore[arg-type]
        if name != "retry":
            raise ConfigError(
                f"{what} {text!r} is unknown; expected none, best_effort or retry(n, delay_ms=...)"
            )
        allowed = ("retries", "delay_ms", "max_delay_ms")
        values: dict[str, int] = {}
        for key, value in zip(allowed, args, strict=False):
            values[key] = _int(value, key, text, what)
        if len(args) > len(allowed):
            raise ConfigError(f"{what} {text!r}: too many arguments")
        for key, value in kwargs.items():
            if key not in allowed:
                raise ConfigError(f"{what} {text!r}: unknown argument {key!r}; expected {allowed}")
            values[key] = _int(value, key, text, what)
        return cls.retry(**values)

    def __str__(self) -> str:
        if self.kind == "retry":
            return f"retry({self.retries}, delay_ms={self.delay_ms}, max_delay_ms={self.max_delay_ms})"
        return self.kind


@dataclass(frozen=True, slots=True)
class AckPolicy:
    """How a source acks the messages the topology finished.

    * ``individual``: each id is acked on its own as soon as it is done;
    * ``batch(n, ack_interval_ms)``: ids are acked together when ``n`` are waiting or
      ``ack_interval_ms`` passed since the oldest waiting one, whichever comes first,
      and at once when the topology has nothing else running (waiting would only add
      latency);
    * ``none``: never acked (for sources that need no ack).
    """

    kind: Literal["individual", "batch", "none"]
    size: int = 1
    interval_ms: int = 0

    @classmethod
    def individual(cls) -> AckPolicy:
        """Ack every message by itself, at once."""
        return cls("individual", 1, 0)

    @classmethod
    def batch(cls, size: int = 100, ack_interval_ms: int = 1000) -> AckPolicy:
        """Ack up to ``size`` messages in one call, waiting at most ``ack_interval_ms``."""
        if size < 1 or ack_interval_ms < 0:
            raise ConfigError(
                f"batch({size}, ack_interval_ms={ack_interval_ms}): size must be >= 1 "
                "and ack_interval_ms >= 0"
            )
        return cls("batch", size, ack_interval_ms)

    @classmethod
    def none(cls) -> AckPolicy:
        """Never ack."""
        return cls("none", 0, 0)

    @classmethod
    def parse(cls, text: str) -> AckPolicy:
        """Parse ``"individual"``, ``"none"`` or ``"batch(100, ack_interval_ms=500)"``."""
        what = "ack policy"
        name, args, kwargs = _parse_call(text, what)
        if name == "individual" and not args and not kwargs:
            return cls.individual()
        if name == "none" and not args and not kwargs:
            return cls.none()
        if name != "batch":
            raise ConfigError(
                f"{what} {text!r} is unknown; expected individual, none or batch(n, ack_interval_ms=...)"
            )
        allowed = ("size", "ack_interval_ms")
        values: dict[str, int] = {}
        for key, value in zip(allowed, args, strict=False):
            values[key] = _int(value, key, text, what)
        for key, value in kwargs.items():
            if key not in allowed:
                raise ConfigError(f"{what} {text!r}: unknown argument {key!r}; expected {allowed}")
            values[key] = _int(value, key, text, what)
        return cls.batch(**values)

    def __str__(self) -> str:
        if self.kind == "batch":
            return f"batch({self.size}, ack_interval_ms={self.interval_ms})"
        return self.kind


@dataclass(slots=True)
class Backoff:
    """Exponential backoff between ``initial_ms`` and ``max_ms`` (doubles on each miss)."""

    initial_ms: int
    max_ms: int
    current_ms: int = 0

    def __post_init__(self) -> None:
        self.initial_ms = max(0, self.initial_ms)
        self.max_ms = max(self.initial_ms, self.max_ms)
        self.current_ms = self.initial_ms

    def miss(self) -> int:
        """Record an empty or failed attempt; return how long to wait now (ms)."""
        wait = self.current_ms
        self.current_ms = min(self.max_ms, max(1, self.current_ms * 2))
        return wait

    def reset(self) -> None:
        """Record a successful attempt."""
        self.current_ms = self.initial_ms
