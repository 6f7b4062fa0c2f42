"""SIGTERM/SIGINT in a real process: in-flight work finishes, nothing unfinished is acked,
a second signal stops at once (DESIGN.md section 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PYTEMPEST = [sys.executable, "-c", "from pytempest.cli.main import main; main()"]


def events(path: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"start": set(), "end": set(), "acked": set()}
    if path.exists():
        for line in path.read_text().splitlines():
            kind, _, body = line.partition(" ")
            out[kind].add(body)
    return out


def start(tmp_path: Path, sleep_s: float, grace_ms: int) -> tuple[subprocess.Popen[bytes], Path]:
    path = tmp_path / "events.txt"
    env = dict(os.environ, PT_EVENTS=str(path), PT_SLEEP_S=str(sleep_s), PT_GRACE_MS=str(grace_ms))
    proc = subprocess.Popen(
        [*PYTEMPEST, "run", str(HERE / "shutdown_topology.py") + ":topology"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while not events(path)["start"]:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)
    return proc, path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_drains_in_flight_messages(tmp_path: Path, sig: signal.Signals) -> None:
    proc, path = start(tmp_path, sleep_s=0.3, grace_ms=10_000)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    ev = events(path)
    assert ev["start"] == ev["end"], "every started message finished"
    assert ev["acked"] == ev["end"], "every finished message was acked, nothing else"
    assert 0 < len(ev["acked"]) < 20, "intake stopped: the rest stays at the source"
    assert b"stopping: no new messages" in out


def test_second_signal_stops_at_once_and_acks_nothing_unfinished(tmp_path: Path) -> None:
    proc, path = start(tmp_path, sleep_s=60, grace_ms=60_000)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)  # far below the 60 s the tasks sleep
    assert proc.returncode == 130, out.decode()
    ev = events(path)
    assert ev["end"] == set()
    assert ev["acked"] == set()
