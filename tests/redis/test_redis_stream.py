"""RedisStreamSource against the real Redis: reading, acking, options, errors, credentials."""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter

import pytest
import redis

from pytempest import AckPolicy, ConfigError, Pipeline, SourceConnectionError, SourceError, TestRun, Topology
from pytempest.sources import PendingHandler, RedisStreamSource
from pytempest.sources.redis_stream import prime

from .helpers import Recorder, bind_metrics, free_port, run_until

N = 10_000


@pytest.mark.parametrize("policy", ["individual", "batch(500, ack_interval_ms=20)", "none"])
def test_every_entry_is_processed_and_acked_exactly_once(
    redis_url: str, key_prefix: str, r: redis.Redis, policy: str
) -> None:
    key = f"{key_prefix}:s"
    bodies = [b"m%05d" % i for i in range(N)]
    prime(redis_url, key, bodies)
    record = Recorder()
    source = RedisStreamSource(redis_url, key, "g", consumer="c1", block_ms=20, ack_policy=policy)
    metrics = TestRun(Topology("once", Pipeline().task(record), source)).run(timeout_ms=60_000)

    assert metrics.reason == "idle"
    assert record.seen == Counter(bodies)  # every body, each exactly once
    assert r.xpending(key, "g")["pending"] == 0
    group = r.xinfo_groups(key)[0]
    assert group["entries-read"] == N and group["lag"] == 0
    assert metrics.get_int("once.source.msg.read") == N
    assert metrics.get_int("once.source.msg.acked.success") == (0 if policy == "none" else N)
    assert metrics.get_int("once.source.msg.acked.error") == 0
    assert metrics.get_int("once.topology.source.msg.duplicate") == 0


