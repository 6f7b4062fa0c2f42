"""`run --no-wait`: a source that cannot be reached at start is a clear error, not a wait."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "redis_stream" / "topology.py"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_wait_exits_3_naming_the_masked_url() -> None:
    url = f"redis://user:s3cret-pw@127.0.0.1:{closed_port()}/0"
    env = dict(os.environ, PYTEMPEST_REDIS_URL=url)
    out = subprocess.run(
        [sys.executable, "-m", "pytempest", "run", f"{EXAMPLE}:topology", "--until-idle", "--no-wait"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 3, out.stderr
    assert "cannot reach Redis" in out.stderr
    assert "user:***@127.0.0.1" in out.stderr
    assert "s3cret-pw" not in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
