"""Redis dead letters, and listing / requeueing / purging them (library and CLI)."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from click.testing import CliRunner

from pytempest import ConfigError, DeadLetterError, SourceConnectionError
from pytempest.cli.main import cli
from pytempest.deadletters import DeadLetterRecord, RedisListDeadLetter, RedisStreamDeadLetter
from pytempest.deadletters.admin import list_entries, purge, requeue
from pytempest.deadletters.base import DeadLetter
from pytempest.sources import RedisStreamSource

from .helpers import free_port


def record(body: bytes, source: str, n: int = 3, task: str | None = "parse") -> DeadLetterRecord:
    return DeadLetterRecord(
        topology="orders",
        source=source,
        source_id=f"1-{n}",
        body=body,
        task=task,
        error="ValueError: bad input",
        reason="error",
        attempts=n,
        first_failure_ms=1000 + n,
        last_failure_ms=2000 + n,
    )


def put(dead_letter: DeadLetter, records: list[DeadLetterRecord]) -> None:
    async def scenario() -> None:
        await dead_letter.setup()
        await dead_letter.setup()  # idempotent: a source and the engine may both call it
        try:
            await dead_letter.put(records)
        finally:
            await dead_letter.close()
            await dead_letter.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["stream", "list"])
def test_records_round_trip_with_every_field(redis_url: str, key_prefix: str, kind: str) -> None:
    key = f"{key_prefix}:dlq"
    records = [record(b"\xff\x00 binary", "redis_stream:in", 3), record(b"text", "file:/x", 1, task=None)]
    dead_letter = (
        RedisStreamDeadLetter(redis_url, key) if kind == "stream" else RedisListDeadLetter(redis_url, key)
    )
    put(dead_letter, records)
    assert [e.record for e in list_entries(redis_url, key)] == records


def test_max_len_bounds_the_dead_letters(redis_url: str, key_prefix: str, r: redis.Redis) -> None:
    many = [record(b"x%d" % i, "redis_stream:in", i) for i in range(1000)]
    put(RedisStreamDeadLetter(redis_url, f"{key_prefix}:s", max_len=10), many)
    put(RedisListDeadLetter(redis_url, f"{key_prefix}:l", max_len=10), many)
    assert 10 <= r.xlen(f"{key_prefix}:s") < 1000  # approximate (MAXLEN ~)
    assert [e.record.body for e in list_entries(redis_url, f"{key_prefix}:l")] == [
        b"x%d" % i for i in range(990, 1000)
    ]


def test_a_put_that_cannot_reach_redis_raises_without_the_password() -> None:
    dead_letter = RedisStreamDeadLetter(f"redis://u:pw-secret@127.0.0.1:{free_port()}/0", "dlq")

    async def scenario() -> None:
        try:
            await dead_letter.put([record(b"x", "redis_stream:in")])
        finally:
            await dead_letter.close()

    with pytest.raises(DeadLetterError) as info:
        asyncio.run(scenario())
    assert "pw-secret" not in str(info.value) and "u:***@" in str(info.value)
    with pytest.raises(ConfigError, match="max_len"):
        RedisListDeadLetter("redis://127.0.0.1", "k", max_len=0)


def test_requeue_one_some_or_all_back_to_their_sources(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    dlq, stream, queue, zset = (f"{key_prefix}:{n}" for n in ("dlq", "in", "q", "z"))
    put(
        RedisStreamDeadLetter(redis_url, dlq),
        [record(b"s1", f"redis_stream:{stream}"), record(b"s2", f"redis_stream:{stream}"),
         record(b"l1", f"redis_list:{queue}"), record(b"z1", f"redis_sorted_set:{zset}"),
         record(b"f1", "file:/data/in.txt")],
    )  # fmt: skip
    entries = {e.record.body: e.entry_id for e in list_entries(redis_url, dlq)}

    one = requeue(redis_url, dlq, [entries[b"s1"]])
    assert one.requeued == [(entries[b"s1"], f"stream:{stream}")] and not one.missing
    some = requeue(redis_url, dlq, [entries[b"l1"], entries[b"z1"], "0-1"])
    assert [t for _, t in some.requeued] == [f"list:{queue}", f"zset:{zset}"] and some.missing == ["0-1"]
    rest = requeue(redis_url, dlq, all_entries=True)
    assert rest.requeued == [(entries[b"s2"], f"stream:{stream}")]
    assert rest.skipped == [
        (entries[b"f1"], "its source 'file:/data/in.txt' is not a Redis source: give to= and to_kind=")
    ]

    assert [f[b"body"] for _, f in r.xrange(stream)] == [b"s1", b"s2"]
    assert r.lrange(queue, 0, -1) == [b"l1"] and r.zrange(zset, 0, -1) == [b"z1"]
    assert [e.record.body for e in list_entries(redis_url, dlq)] == [b"f1"]
    elsewhere = requeue(redis_url, dlq, all_entries=True, to=queue, to_kind="list")
    assert len(elsewhere.requeued) == 1 and r.lrange(queue, 0, -1) == [b"f1", b"l1"]
    assert not r.exists(dlq) or r.xlen(dlq) == 0


def test_a_requeued_message_is_read_again_by_its_source(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    dlq, stream = f"{key_prefix}:dlq", f"{key_prefix}:in"
    put(RedisListDeadLetter(redis_url, dlq), [record(b"retry me", f"redis_stream:{stream}")])
    [entry] = list_entries(redis_url, dlq)
    assert entry.entry_id.startswith("h:")
    requeue(redis_url, dlq, [entry.entry_id])

    async def read() -> list[bytes]:
        source = RedisStreamSource(redis_url, stream, "g", consumer="c1", block_ms=0)
        await source.setup()
        try:
            return [m.body for m in await source.poll(10)]
        finally:
            await source.close()

    assert asyncio.run(read()) == [b"retry me"]
    assert not r.exists(dlq)


def test_purge_and_the_errors_of_the_admin_functions(redis_url: str, key_prefix: str, r: redis.Redis) -> None:
    dlq = f"{key_prefix}:dlq"
    put(RedisListDeadLetter(redis_url, dlq), [record(b"a", "x:y"), record(b"b", "x:y"), record(b"c", "x:y")])
    entries = list_entries(redis_url, dlq)
    assert purge(redis_url, dlq, [entries[0].entry_id]) == 1
    assert [e.record.body for e in list_entries(redis_url, dlq)] == [b"b", b"c"]
    assert purge(redis_url, dlq, all_entries=True) == 2 and not r.exists(dlq)

    with pytest.raises(DeadLetterError, match="does not exist"):
        list_entries(redis_url, dlq)
    r.set(f"{key_prefix}:str", "x")
    with pytest.raises(DeadLetterError, match="is a string, not a dead letter"):
        list_entries(redis_url, f"{key_prefix}:str")
    with pytest.raises(SourceConnectionError):
        list_entries(f"redis://127.0.0.1:{free_port()}/0", dlq)
    put(RedisListDeadLetter(redis_url, dlq), [record(b"a", "x:y")])
    with pytest.raises(ConfigError, match="either entry ids or all"):
        requeue(redis_url, dlq)


def test_the_deadletter_command(redis_url: str, key_prefix: str, r: redis.Redis) -> None:
    dlq, stream = f"{key_prefix}:dlq", f"{key_prefix}:in"
    put(
        RedisStreamDeadLetter(redis_url, dlq),
        [record(b"one", f"redis_stream:{stream}"), record(b"two", "file:/x")],
    )
    runner = CliRunner()
    base = ["--redis", redis_url, "--key", dlq]

    listed = runner.invoke(cli, ["deadletter", "list", *base])
    assert listed.exit_code == 0, listed.output
    assert (
        "attempts=3" in listed.output
        and "body:  one" in listed.output
        and "ValueError: bad input" in listed.output
    )
    as_json = runner.invoke(cli, ["deadletter", "list", *base, "--json"])
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(row["body"], row["attempts"]) for row in rows] == [("one", 3), ("two", 3)]

    partly = runner.invoke(cli, ["deadletter", "requeue", *base, "--all"])
    assert partly.exit_code == 1  # "two" has no Redis source
    assert f"-> stream:{stream}" in partly.output and "skipped" in partly.output
    assert runner.invoke(cli, ["deadletter", "requeue", *base, rows[0]["entry_id"], "--all"]).exit_code == 2
    assert runner.invoke(cli, ["deadletter", "purge", *base, "--all", "--yes"]).exit_code == 0
    assert not r.exists(dlq) and r.xlen(stream) == 1
    unreachable = runner.invoke(
        cli, ["deadletter", "list", "--redis", f"redis://127.0.0.1:{free_port()}", "--key", dlq]
    )
    assert unreachable.exit_code == 3
    assert runner.invoke(cli, ["deadletter", "list", *base]).exit_code == 1  # gone
