"""Fixtures of the Redis source tests: a redis-server of our own, ACL users, helpers."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .helpers import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (AOF on) that a test may stop and start again."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop_for_good()


@pytest.fixture
def acl_user(redis_url: str, key_prefix: str) -> Iterator[tuple[str, str]]:
    """(user, password) of a fresh ACL user allowed on the test's keys only; deleted after."""
    user = f"pt-user-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    client = redis.Redis.from_url(redis_url)
    try:
        client.execute_command(
            "ACL", "SETUSER", user, "reset", "on", f">{password}", f"~*{key_prefix}*", "+@all"
        )
        yield user, password
    finally:
        client.execute_command("ACL", "DELUSER", user)
        client.close()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client on the test Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()
