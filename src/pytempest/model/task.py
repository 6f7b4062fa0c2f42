"""Tasks: the user's code that handles one message body at a time.

A task is a class with a ``name`` and a ``handle(body)`` method, or a plain function
wrapped by the :func:`task` decorator. ``handle`` returns ``None`` (done, nothing for the
descendants) or an iterable of bodies (each goes to *every* direct descendant), or raises
(the source message fails). ``handle`` may be ``async def``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from pytempest.errors import PipelineError

if TYPE_CHECKING:
    from pytempest.metrics.registry import TaskMetrics

Output = Iterable[bytes | str] | None
"""What ``handle`` returns: ``None`` or an iterable of bodies (``str`` is encoded as UTF-8)."""

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
RESERVED_NAMES = frozenset({"root", "source", "topology", "pipeline"})
"""Names a task cannot take: they would collide with metric keys such as
``<topology>.source.msg.read``."""


def check_task_name(name: object, where: str) -> str:
    """Return ``name`` if it is a valid task name, else raise a ``PipelineError``."""
    if not isinstance(name, str) or not name:
        raise PipelineError(f"{where}: a task needs a non-empty string name; got {name!r}")
    if not NAME_PATTERN.match(name):
        raise PipelineError(
            f"{where}: task name {name!r} must be 1-64 letters, digits, '_' or '-' "
            "(it is used in metric names and Redis keys)"
        )
    if name in RESERVED_NAMES:
        raise PipelineError(
            f"{where}: task name {name!r} is reserved (reserved: {', '.join(sorted(RESERVED_NAMES))})"
        )
    return name


class Task:
    """Base class of a task.

    Override ``handle`` (sync or ``async def``); optionally ``filter``, ``setup`` and
    ``teardown``. Class attributes tune how the in-process runtime runs it:

    * ``threaded``: run a sync ``handle`` in a thread pool so blocking I/O does not
      stall the event loop (default False: called inline, fastest for CPU-light work);
    * ``concurrency``: how many ``async`` handle calls of this task may run at once;
    * ``batch``: at most this many bodies are handed to one worker call at a time.

    ``self.metrics`` is bound before ``setup`` runs: ``self.metrics.incr("even")``
    counts ``<topology>.<task>.even``.
    """

    name: str = ""
    threaded: bool = False
    concurrency: int = 64
    batch: int = 1000
    metrics: TaskMetrics

    _SKIP_FILTER: ClassVar[bool] = True

    def handle(self, body: bytes) -> Output | Awaitable[Output]:
        """Handle one body; return ``None`` or the bodies for every descendant."""
        raise NotImplementedError(f"task {self.name!r} does not implement handle()")

    def filter(self, body: bytes) -> bool:
        """Return False to skip ``body``: counted as handled, with no output."""
        return True

    def setup(self) -> Awaitable[None] | None:
        """Called once before the first message (may be ``async``)."""
        return None

    def teardown(self) -> Awaitable[None] | None:
        """Called once at shutdown, also after an error (may be ``async``)."""
        return None

    # -- introspection used by the runtimes ---------------------------------------------
    def handler(self) -> Callable[[bytes], Any]:
        """The callable the runtimes call per body (``handle``, or a task function itself)."""
        return self.handle

    def has_filter(self) -> bool:
        """True when this task overrides ``filter``."""
        return _overrides(self, "filter")

    def is_async(self) -> bool:
        """True when ``handle`` is a coroutine function."""
        return inspect.iscoroutinefunction(self.handle)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _overrides(obj: Task, method: str) -> bool:
    func = getattr(type(obj), method, None)
    if func is not None and func is not getattr(Task, method):
        return True
    return method in vars(obj)


class FunctionTask(Task):
    """A task made from a plain function by :func:`task`; calling it calls the function."""

    def __init__(
        self,
        name: str,
        func: Callable[[bytes], Any],
        *,
        threaded: bool = False,
        concurrency: int = 64,
        batch: int = 1000,
        filter: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.name = check_task_name(name, f"@task on {getattr(func, '__qualname__', func)!r}")
        self.func = func
        self.threaded = threaded
        self.concurrency = concurrency
        self.batch = batch
        self._filter = filter
        self.__doc__ = func.__doc__

    def handle(self, body: bytes) -> Any:
        return self.func(body)

    def handler(self) -> Callable[[bytes], Any]:
        return self.func

    def filter(self, body: bytes) -> bool:
        return True if self._filter is None else self._filter(body)

    def has_filter(self) -> bool:
        return self._filter is not None

    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def __call__(self, body: bytes) -> Any:
        return self.func(body)


def task(
    name: str,
    *,
    threaded: bool = False,
    concurrency: int = 64,
    batch: int = 1000,
    filter: Callable[[bytes], bool] | None = None,
) -> Callable[[Callable[[bytes], Any]], FunctionTask]:
    """Make a task of a function: ``@task("count") def count(body): ...``.

    The function may be ``async def``. Options are those of :class:`Task`.
    """

    def wrap(func: Callable[[bytes], Any]) -> FunctionTask:
        if not callable(func):
            raise TypeError(f"@task({name!r}) must decorate a function; got {func!r}")
        return FunctionTask(
            name, func, threaded=threaded, concurrency=concurrency, batch=batch, filter=filter
        )

    return wrap