def test_a_restarted_consumer_first_reads_its_own_pending_entries(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:s"
    prime(redis_url, key, [b"a%d" % i for i in range(8)])

    async def scenario() -> None:
        first = RedisStreamSource(redis_url, key, "g", consumer="c1", block_ms=0)
        await first.setup()
        taken = await first.poll(5)  # then the process "dies": nothing acked
        await first.close()
        again = RedisStreamSource(redis_url, key, "g", consumer="c1", block_ms=0)
        await again.setup()
        try:
            old = await again.poll(100)
            new = await again.poll(100)
            assert [m.id for m in old] == [m.id for m in taken]
            assert [m.deliveries for m in old] == [2] * 5
            assert [m.body for m in new] == [b"a5", b"a6", b"a7"]
            assert [m.deliveries for m in new] == [1, 1, 1]
            await again.ack([m.id for m in old + new])
            assert await again.poll(100) == []
        finally:
            await again.close()

    asyncio.run(scenario())
    assert r.xpending(key, "g")["pending"] == 0


def test_other_fields_are_in_meta_and_a_missing_body_field_is_counted(
    redis_url: str, key_prefix: str
) -> None:
    key = f"{key_prefix}:s"
    prime(redis_url, key, [{"body": "hello", "user": "7"}, {"payload": b"\xff"}, b"plain"])

    async def scenario() -> None:
        source = RedisStreamSource(redis_url, key, "g", consumer="c1", block_ms=0)
        registry = bind_metrics(source)
        await source.setup()
        try:
            msgs = await source.poll(10)
        finally:
            await source.close()
        assert [(m.body, m.meta) for m in msgs] == [
            (b"hello", {"user": b"7"}),
            (b"", {"payload": b"\xff"}),
            (b"plain", None),
        ]
        assert registry.snapshot()["t.source.msg.no_body"] == 1

    asyncio.run(scenario())


def test_poll_asks_for_no_more_than_the_engine_has_room_for(redis_url: str, key_prefix: str) -> None:
    key = f"{key_prefix}:s"
    prime(redis_url, key, [b"x"] * 30)

    async def scenario() -> None:
        source = RedisStreamSource(
            redis_url, key, "g", consumer="c1", block_ms=0, read_count=10, prefetch=False
        )
        await source.setup()
        try:
            assert len(await source.poll(4)) == 4
            assert len(await source.poll(100)) == 10
            assert await source.poll(0) == []
        finally:
            await source.close()

    asyncio.run(scenario())


def test_prefetched_entries_are_served_next_and_stay_pending_if_never_served(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:s"
    ids = prime(redis_url, key, [b"p%d" % i for i in range(12)])

    async def scenario() -> None:
        source = RedisStreamSource(redis_url, key, "g", consumer="c1", block_ms=0)
        await source.setup()
        try:
            first = await source.poll(3)  # a full read: it reads the next 3 in the background
            second = await source.poll(10)  # those 3, a short read: no read-ahead after it
            assert [m.id for m in first + second] == ids[:6]
            await source.ack([m.id for m in first + second])
            await source.poll(3)
            await asyncio.sleep(0.2)  # the read-ahead of the next 3 lands
        finally:
            await source.close()  # 3 handed out, 3 more read ahead: all 6 stay pending
        again = RedisStreamSource(redis_url, key, "g", consumer="c1", block_ms=0)
        await again.setup()
        try:
            old = await again.poll(100)
            assert [m.id for m in old] == ids[6:12]
        finally:
            await again.close()

    asyncio.run(scenario())


def test_gauges_report_pending_entries_and_lag(redis_url: str, key_prefix: str) -> None:
    key = f"{key_prefix}:s"
    prime(redis_url, key, [b"x"] * 25)

    async def scenario() -> dict[str, float]:
        source = RedisStreamSource(redis_url, key, "g", consumer="c1", block_ms=0, pending_handlers=[])
        registry = bind_metrics(source)
        await source.setup()
        try:
            await source.poll(10)
            await source.monitor()
        finally:
            await source.close()
        return registry.snapshot()

    snapshot = asyncio.run(scenario())
    assert snapshot["t.source.pending"] == 10
    assert snapshot["t.source.lag"] == 15


def test_a_deleted_group_is_created_again_and_counted(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:s"
    prime(redis_url, key, [b"a", b"b"])

    async def scenario() -> dict[str, float]:
        source = RedisStreamSource(redis_url, key, "g", consumer="c1", block_ms=0)
        registry = bind_metrics(source)
        await source.setup()
        try:
            await source.ack([m.id for m in await source.poll(10)])
            r.xgroup_destroy(key, "g")
            prime(redis_url, key, [b"c"])
            assert await source.poll(10) == []  # NOGROUP: the group is made again at group_start_id
            again = await source.poll(10)
            assert [m.body for m in again] == [b"a", b"b", b"c"]  # group_start_id 0: the whole stream
        finally:
            await source.close()
        return registry.snapshot()

    assert asyncio.run(scenario())["t.source.group.recreated"] == 1


def test_max_len_trims_only_what_every_group_acked(redis_url: str, key_prefix: str, r: redis.Redis) -> None:
    key = f"{key_prefix}:s"
    ids = prime(redis_url, key, [b"x%d" % i for i in range(600)])
    r.xgroup_create(key, "idle-group", "0")  # has read nothing: nothing may go

    async def scenario() -> None:
        source = RedisStreamSource(
            redis_url, key, "g", consumer="c1", block_ms=0, max_len=100, pending_handlers=[]
        )
        await source.setup()
        try:
            msgs = [m for _ in range(6) for m in await source.poll(100)]
            await source.ack([m.id for m in msgs[:450]])  # 150 stay pending
            await source.monitor()
            assert r.xlen(key) == 600
            r.xgroup_destroy(key, "idle-group")
            await source.monitor()
        finally:
            await source.close()

    asyncio.run(scenario())
    left = [i.decode() for i, _ in r.xrange(key)]
    assert len(left) < 600
    assert set(ids[450:]) <= set(left)  # every unacked entry is still there
    assert left == ids[len(ids) - len(left) :]  # only the oldest went


def test_options_are_checked_before_any_io(redis_url: str) -> None:
    def make(**options: object) -> RedisStreamSource:
        return RedisStreamSource(redis_url, "k", "g", **options)  # type: ignore[arg-type]

    for options, name in [
        ({"read_count": 0}, "read_count"),
        ({"block_ms": "100"}, "block_ms"),
        ({"max_backoff_ms": -1}, "max_backoff_ms"),
        ({"ack_policy": "batch(x)"}, "ack_policy"),
        ({"ack_policy": 3}, "ack_policy"),
        ({"pending_handlers": [{"action": "explode"}]}, "action"),
        ({"pending_handlers": [{"action": "claim", "min_idle": 5}]}, "min_idle"),
        ({"pending_handlers": {"action": "claim"}}, "pending_handlers"),
        ({"max_len": 0}, "max_len"),
        ({"consumer": ""}, "consumer"),
    ]:
        with pytest.raises(ConfigError, match=name):
            make(**options)
    with pytest.raises(ConfigError, match="redis://"):
        RedisStreamSource("http://127.0.0.1:6379", "k", "g")
    with pytest.raises(ConfigError, match="'group'"):
        RedisStreamSource(redis_url, "k", "")


def test_policies_and_handlers_come_as_objects_strings_or_toml_tables(redis_url: str) -> None:
    source = RedisStreamSource(
        redis_url,
        "k",
        "g",
        ack_policy={"type": "Batch", "value": 50},  # type: ignore[arg-type]
        pending_handlers=[
            {"action": {"type": "Delete"}, "min_idle_time": 5000, "times_delivered": 4},
            {"action": "claim", "min_idle_ms": 1000},
            PendingHandler("ack", min_idle_ms=7),
        ],
    )
    assert source.ack_policy == AckPolicy.batch(50, 100)
    assert source.pending_handlers == (
        PendingHandler("delete", 5000, 4),
        PendingHandler("claim", 1000, 1),
        PendingHandler("ack", 7, 1),
    )
    assert (
        RedisStreamSource(redis_url, "k", "g", ack_policy="individual").ack_policy == AckPolicy.individual()
    )


def test_config_aliases_name_constructor_arguments() -> None:
    parameters = inspect.signature(RedisStreamSource).parameters
    assert RedisStreamSource.kind == "redis_stream"
    for original, ours in RedisStreamSource.config_aliases.items():
        assert ours in parameters, (original, ours)
    assert RedisStreamSource.config_aliases["uri"] == "url"
    assert RedisStreamSource.config_aliases["group_starting_id"] == "group_start_id"
    assert PendingHandler.config_aliases["min_idle_time"] == "min_idle_ms"


def test_setup_without_redis_is_a_connection_error_without_the_password() -> None:
    url = f"redis://someone:s3cret-pw@127.0.0.1:{free_port()}/0"
    source = RedisStreamSource(url, "k", "g")

    async def scenario() -> None:
        try:
            await source.setup()
        finally:
            await source.close()

    with pytest.raises(SourceConnectionError) as info:
        asyncio.run(scenario())
    assert "s3cret-pw" not in str(info.value) and "someone:***@127.0.0.1" in str(info.value)
    assert not source.healthy()


def test_an_acl_user_reads_and_acks(
    redis_url: str, key_prefix: str, r: redis.Redis, acl_user: tuple[str, str]
) -> None:
    user, password = acl_user
    key = f"{key_prefix}:s"
    prime(redis_url, key, [b"a", b"b"])
    url = redis_url.replace("redis://", f"redis://{user}:{password}@")

    async def scenario() -> None:
        source = RedisStreamSource(url, key, "g", consumer="c1", block_ms=0)
        await source.setup()
        try:
            await source.ack([m.id for m in await source.poll(10)])
            assert source.healthy()
        finally:
            await source.close()

    asyncio.run(scenario())
    assert r.xpending(key, "g")["pending"] == 0


@pytest.mark.parametrize("wrong", ["password", "key"])
def test_refused_credentials_are_a_clear_error_naming_the_url_without_the_password(
    redis_url: str, key_prefix: str, acl_user: tuple[str, str], wrong: str
) -> None:
    user, password = acl_user
    given = "not-" + password if wrong == "password" else password
    key = f"{key_prefix}:s" if wrong == "password" else "someone-elses-key"
    url = redis_url.replace("redis://", f"redis://{user}:{given}@")
    source = RedisStreamSource(url, key, "g", consumer="c1")

    async def scenario() -> None:
        try:
            await source.setup()
        finally:
            await source.close()

    with pytest.raises(SourceError) as info:
        asyncio.run(scenario())
    text = str(info.value)
    assert not isinstance(info.value, SourceConnectionError)  # the engine must not wait for it
    assert given not in text and f"{user}:***@127.0.0.1" in text
    assert "refused the credentials" in text and key in text


def test_batch_acks_reach_redis_while_the_topology_runs(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    key = f"{key_prefix}:s"
    prime(redis_url, key, [b"x"] * 10)  # far fewer than the batch size: the interval flushes them
    source = RedisStreamSource(
        redis_url, key, "g", consumer="c1", block_ms=20, ack_policy="batch(1000, ack_interval_ms=50)"
    )
    topology = Topology("acks", Pipeline().task(Recorder()), source)

    def acked(engine: object) -> bool:
        groups = r.xinfo_groups(key)  # empty until the source created its group
        return bool(groups) and groups[0]["entries-read"] == 10 and groups[0]["pending"] == 0

    asyncio.run(run_until(topology, acked, timeout_s=10))
