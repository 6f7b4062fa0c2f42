"""Sources: where source messages come from (memory, file, Redis streams, lists, sorted sets).

The Redis sources are imported on first use, so ``import pytempest`` does not load redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytempest.sources.base import Source
from pytempest.sources.file import FileSource
from pytempest.sources.memory import MemorySource

if TYPE_CHECKING:
    from pytempest.sources.redis_base import PendingHandler
    from pytempest.sources.redis_list import RedisListSource
    from pytempest.sources.redis_sorted_set import RedisSortedSetSource
    from pytempest.sources.redis_stream import RedisStreamSource

_LAZY = {
    "PendingHandler": "pytempest.sources.redis_base",
    "RedisListSource": "pytempest.sources.redis_list",
    "RedisSortedSetSource": "pytempest.sources.redis_sorted_set",
    "RedisStreamSource": "pytempest.sources.redis_stream",
}

__all__ = [
    "FileSource",
    "MemorySource",
    "PendingHandler",
    "RedisListSource",
    "RedisSortedSetSource",
    "RedisStreamSource",
    "Source",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pytempest.sources' has no attribute {name!r}")
