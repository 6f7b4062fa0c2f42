"""The pipeline: tasks wired as a directed acyclic graph with one root.

Built with a fluent builder::

    Pipeline().task(Split()).task(count).edge("split", "count")

The first task added is the root. :meth:`Pipeline.build` checks every rule and raises a
:class:`~pytempest.errors.PipelineError` naming the offending task or edge; a
:class:`~pytempest.Topology` builds its pipeline when it is made, so a broken graph never
reaches a running topology.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pytempest.errors import PipelineError
from pytempest.model.task import Task, check_task_name

Release = Literal["stage", "stream"]


class Pipeline:
    """Fluent builder of a task graph.

    Args:
        release: ``"stage"`` (default) holds what a task emits for a source message
            until that task has handled every input it will get for it, then releases
            it to every descendant at once; ``"stream"`` sends each output on as soon
            as ``handle`` returns.
    """

    def __init__(self, release: Release = "stage") -> None:
        if release not in ("stage", "stream"):
            raise PipelineError(f"release must be 'stage' or 'stream'; got {release!r}")
        self.release: Release = release
        self._tasks: dict[str, Task] = {}
        self._edges: list[tuple[str, str]] = []

    def task(self, task: Task) -> Pipeline:
        """Add a task; the first one added is the root. Returns the pipeline."""
        if not isinstance(task, Task):
            hint = " (decorate the function with @task(name))" if callable(task) else ""
            raise PipelineError(f"Pipeline.task() takes a Task; got {task!r}{hint}")
        name = check_task_name(task.name, f"Pipeline.task({type(task).__name__})")
        if name in self._tasks:
            raise PipelineError(f"duplicate task name {name!r}: every task needs its own name")
        self._tasks[name] = task
        return self

    def edge(self, ancestor: str, descendant: str) -> Pipeline:
        """Send what ``ancestor`` emits to ``descendant``. Returns the pipeline."""
        for end in (ancestor, descendant):
            if not isinstance(end, str):
                raise PipelineError(f"edge ends are task names (str); got {end!r}")
        if ancestor == descendant:
            raise PipelineError(f"edge {ancestor!r} -> {descendant!r} is a self edge")
        if (ancestor, descendant) in self._edges:
            raise PipelineError(f"edge {ancestor!r} -> {descendant!r} is declared twice")
        self._edges.append((ancestor, descendant))
        return self

    def edges(self, *pairs: tuple[str, str]) -> Pipeline:
        """Add several edges at once: ``.edges(("a", "b"), ("b", "c"))``."""
        for ancestor, descendant in pairs:
            self.edge(ancestor, descendant)
        return self

    @property
    def tasks(self) -> list[Task]:
        """The tasks in the order they were added."""
        return list(self._tasks.values())

    def build(self) -> Graph:
        """Check every rule and return the immutable, indexed :class:`Graph`."""
        if not self._tasks:
            raise PipelineError("the pipeline has no tasks: add at least one with .task()")
        names = list(self._tasks)
        for ancestor, descendant in self._edges:
            for end in (ancestor, descendant):
                if end not in self._tasks:
                    raise PipelineError(
                        f"edge {ancestor!r} -> {descendant!r} names unknown task {end!r}; "
                        f"tasks: {', '.join(names)}"
                    )
        index = {name: i for i, name in enumerate(names)}
        descendants: list[list[int]] = [[] for _ in names]
        ancestors: list[list[int]] = [[] for _ in names]
        for ancestor, descendant in self._edges:
            descendants[index[ancestor]].append(index[descendant])
            ancestors[index[descendant]].append(index[ancestor])
        if ancestors[0]:
            first = names[ancestors[0][0]]
            raise PipelineError(
                f"edge {first!r} -> {names[0]!r} points into the root task {names[0]!r} "
                "(the first task added); the root only receives source messages"
            )
        order = _topological_order(names, descendants)
        reachable = _reachable(descendants)
        for i, name in enumerate(names):
            if i not in reachable:
                raise PipelineError(
                    f"task {name!r} is not reachable from the root task {names[0]!r}: "
                    "add an edge to it or remove it"
                )
        return Graph(
            tasks=tuple(self._tasks.values()),
            names=tuple(names),
            descendants=tuple(tuple(d) for d in descendants),
            ancestors=tuple(tuple(a) for a in ancestors),
            order=tuple(order),
            release=self.release,
        )

    def to_dot(self) -> str:
        """The graph in Graphviz DOT (left to right)."""
        return self.build().to_dot()

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (left to right)."""
        return self.build().to_mermaid()


def _topological_order(names: Sequence[str], descendants: Sequence[Sequence[int]]) -> list[int]:
    """Kahn's algorithm; a leftover node means a cycle, reported with its path."""
    indegree = [0] * len(names)
    for outs in descendants:
        for d in outs:
            indegree[d] += 1
    ready = [i for i, n in enumerate(indegree) if n == 0]
    order: list[int] = []
    while ready:
        node = ready.pop()
        order.append(node)
        for d in descendants[node]:
            indegree[d] -= 1
            if indegree[d] == 0:
                ready.append(d)
    if len(order) != len(names):
        cycle = _find_cycle({i for i, n in enumerate(indegree) if n > 0}, descendants)
        path = " -> ".join(repr(names[i]) for i in cycle)
        raise PipelineError(f"the pipeline has a cycle: {path}")
    return order


def _find_cycle(nodes: set[int], descendants: Sequence[Sequence[int]]) -> list[int]:
    start = min(nodes)
    path: list[int] = [start]
    seen = {start: 0}
    node = start
    while True:
        node = next(d for d in descendants[node] if d in nodes)
        if node in seen:
            return [*path[seen[node] :], node]
        seen[node] = len(path)
        path.append(node)


def _reachable(descendants: Sequence[Sequence[int]]) -> set[int]:
    seen = {0}
    stack = [0]
    while stack:
        for d in descendants[stack.pop()]:
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


@dataclass(frozen=True, slots=True)
class Graph:
    """A checked pipeline: tasks by index (0 is the root) with their edges."""

    tasks: tuple[Task, ...]
    names: tuple[str, ...]
    descendants: tuple[tuple[int, ...], ...]
    ancestors: tuple[tuple[int, ...], ...]
    order: tuple[int, ...]
    release: Release

    def __len__(self) -> int:
        return len(self.tasks)

    def index(self, name: str) -> int:
        """The index of the task called ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise PipelineError(f"no task named {name!r}; tasks: {', '.join(self.names)}") from None

    def edges(self) -> Iterable[tuple[str, str]]:
        """Every edge as (ancestor name, descendant name), in declaration order per task."""
        for i, outs in enumerate(self.descendants):
            for d in outs:
                yield self.names[i], self.names[d]

    def to_dot(self) -> str:
        """The graph in Graphviz DOT (left to right)."""
        lines = ["digraph pipeline {", "  rankdir=LR;", "  node [shape=box];"]
        lines += [f'  "{name}";' for name in self.names]
        lines += [f'  "{a}" -> "{b}";' for a, b in self.edges()]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (left to right)."""
        lines = ["flowchart LR"]
        lines += [f"  {name}[{name}]" for name in self.names]
        lines += [f"  {a} --> {b}" for a, b in self.edges()]
        return "\n".join(lines) + "\n"
