"""Pipeline builder rules: every broken graph is a PipelineError naming what is wrong."""

from __future__ import annotations

import pytest

from pytempest import Pipeline, PipelineError, Task, task


def make(name: str) -> Task:
    @task(name)
    def noop(body: bytes) -> None:
        return None

    return noop


def chain(*names: str) -> Pipeline:
    p = Pipeline()
    for n in names:
        p.task(make(n))
    return p


def test_first_task_is_root_and_graph_is_indexed() -> None:
    g = chain("a", "b", "c").edge("a", "b").edge("a", "c").edge("b", "c").build()
    assert g.names == ("a", "b", "c")
    assert g.descendants == ((1, 2), (2,), ())
    assert g.ancestors == ((), (0,), (0, 1))
    assert g.order.index(0) < g.order.index(1) < g.order.index(2)


def test_no_tasks() -> None:
    with pytest.raises(PipelineError, match="no tasks"):
        Pipeline().build()


def test_duplicate_name() -> None:
    with pytest.raises(PipelineError, match="duplicate task name 'a'"):
        chain("a", "a")


@pytest.mark.parametrize("name", ["root", "source", "topology", "pipeline"])
def test_reserved_names(name: str) -> None:
    with pytest.raises(PipelineError, match=f"task name '{name}' is reserved"):
        make(name)


@pytest.mark.parametrize("name", ["", "a.b", "with space", "x" * 65])
def test_bad_names(name: str) -> None:
    with pytest.raises(PipelineError, match="task"):
        make(name)


def test_unknown_task_in_edge() -> None:
    with pytest.raises(PipelineError, match=r"edge 'a' -> 'zz' names unknown task 'zz'; tasks: a, b"):
        chain("a", "b").edge("a", "b").edge("a", "zz").build()


def test_self_edge() -> None:
    with pytest.raises(PipelineError, match="self edge"):
        chain("a").edge("a", "a")


def test_duplicate_edge() -> None:
    with pytest.raises(PipelineError, match="declared twice"):
        chain("a", "b").edge("a", "b").edge("a", "b")


def test_cycle_is_reported_with_its_path() -> None:
    p = chain("a", "b", "c", "d").edge("a", "b").edge("b", "c").edge("c", "d").edge("d", "b")
    with pytest.raises(PipelineError, match=r"cycle: 'b' -> 'c' -> 'd' -> 'b'"):
        p.build()


def test_edge_into_root() -> None:
    with pytest.raises(PipelineError, match="points into the root task 'a'"):
        chain("a", "b").edge("a", "b").edge("b", "a").build()


def test_unreachable_task() -> None:
    with pytest.raises(PipelineError, match="task 'c' is not reachable from the root task 'a'"):
        chain("a", "b", "c").edge("a", "b").build()


def test_not_a_task() -> None:
    def plain(body: bytes) -> None:
        return None

    with pytest.raises(PipelineError, match=r"decorate the function with @task"):
        Pipeline().task(plain)  # type: ignore[arg-type]


def test_release_mode_is_checked() -> None:
    with pytest.raises(PipelineError, match="release"):
        Pipeline(release="later")  # type: ignore[arg-type]


def test_dot_and_mermaid() -> None:
    p = chain("t1", "t2", "t3").edge("t1", "t2").edge("t1", "t3")
    assert p.to_dot() == (
        "digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n"
        '  "t1";\n  "t2";\n  "t3";\n  "t1" -> "t2";\n  "t1" -> "t3";\n}\n'
    )
    assert p.to_mermaid() == "flowchart LR\n  t1[t1]\n  t2[t2]\n  t3[t3]\n  t1 --> t2\n  t1 --> t3\n"


def test_function_task_stays_callable() -> None:
    @task("double")
    def double(body: bytes) -> list[bytes]:
        return [body, body]

    assert double(b"x") == [b"x", b"x"]
    assert double.name == "double"
