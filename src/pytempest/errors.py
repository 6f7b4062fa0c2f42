"""The exception tree of pytempest.

Every error the framework raises on purpose derives from :class:`PytempestError`::

    PytempestError
    ├── PipelineError        a pipeline graph breaks a rule (raised when it is built)
    ├── ConfigError          a setting, a Topology.toml key or a CLI option is wrong
    ├── TargetError          ``module:attribute`` does not name a topology
    ├── TaskError            raised by a task's handler to fail its source message
    │   └── PayloadError     a body is too large or does not decode (never retried)
    ├── TaskSetupError       a task's setup() hook failed; the topology does not start
    ├── SourceError          a source failed to set up, poll or ack
    │   └── SourceConnectionError   the source's server cannot be reached
    ├── DeadLetterError      a dead letter refused a record
    └── WireError            a distributed-runtime message is malformed or of another version

Builtins such as ``ConnectionError`` and ``TimeoutError`` are never shadowed.
"""

from __future__ import annotations


class PytempestError(Exception):
    """Root of every error pytempest raises on purpose."""


class PipelineError(PytempestError):
    """The pipeline graph breaks a rule; the message names the task or edge."""


class ConfigError(PytempestError):
    """A setting is wrong; the message names the key, where it came from and the fix."""


class TargetError(PytempestError):
    """A ``module:attribute`` target could not be loaded as a topology."""


class TaskError(PytempestError):
    """Raise from a task's ``handle`` to fail the source message with a clear reason.

    Any other exception fails the message too; this one only says "expected failure"
    (its traceback is not logged, only its message).
    """


class PayloadError(TaskError):
    """A message body was refused by a codec (``pytempest.codecs``): too large, or it
    does not decode. Retrying cannot fix the bytes, so the engine does not retry: the
    source message is dead-lettered after this one attempt with :attr:`reason`.

    The message names the size and a short escaped prefix of the body, never all of it.
    """

    def __init__(self, message: str, reason: str = "decode_error") -> None:
        super().__init__(message)
        self.reason = reason
        """``too_large`` or ``decode_error``: the dead-letter record's reason."""


class TaskSetupError(PytempestError):
    """A task's ``setup()`` hook raised; the message names the task."""


class SourceError(PytempestError):
    """A source failed to set up, poll, ack or close."""


class SourceConnectionError(SourceError):
    """The server behind a source cannot be reached (refused, timed out, lost)."""


class DeadLetterError(PytempestError):
    """A dead letter could not accept a record."""


class WireError(PytempestError):
    """A message of the distributed runtime could not be decoded (malformed, or written by
    an incompatible pytempest version); the message names the stream and the version."""
