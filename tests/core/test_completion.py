"""The completion rule (DESIGN.md section 2), driven directly on the tracker.

The tracker is pure: a test decides the order in which task batches are handled, so the
interleavings that broke the original Tempest are reproduced exactly.
"""

from __future__ import annotations

import random
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from pytempest import Pipeline, task
from pytempest.engine.completion import DONE, IGNORED, PROGRESS, CompletionTracker, MessageState
from pytempest.model.message import SourceMsg
from pytempest.model.pipeline import Graph

Batch = tuple[MessageState, int, int, list[bytes]]


def graph(names: list[str], edges: list[tuple[str, str]], release: str = "stage") -> Graph:
    p = Pipeline(release=release)  # type: ignore[arg-type]
    for n in names:

        @task(n)
        def noop(body: bytes) -> None:
            return None

        p.task(noop)
    for a, b in edges:
        p.edge(a, b)
    return p.build()


class Harness:
    """A tracker whose dispatched batches wait in a list until the test handles them."""

    def __init__(self, g: Graph, batch_size: int = 1000) -> None:
        self.g = g
        self.queue: deque[Batch] = deque()
        self.tracker = CompletionTracker(g, self._dispatch, [batch_size] * len(g))
        self.calls = [0] * len(g)

    def _dispatch(self, state: MessageState, t: int, seq: int, bodies: list[bytes]) -> None:
        self.queue.append((state, t, seq, bodies))

    def take(self, name: str) -> Batch:
        t = self.g.index(name)
        for i, b in enumerate(self.queue):
            if b[1] == t:
                del self.queue[i]
                return b
        raise AssertionError(f"no batch queued for {name}")

    def handle(self, batch: Batch, emit: int) -> int:
        state, t, seq, bodies = batch
        self.calls[t] += len(bodies)
        outputs = [b"x"] * (emit * len(bodies))
        return self.tracker.handled(state, t, seq, len(bodies), outputs)


def test_single_task_done_after_its_only_message() -> None:
    h = Harness(graph(["a"], []))
    state = h.tracker.start(SourceMsg("1", b"m"))
    assert h.handle(h.take("a"), emit=3) == DONE
    assert not state.alive


def test_original_bug_a_fan_in_dead_end_does_not_skip_downstream() -> None:
    # T1 -> T2 -> T4, T1 -> T3 -> T4, T4 -> T5. T3 returns nothing while T2 still runs:
    # T5 must still handle T4's outputs before the message is done.
    edges = [("T1", "T2"), ("T1", "T3"), ("T2", "T4"), ("T3", "T4"), ("T4", "T5")]
    h = Harness(graph(["T1", "T2", "T3", "T4", "T5"], edges))
    h.tracker.start(SourceMsg("1", b"m"))
    assert h.handle(h.take("T1"), emit=1) == PROGRESS
    t2 = h.take("T2")
    assert h.handle(h.take("T3"), emit=0) == PROGRESS  # dead end while T2 is in flight
    assert not any(b[1] == h.g.index("T4") for b in h.queue)
    assert h.handle(t2, emit=2) == PROGRESS
    assert h.handle(h.take("T4"), emit=3) == PROGRESS  # T4 got T2's 2 outputs in one batch
    t5 = h.take("T5")
    assert len(t5[3]) == 6
    assert h.handle(t5, emit=0) == DONE
    assert h.calls == [1, 1, 1, 2, 6]


def test_original_bug_a_with_the_other_branch_dead() -> None:
    edges = [("T1", "T2"), ("T1", "T3"), ("T2", "T4"), ("T3", "T4"), ("T4", "T5")]
    h = Harness(graph(["T1", "T2", "T3", "T4", "T5"], edges))
    h.tracker.start(SourceMsg("1", b"m"))
    h.handle(h.take("T1"), emit=1)
    t3 = h.take("T3")
    assert h.handle(h.take("T2"), emit=0) == PROGRESS
    assert h.handle(t3, emit=1) == PROGRESS
    assert h.handle(h.take("T4"), emit=1) == PROGRESS
    assert h.handle(h.take("T5"), emit=0) == DONE


def test_dead_end_at_the_root_finishes_everything_below() -> None:
    h = Harness(graph(["a", "b", "c"], [("a", "b"), ("b", "c")]))
    state = h.tracker.start(SourceMsg("1", b"m"))
    assert h.handle(h.take("a"), emit=0) == DONE
    assert not h.queue
    assert state.remaining == 0


def test_empty_output_is_a_dead_end_not_a_hang() -> None:
    # The original hung on Ok(Some([])): an edge with zero expected acks never completed.
    h = Harness(graph(["a", "b"], [("a", "b")]))
    h.tracker.start(SourceMsg("1", b"m"))
    state, t, seq, bodies = h.take("a")
    assert h.tracker.handled(state, t, seq, len(bodies), []) == DONE


