"""Logging setup for the command line: text or JSON lines, with message context.

Every line pytempest logs about a message carries, as ``extra``, the ``topology``, the
``task`` (when one is involved), the ``source_id`` and the ``attempt`` (1 on the first
delivery). The text format shows them in the message itself; the JSON format
(``--log-format json``) writes one object per line with them as fields::

    {"ts": "2026-12-03T15:45:18.123Z", "level": "WARNING", "logger": "pytempest.engine",
     "message": "topology wc: message 17 failed in task count (attempt 1): ...",
     "topology": "wc", "task": "count", "source_id": "17", "attempt": 1}

Records with ``extra={"metrics": {...}}`` (the ``log`` metric target) get a ``metrics``
object; an exception's traceback goes in ``exc``. Only :func:`configure_logging` touches
the logging configuration, and only when the CLI (or the application) calls it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from pytempest.errors import ConfigError

CONTEXT_FIELDS = ("topology", "task", "source_id", "attempt")
"""The ``extra`` keys copied to every JSON line that has them."""

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ms), ``level``, ``logger``, ``message``,
    the message context fields present, ``metrics`` and ``exc`` when there are some."""

    def format(self, record: logging.LogRecord) -> str:
        ms = int(record.msecs)
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                out[field] = value
        metrics = getattr(record, "metrics", None)
        if metrics is not None:
            out["metrics"] = metrics
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class _Installed(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (so a second call replaces it)."""


def configure_logging(
    level: str | int = "INFO", fmt: str = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (default standard error)
    as ``text`` or ``json`` lines. Calling it again replaces what the previous call set.

    Raises:
        ConfigError: an unknown level or format (the message lists the valid ones).
    """
    if isinstance(level, str):
        name = level.strip().upper()
        if name not in LEVELS:
            raise ConfigError(f"log level must be one of {', '.join(LEVELS)}; got {level!r}")
        number = logging.getLevelName(name)
    elif isinstance(level, int) and not isinstance(level, bool):
        number = level
    else:
        raise ConfigError(f"log level must be a name ({', '.join(LEVELS)}); got {level!r}")
    if fmt not in FORMATS:
        raise ConfigError(f"log format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Installed)]:
        root.removeHandler(old)
        old.close()
    handler = _Installed(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(number)
    return handler
