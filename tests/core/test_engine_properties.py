"""Property: for random DAGs and emit counts, the whole engine handles exactly what the
graph says and acks every source message exactly once."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from pytempest import AckPolicy, Pipeline, TestRun, Topology
from pytempest.sources import MemorySource

from .helpers import Emit
from .test_completion import dags, expected_calls


@settings(max_examples=40, deadline=None)
@given(
    dag=dags(),
    release=st.sampled_from(["stage", "stream"]),
    n_msgs=st.integers(1, 30),
    max_pending=st.integers(1, 8),
    batched=st.booleans(),
)
def test_random_topologies(
    dag: tuple[list[str], list[tuple[str, str]], list[int]],
    release: str,
    n_msgs: int,
    max_pending: int,
    batched: bool,
) -> None:
    names, edges, emits = dag
    tasks = [Emit(n, e) for n, e in zip(names, emits, strict=True)]
    pipeline = Pipeline(release=release)  # type: ignore[arg-type]
    for t in tasks:
        pipeline.task(t)
    for a, b in edges:
        pipeline.edge(a, b)
    policy = AckPolicy.batch(5, ack_interval_ms=5) if batched else AckPolicy.individual()
    source = MemorySource([b"m"] * n_msgs, ack_policy=policy)
    metrics = TestRun(Topology("prop", pipeline, source, max_pending=max_pending)).run(timeout_ms=20_000)
    per_msg = expected_calls(pipeline.build(), emits)
    assert [t.calls for t in tasks] == [c * n_msgs for c in per_msg]
    assert Counter(source.acked) == Counter(str(i) for i in range(n_msgs))
    assert metrics["prop.pipeline.inflight"] == 0
