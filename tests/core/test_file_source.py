"""FileSource: lines as messages, a checkpoint so a restart resumes in order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pytempest import AckPolicy, FailurePolicy, Pipeline, TestRun, Topology, task
from pytempest.errors import SourceError
from pytempest.sources import FileSource


def test_reads_every_line_and_checkpoints_the_end(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"one\ntwo\r\n\nthree")
    seen: list[bytes] = []

    @task("collect")
    def collect(body: bytes) -> None:
        seen.append(body)

    metrics = TestRun(Topology("file", Pipeline().task(collect), FileSource(path))).run()
    assert seen == [b"one", b"two", b"three"]
    assert metrics["file.source.msg.acked.success"] == 3
    assert json.loads((tmp_path / "in.txt.offset").read_text())["offset"] == path.stat().st_size


def test_restart_resumes_after_the_last_acked_line(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"line{i}\n" for i in range(10)))
    handled: list[bytes] = []

    @task("fail_at_5")
    def fail_at_5(body: bytes) -> None:
        if body == b"line5":
            raise RuntimeError("crash here")
        handled.append(body)

    source = FileSource(path, ack_policy=AckPolicy.individual())
    TestRun(Topology("resume", Pipeline().task(fail_at_5), source, failure_policy=FailurePolicy.none())).run(
        until_idle=False, duration_ms=300
    )
    # line5 never acked: the checkpoint stops before it even though 6..9 were acked.
    offset = json.loads((tmp_path / "lines.txt.offset").read_text())["offset"]
    assert offset == len(b"line0\n") * 5

    again: list[bytes] = []

    @task("ok")
    def ok(body: bytes) -> None:
        again.append(body)

    TestRun(Topology("resume", Pipeline().task(ok), FileSource(path))).run()
    assert again == [b"line5", b"line6", b"line7", b"line8", b"line9"]  # in order, nothing skipped


def test_checkpoint_beyond_the_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("a\n")
    (tmp_path / "short.txt.offset").write_text(json.dumps({"offset": 999}))
    with pytest.raises(SourceError, match=r"says offset 999 but .*short.txt has only 2 bytes"):
        asyncio.run(FileSource(path).setup())


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"cannot open .*nope\.txt"):
        asyncio.run(FileSource(tmp_path / "nope.txt").setup())


def test_follow_waits_for_a_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "grow.txt"
    path.write_bytes(b"a\nb")

    async def scenario() -> list[list[bytes]]:
        src = FileSource(path, follow=True)
        await src.setup()
        first = [m.body for m in await src.poll(10)]
        with path.open("ab") as f:
            f.write(b"c\n")
        second = [m.body for m in await src.poll(10)]
        await src.close()
        return [first, second]

    assert asyncio.run(scenario()) == [[b"a"], [b"bc"]]
