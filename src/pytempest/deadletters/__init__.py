"""Dead letters: where messages go when their retries are exhausted."""

from pytempest.deadletters.base import DeadLetter, DeadLetterRecord
from pytempest.deadletters.file import FileDeadLetter
from pytempest.deadletters.memory import MemoryDeadLetter
from pytempest.deadletters.redis import RedisListDeadLetter, RedisStreamDeadLetter

__all__ = [
    "DeadLetter",
    "DeadLetterRecord",
    "FileDeadLetter",
    "MemoryDeadLetter",
    "RedisListDeadLetter",
    "RedisStreamDeadLetter",
]
