"""The end-of-run summary printed by ``pytempest run`` and ``pytempest test``."""

from __future__ import annotations

from collections.abc import Mapping


def format_summary(topology: str, metrics: Mapping[str, float], task_names: list[str]) -> str:
    """A small table: source totals, then one row per task."""
    p = topology + "."

    def v(key: str) -> int:
        return int(metrics.get(p + key, 0))

    lines = [
        f"topology {topology}",
        f"  read {v('source.msg.read')}  acked {v('source.msg.acked.success')}  "
        f"completed {v('topology.source.msg.ack')}  errors {v('topology.source.msg.error')}  "
        f"timeouts {v('topology.source.msg.timeout')}  retried {v('topology.source.msg.retry.queued')}  "
        f"dead-lettered {v('topology.source.msg.deadletter')}  dropped {v('topology.source.msg.retry.dropped')}  "
        f"in flight {v('pipeline.inflight')}",
    ]
    width = max([len(n) for n in task_names] + [4])
    lines.append(
        f"  {'task':<{width}}  {'handled':>9}  {'skipped':>8}  {'outflow':>9}  {'errors':>7}  {'p99 ms':>8}"
    )
    for name in task_names:
        q = f"{name}.task."
        lines.append(
            f"  {name:<{width}}  {v(q + 'msg.handle'):>9}  {v(q + 'msg.skipped'):>8}  "
            f"{v(q + 'msg.outflow'):>9}  {v(q + 'msg.error'):>7}  {metrics.get(p + q + 'handle.p99_ms', 0):>8.3f}"
        )
    return "\n".join(lines)
