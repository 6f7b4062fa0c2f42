"""Where a key sits in a ``Topology.toml``, so every error can name its file and line.

``tomllib`` returns plain dicts without positions, so :class:`LineIndex` scans the text
once: table headers, ``key = value`` lines, and the elements and keys of inline arrays
and tables (``targets = [{ kind = "console" }, { kind = "statsd", port = 8125 }]``).
It is a locator, not a parser: for anything it cannot place, the line of the nearest
enclosing key or table is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pytempest.errors import ConfigError

KeyPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_BARE = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY = re.compile(rf"^\s*({_BARE}(?:\s*\.\s*{_BARE})*)\s*=\s*")
_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")


def format_path(path: KeyPath) -> str:
    """``("metric", "targets", 1, "port")`` -> ``metric.targets[1].port``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _split_key(text: str) -> list[str]:
    parts = re.findall(_BARE, text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


@dataclass
class _Frame:
    kind: str  # "array" or "table"
    path: KeyPath
    index: int = 0


@dataclass
class LineIndex:
    """Line numbers (1-based) of the keys of one TOML text."""

    text: str
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        table: KeyPath = ()
        arrays: dict[KeyPath, int] = {}
        rows = self.text.splitlines()
        offsets = [0]
        for row in rows:
            offsets.append(offsets[-1] + len(row) + 1)
        skip_until = 0
        for n, row in enumerate(rows, start=1):
            if n < skip_until:
                continue
            header = _HEADER.match(row)
            if header:
                name = tuple(_split_key(header.group(2)))
                if header.group(1) == "[[":
                    arrays[name] = arrays.get(name, -1) + 1
                    table = (*name, arrays[name])
                else:
                    table = name
                for depth in range(1, len(table)):
                    self._record(table[:depth], n)
                self._record(table, n)
                continue
            key = _KEY.match(row)
            if not key:
                continue
            path = (*table, *_split_key(key.group(1)))
            self._record(path, n)
            rest = row[key.end() :]
            if rest[:1] in ("[", "{"):
                end_line = self._scan(path, offsets[n - 1] + key.end(), n)
                skip_until = end_line + 1 if end_line > n else 0

    def _record(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def _scan(self, path: KeyPath, pos: int, line: int) -> int:
        """Walk an inline array/table starting at ``pos``; return the line where it ends."""
        text, stack = self.text, list[_Frame]()
        pending: KeyPath | None = path
        i = pos
        while i < len(text):
            c = text[i]
            top = stack[-1] if stack else None
            if c == "\n":
                line += 1
            elif c == "#":
                i = text.find("\n", i) - 1 if "\n" in text[i:] else len(text)
            elif c in "\"'":
                pending = None
                triple = text[i : i + 3] == c * 3
                end = text.find(c * 3 if triple else c, i + (3 if triple else 1))
                line += text.count("\n", i, end if end >= 0 else len(text))
                i = len(text) if end < 0 else end + (2 if triple else 0)
            elif c in "[{":
                if pending is None and top is not None and top.kind == "array":
                    pending = (*top.path, top.index)
                if pending is not None:
                    self._record(pending, line)
                stack.append(_Frame("array" if c == "[" else "table", pending or ()))
                pending = None
            elif c in "]}":
                pending = None
                if stack:
                    stack.pop()
                if not stack:
                    return line
            elif c == ",":
                pending = None
                if top is not None and top.kind == "array":
                    top.index += 1
            elif top is not None and top.kind == "table" and c in _BARE_KEY_CHARS:
                j = i
                while j < len(text) and (text[j] in _BARE_KEY_CHARS or text[j] in " \t"):
                    j += 1
                if j < len(text) and text[j] == "=":
                    pending = (*top.path, *_split_key(text[i:j]))
                    self._record(pending, line)
                    i = j
            elif top is not None and top.kind == "array" and not c.isspace():
                self._record((*top.path, top.index), line)
            i += 1
        return line

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest enclosing key; None when unknown."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


@dataclass
class Locator:
    """Names a place for error messages: ``Topology.toml:12`` (or just the file)."""

    file: Path | None
    index: LineIndex | None = None

    def where(self, path: KeyPath) -> str:
        """``file:line`` of ``path``, or ``file`` alone when its line is unknown."""
        if self.file is None:
            return "<no config file>"
        line = self.index.line(path) if self.index is not None else None
        return f"{self.file}:{line}" if line else str(self.file)

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """A ``ConfigError`` saying ``file:line: key.path: message``."""
        return ConfigError(f"{self.where(path)}: {format_path(path)}: {message}")
