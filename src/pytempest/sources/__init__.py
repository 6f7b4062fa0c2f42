"""Sources: where source messages come from (memory, file; Redis in its own modules)."""

from pytempest.sources.base import Source
from pytempest.sources.file import FileSource
from pytempest.sources.memory import MemorySource

__all__ = ["FileSource", "MemorySource", "Source"]
