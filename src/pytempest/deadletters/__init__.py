"""Dead letters: where messages go when their retries are exhausted.

The Redis dead letters are imported on first use, so ``import pytempest`` does not load redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytempest.deadletters.base import DeadLetter, DeadLetterRecord
from pytempest.deadletters.file import FileDeadLetter
from pytempest.deadletters.memory import MemoryDeadLetter

if TYPE_CHECKING:
    from pytempest.deadletters.redis import RedisListDeadLetter, RedisStreamDeadLetter

__all__ = [
    "DeadLetter",
    "DeadLetterRecord",
    "FileDeadLetter",
    "MemoryDeadLetter",
    "RedisListDeadLetter",
    "RedisStreamDeadLetter",
]


def __getattr__(name: str) -> Any:
    if name in ("RedisListDeadLetter", "RedisStreamDeadLetter"):
        return getattr(importlib.import_module("pytempest.deadletters.redis"), name)
    raise AttributeError(f"module 'pytempest.deadletters' has no attribute {name!r}")
