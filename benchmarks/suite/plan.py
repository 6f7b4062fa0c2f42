"""How big each workload is for each system, in a full run and in a quick one."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Plan:
    """Sizes and settings of one suite run.

    ``sizes[workload]`` maps a system to its number of source messages; systems not
    listed use ``"*"``. Celery and Dramatiq get smaller ``n`` (they run at a few hundred
    to a few thousand tasks per second); their figures are per second all the same.
    """

    rounds: int = 3
    sizes: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            "W1": {"*": 200_000, "dramatiq": 10_000, "celery": 3_000},
            "W2": {"*": 10_000, "dramatiq": 100, "celery": 30},
            "W4": {"*": 10_000},
        }
    )
    rates: tuple[int, ...] = (2000, 200)
    """W3: messages per second the producer adds."""
    seconds: int = 10
    """W3: how long the producer runs at each rate."""
    workers: tuple[int, ...] = (1, 2, 4)
    """W5: worker processes of the distributed runtime (on W1 and W2)."""

    def n(self, workload: str, system: str) -> int:
        sizes = self.sizes[workload]
        return sizes.get(system, sizes["*"])


FULL = Plan()

QUICK = Plan(
    rounds=1,
    sizes={
        "W1": {"*": 2_000, "dramatiq": 200, "celery": 100},
        "W2": {"*": 100, "dramatiq": 10, "celery": 5},
        "W4": {"*": 1_000},
    },
    rates=(200,),
    seconds=1,
    workers=(1, 2),
)
"""A run of a minute or two that exercises every path (the smoke test and ``--quick``)."""
