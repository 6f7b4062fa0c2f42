"""A1, A2, A3, C3: processes killed by SIGKILL, by the harness or by themselves."""

from __future__ import annotations

from reliability.lab import Lab
from reliability.scenarios import crash

from .conftest import passed


def test_a2_topology_killed_and_restarted_acks_everything(lab: Lab) -> None:
    passed(crash.a2_topology_killed(lab, True))


def test_a3_sigkill_at_every_failpoint_loses_nothing(lab: Lab) -> None:
    passed(crash.a3_failpoints(lab, True))


def test_a1_worker_killed_mid_batch_is_claimed_and_bounded(lab: Lab) -> None:
    passed(crash.a1_worker_killed(lab, True))


def test_c3_message_that_kills_the_topology_process_ends_dead_lettered(lab: Lab) -> None:
    passed(crash.c3_inprocess(lab, True))


def test_c3_message_that_kills_every_worker_is_dead_lettered_after_max_deliveries(lab: Lab) -> None:
    passed(crash.c3_crashing_message(lab, True))
