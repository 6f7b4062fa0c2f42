"""Property: for random DAGs, emit counts and poison messages, the whole engine (on both
paths: per-batch tracking and the cohort fast path) handles exactly what the graph says,
fails each poisoned message once, and acks every source message exactly once."""

from __future__ import annotations

import threading
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from pytempest import AckPolicy, FailurePolicy, Pipeline, Task, TestRun, Topology
from pytempest.sources import MemorySource

from .test_completion import dags, expected_calls


class Counting(Task):
    """Emits ``n`` copies of its input, counts calls per body, raises on poisoned bodies."""

    def __init__(self, name: str, n: int, poison: frozenset[bytes], threaded: bool) -> None:
        self.name = name
        self.n = n
        self.poison = poison
        self.threaded = threaded
        self.calls: Counter[bytes] = Counter()
        self._lock = threading.Lock()

    def handle(self, body: bytes) -> list[bytes] | None:
        with self._lock:
            self.calls[body] += 1
        if body in self.poison:
            raise ValueError(f"poisoned {body!r}")
        return [body] * self.n if self.n else None


@settings(max_examples=60, deadline=None)
@given(
    dag=dags(),
    release=st.sampled_from(["stage", "stream"]),
    n_msgs=st.integers(1, 30),
    max_pending=st.integers(1, 8),
    batched=st.booleans(),
    cohorts=st.booleans(),
    threaded_task=st.sampled_from([None, 0, 1]),
    failing=st.sampled_from([None, 0, 1, 2]),
)
def test_random_topologies(
    dag: tuple[list[str], list[tuple[str, str]], list[int]],
    release: str,
    n_msgs: int,
    max_pending: int,
    batched: bool,
    cohorts: bool,
    threaded_task: int | None,
    failing: int | None,
) -> None:
    names, edges, emits = dag
    bodies = [b"m%d" % i for i in range(n_msgs)]
    poison = frozenset(bodies[::3]) if failing is not None and failing < len(names) else frozenset()
    tasks = [
        Counting(n, e, poison if i == failing else frozenset(), threaded=i == threaded_task)
        for i, (n, e) in enumerate(zip(names, emits, strict=True))
    ]
    pipeline = Pipeline(release=release)  # type: ignore[arg-type]
    for t in tasks:
        pipeline.task(t)
    for a, b in edges:
        pipeline.edge(a, b)
    policy = AckPolicy.batch(5, ack_interval_ms=5) if batched else AckPolicy.individual()
    source = MemorySource(bodies, ack_policy=policy)
    topology = Topology(
        "prop", pipeline, source, max_pending=max_pending, failure_policy=FailurePolicy.best_effort()
    )
    metrics = TestRun(topology, cohorts=cohorts).run(timeout_ms=20_000)
    graph = pipeline.build()
    per_msg = expected_calls(graph, emits)
    reached = [c > 0 for c in per_msg]
    for i, task in enumerate(tasks):
        for body in bodies:
            if body in poison:
                continue
            assert task.calls[body] == per_msg[i], (task.name, body)
    failed = [b for b in bodies if b in poison and reached[failing or 0]]
    assert metrics["prop.topology.source.msg.error"] == len(failed)
    assert metrics["prop.topology.source.msg.ack"] == n_msgs - len(failed)
    assert Counter(source.acked) == Counter(str(i) for i in range(n_msgs))
    assert metrics["prop.pipeline.inflight"] == 0
