"""C1, C2, C4: slow tasks, poison messages and the failure-policy matrix, in real processes."""

from __future__ import annotations

from reliability.lab import Lab
from reliability.scenarios import policy

from .conftest import passed


def test_c2_poison_message_retried_three_times_then_dead_lettered(lab: Lab) -> None:
    passed(policy.c2_poison(lab, True))


def test_c1_slow_task_times_out_near_its_deadline_without_delaying_others(lab: Lab) -> None:
    passed(policy.c1_slow_task(lab, True))


def test_c4_policy_matrix_matches_the_design(lab: Lab) -> None:
    passed(policy.c4_matrix(lab, True))
