"""Real ``pytempest`` processes for the scenarios: start, signal, wait, measure memory.

Generalises ``tests/distributed/cluster.py``'s ``Proc``: every process writes its output to
a log file, can get any signal (``SIGKILL``, ``SIGSTOP``/``SIGCONT``, ``SIGTERM``), and
an :class:`RssSampler` follows the resident memory of every process started (peak from
the kernel's ``VmHWM``, plus a timeline of ``VmRSS`` for plateau checks).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ENTRY = "from pytempest.cli.main import main; main()"


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB; (0, 0) when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    values = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":", 1)
            values[name] = int(value.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class RssSampler:
    """Samples the memory of a set of processes every ``every_s`` in a thread."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.every_s = every_s
        self.peak_kib: dict[int, int] = {}
        self.timeline: dict[int, list[tuple[float, int]]] = {}
        self._pids: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="reliability-rss", daemon=True)
        self._thread.start()

    def track(self, pid: int) -> None:
        with self._lock:
            self._pids.add(pid)
        self.sample(pid)

    def sample(self, pid: int) -> None:
        rss, hwm = rss_kib(pid)
        if not rss:
            return
        with self._lock:
            self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), hwm, rss)
            self.timeline.setdefault(pid, []).append((time.monotonic(), rss))

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            with self._lock:
                pids = list(self._pids)
            for pid in pids:
                self.sample(pid)

    def peak_mib(self) -> float:
        with self._lock:
            return max(self.peak_kib.values(), default=0) / 1024

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Proc:
    """A ``pytempest`` subprocess whose output goes to ``log_path``."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        sampler: RssSampler | None = None,
        new_group: bool = False,
    ) -> None:
        self.args = args
        self.log_path = log_path
        self._out = open(log_path, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self.started = time.time()
        self.popen = subprocess.Popen(
            [sys.executable, "-c", ENTRY, *args],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=new_group,
        )
        if sampler is not None:
            sampler.track(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def sigkill(self) -> int:
        """SIGKILL and reap; return the exit code (-9)."""
        self.signal(signal.SIGKILL)
        return self.wait(10)

    def wait(self, timeout_s: float) -> int:
        """Wait for the exit; on a timeout kill it and raise with the end of its log."""
        try:
            code = self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise AssertionError(
                f"pytempest {' '.join(self.args)} did not exit within {timeout_s} s:\n{self.log()[-3000:]}"
            ) from None
        finally:
            self._out.close()
        return code

    def kill(self) -> None:
        """Kill it if it runs (cleanup)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGCONT)
            self.popen.kill()
        self.popen.wait(10)
        self._out.close()
