"""What every source promises (see pytempest.sources.base): run against each source kind.

To add a source kind, add a factory to ``FACTORIES``: it gets the bodies to serve and the
test's tmp path and returns a source that has not been set up yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from pytempest.model.message import SourceMsg
from pytempest.sources import FileSource, MemorySource, Source

Factory = Callable[[list[bytes], Path], Source]


def memory(bodies: list[bytes], tmp: Path) -> Source:
    return MemorySource(bodies)


def file(bodies: list[bytes], tmp: Path) -> Source:
    path = tmp / "contract.txt"
    path.write_bytes(b"".join(b + b"\n" for b in bodies))
    return FileSource(path)


FACTORIES: dict[str, Factory] = {"memory": memory, "file": file}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Factory:
    return FACTORIES[request.param]


async def drain(source: Source, max_count: int, polls: int = 50) -> list[SourceMsg]:
    out: list[SourceMsg] = []
    for _ in range(polls):
        got = await source.poll(max_count)
        assert len(got) <= max_count
        if not got and out:
            break
        out.extend(got)
    return out


def test_poll_serves_every_message_once_within_max_count(factory: Factory, tmp_path: Path) -> None:
    bodies = [b"m%d" % i for i in range(25)]

    async def scenario() -> list[SourceMsg]:
        source = factory(bodies, tmp_path)
        await source.setup()
        try:
            return await drain(source, 4)
        finally:
            await source.close()

    msgs = asyncio.run(scenario())
    assert sorted(m.body for m in msgs) == sorted(bodies)
    assert len({m.id for m in msgs}) == len(msgs)
    assert all(m.deliveries == 1 and m.read_at > 0 for m in msgs)


def test_ack_is_idempotent_and_tolerates_unknown_ids(factory: Factory, tmp_path: Path) -> None:
    async def scenario() -> None:
        source = factory([b"a", b"b"], tmp_path)
        await source.setup()
        try:
            msgs = await drain(source, 10)
            ids = [m.id for m in msgs]
            await source.ack(ids)
            await source.ack(ids)
            await source.ack(["999999"])
            assert await source.poll(10) == []
        finally:
            await source.close()

    asyncio.run(scenario())


def test_released_messages_come_back_with_one_more_delivery(factory: Factory, tmp_path: Path) -> None:
    async def scenario() -> None:
        source = factory([b"a", b"b"], tmp_path)
        await source.setup()
        try:
            msgs = await drain(source, 10)
            await source.release(msgs[:1])
            again = await drain(source, 10)
            assert [m.body for m in again] == [msgs[0].body]
            assert again[0].deliveries == msgs[0].deliveries + 1
            assert again[0].id == msgs[0].id
        finally:
            await source.close()

    asyncio.run(scenario())


def test_healthy_and_describe_are_cheap(factory: Factory, tmp_path: Path) -> None:
    source = factory([b"a"], tmp_path)
    assert isinstance(source.healthy(), bool)
    assert isinstance(source.describe(), str) and source.describe()
