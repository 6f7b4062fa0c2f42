"""D1: SIGTERM with work in flight; D2 (short): a slow task under ten times its load."""

from __future__ import annotations

from reliability.lab import Lab
from reliability.scenarios import shutdown

from .conftest import passed


def test_d1_sigterm_finishes_in_flight_work_and_leaves_the_rest(lab: Lab) -> None:
    passed(shutdown.d1_sigterm(lab, True))


def test_d2_overload_stays_within_max_pending_and_memory_plateaus(lab: Lab) -> None:
    passed(shutdown.d2_overload(lab, True))
