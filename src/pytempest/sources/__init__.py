"""Sources: where source messages come from (memory, file; Redis in its own modules)."""

from pytempest.sources.base import Source
from pytempest.sources.file import FileSource
from pytempest.sources.memory import MemorySource
from pytempest.sources.redis_base import PendingHandler
from pytempest.sources.redis_list import RedisListSource
from pytempest.sources.redis_sorted_set import RedisSortedSetSource
from pytempest.sources.redis_stream import RedisStreamSource

__all__ = [
    "FileSource",
    "MemorySource",
    "PendingHandler",
    "RedisListSource",
    "RedisSortedSetSource",
    "RedisStreamSource",
    "Source",
]