def test_stage_release_holds_outputs_until_the_task_is_complete() -> None:
    # a -> b, a -> c, b -> c: c's outputs wait until both its inputs are handled.
    h = Harness(graph(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]))
    h.tracker.start(SourceMsg("1", b"m"))
    h.handle(h.take("a"), emit=1)
    c_first = h.take("c")  # from a
    h.handle(c_first, emit=1)
    assert not any(b[1] == 3 for b in h.queue), "d must wait until c completes"
    h.handle(h.take("b"), emit=1)
    h.handle(h.take("c"), emit=1)  # from b
    d = h.take("d")
    assert len(d[3]) == 2  # both of c's outputs released at once
    assert h.handle(d, emit=0) == DONE


def test_stream_release_sends_outputs_at_once() -> None:
    h = Harness(graph(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")], "stream"))
    h.tracker.start(SourceMsg("1", b"m"))
    h.handle(h.take("a"), emit=1)
    h.handle(h.take("c"), emit=1)
    assert any(b[1] == 3 for b in h.queue), "stream mode releases c's first output at once"


def test_duplicate_and_stale_results_are_ignored() -> None:
    h = Harness(graph(["a", "b"], [("a", "b")]))
    h.tracker.start(SourceMsg("1", b"m"))
    a = h.take("a")
    assert h.handle(a, emit=2) == PROGRESS
    assert h.handle(a, emit=2) == IGNORED  # the same result delivered twice
    b = h.take("b")
    assert not h.queue, "the duplicate must not release outputs again"
    assert h.handle(b, emit=0) == DONE
    assert h.handle(b, emit=0) == IGNORED  # late result of a finished message


def test_batches_are_split_and_identified_by_sequence() -> None:
    h = Harness(graph(["a", "b"], [("a", "b")]), batch_size=3)
    h.tracker.start(SourceMsg("1", b"m"))
    h.handle(h.take("a"), emit=7)
    parts = [h.take("b") for _ in range(3)]
    assert [(p[2], len(p[3])) for p in parts] == [(0, 3), (3, 3), (6, 1)]
    assert h.handle(parts[2], emit=0) == PROGRESS
    assert h.handle(parts[2], emit=0) == IGNORED
    assert h.handle(parts[0], emit=0) == PROGRESS
    assert h.handle(parts[1], emit=0) == DONE


# -- property: random DAGs, random emit counts, random order, random duplicates -----------


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]], list[int]]:
    n = draw(st.integers(1, 7))
    names = [f"t{i}" for i in range(n)]
    edges: set[tuple[int, int]] = set()
    for j in range(1, n):
        edges.add((draw(st.integers(0, j - 1)), j))  # every task reachable from the root
        for i in range(j):
            if draw(st.booleans()) and draw(st.booleans()):
                edges.add((i, j))
    emits = [draw(st.integers(0, 3)) for _ in range(n)]
    return names, [(names[a], names[b]) for a, b in sorted(edges)], emits


def expected_calls(g: Graph, emits: list[int]) -> list[int]:
    calls = [0] * len(g)
    calls[0] = 1
    for t in g.order:
        for d in g.descendants[t]:
            calls[d] += calls[t] * emits[t]
    return calls


@settings(max_examples=300, deadline=None)
@given(
    dag=dags(),
    release=st.sampled_from(["stage", "stream"]),
    seed=st.integers(0, 2**32),
    batch=st.integers(1, 4),
)
def test_random_dags_handle_exactly_what_the_graph_says(
    dag: tuple[list[str], list[tuple[str, str]], list[int]], release: str, seed: int, batch: int
) -> None:
    names, edges, emits = dag
    g = graph(names, edges, release)
    h = Harness(g, batch_size=batch)
    rng = random.Random(seed)
    msgs = [h.tracker.start(SourceMsg(str(i), b"m")) for i in range(3)]
    done: list[str] = []
    handled: list[Batch] = []
    while h.queue:
        b = h.queue[rng.randrange(len(h.queue))]
        h.queue.remove(b)
        status = h.handle(b, emits[b[1]])
        handled.append(b)
        if status == DONE:
            done.append(b[0].msg.id)
            assert not any(q[0] is b[0] for q in h.queue), "done while work of it is still queued"
        if handled and rng.random() < 0.2:  # a duplicate result of something already handled
            dup = rng.choice(handled)
            state, t, seq, bodies = dup
            assert h.tracker.handled(state, t, seq, len(bodies), [b"x"] * emits[t] * len(bodies)) == IGNORED
    assert sorted(done) == ["0", "1", "2"], "every message done exactly once"
    assert all(not s.alive and s.remaining == 0 for s in msgs)
    assert h.calls == [3 * c for c in expected_calls(g, emits)]
