"""B1, B3, B4, B5, B6: the source's Redis restarts, loses everything, is down at start,
hangs (SIGSTOP), or its connections are cut, delayed and black-holed."""

from __future__ import annotations

import pytest

from reliability.lab import Lab
from reliability.redis_server import available
from reliability.scenarios import redis

from .conftest import passed

pytestmark = pytest.mark.skipif(not available(), reason="redis-server is not installed")


def test_b1_redis_restart_with_aof_resumes_without_loss(lab: Lab) -> None:
    passed(redis.b1_restart_aof(lab, True))


def test_b3_redis_restart_without_persistence_recreates_the_group_once(lab: Lab) -> None:
    passed(redis.b3_restart_empty(lab, True))


def test_b4_redis_down_at_start_is_waited_for(lab: Lab) -> None:
    passed(redis.b4_down_at_start(lab, True))


def test_b5_redis_paused_past_the_socket_timeout_hangs_nothing(lab: Lab) -> None:
    passed(redis.b5_paused(lab, True))


def test_b6_cut_delayed_and_black_holed_connections_lose_nothing(lab: Lab) -> None:
    passed(redis.b6_proxy_faults(lab, True))
