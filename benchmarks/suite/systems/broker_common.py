"""What the task-queue peers (Dramatiq, Celery) share: the job's keys, passed to their
worker processes through the environment; the completion counter; the feeder loop; and
starting, checking and stopping the worker processes.

How a source message is tracked to its ack (the same for both peers):

- the feeder (the benchmark's child process) reads the job's stream with
  ``XREADGROUP COUNT 1000``, sets a per-source counter to 1 for every entry of the batch
  (one ``HSET`` on the hash ``<prefix>:count``, field = the entry id), then enqueues one
  task per entry through the peer's normal enqueue API;
- a task that finishes with ``k`` children adds ``k - 1`` to its source's counter BEFORE
  it enqueues them, so the counter cannot reach 0 while work remains;
- the task that brings the counter to 0 ``XACK``s the source entry and deletes the field.
  The decrement, the check and the ``XACK`` are one Lua script (:data:`FINISH_LUA`), so
  each task pays a single round trip for its bookkeeping;
- the same script adds 1 to ``<prefix>:handled``: ``Result.handled`` is that counter, the
  number of tasks that ran their handle call and reached their bookkeeping (a task
  retried after a crash would count twice; none crashed in our runs);
- the clock runs from the feeder's first read to the moment the consumer group has read
  ``n`` and has nothing pending (:func:`benchmarks.suite.streams.wait_acked`).

Every key is under ``<prefix> = <job.key>:<job.group>`` (the stream of one size is reused
by every system, the group is new each run) and is deleted after the run.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks.suite.spec import Job
from benchmarks.suite.streams import client, entries, latency_ms

READ_COUNT = 1000
"""Entries per ``XREADGROUP``."""

DEADLINE_S = 600.0
"""Every loop gives up after this long."""

START_TIMEOUT_S = 90.0
"""How long worker processes get to start and answer pings."""

STOP_TIMEOUT_S = 20.0
"""How long worker processes get to stop after ``SIGTERM`` before ``SIGKILL``."""

REPO = Path(__file__).resolve().parents[3]
"""The repository root (the worker processes run there, to import ``benchmarks``)."""

ENV = "PT7_BENCH_"
"""Prefix of the environment variables that give a worker process its job."""

FINISH_LUA = """
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCRBY', KEYS[2], 1)
if v == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('XACK', KEYS[3], ARGV[3], ARGV[1])
  return 1
end
return 0
"""
"""KEYS: the counter hash, the handled counter, the stream; ARGV: the source id, the
delta (children - 1), the group. Returns 1 when it acked the source entry."""


@dataclass(frozen=True)
class Setup:
    """What a worker process needs to know about its job."""

    url: str
    stream: str
    group: str
    prefix: str
    workload: str

    @classmethod
    def of(cls, job: Job) -> Setup:
        return cls(job.url, job.key, job.group, f"{job.key}:{job.group}", job.workload)

    def env(self) -> dict[str, str]:
        """These fields as environment variables, for the worker processes."""
        return {ENV + k.upper(): str(v) for k, v in vars(self).items()}

    @classmethod
    def from_env(cls) -> Setup | None:
        """The job given by the environment, or ``None`` outside a worker process."""
        if ENV + "URL" not in os.environ:
            return None
        return cls(**{k: os.environ[ENV + k.upper()] for k in cls.__dataclass_fields__})

    @property
    def count_key(self) -> str:
        return f"{self.prefix}:count"

    @property
    def handled_key(self) -> str:
        return f"{self.prefix}:handled"

    @property
    def lat_key(self) -> str:
        return f"{self.prefix}:lat"

    @property
    def ping_key(self) -> str:
        return f"{self.prefix}:ping"


class Completion:
    """The per-source completion counter, as seen from a task (one per worker process;
    redis-py clients are thread-safe, so Dramatiq's threads share it)."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.r = redis.Redis.from_url(setup.url)
        self._finish = self.r.register_script(FINISH_LUA)
        self._keys = [setup.count_key, setup.handled_key, setup.stream]
        self._record = setup.workload == "W3"

    def finish(self, source_id: str, children: int, body: str) -> bool:
        """A task of ``source_id`` is done and is about to enqueue ``children`` tasks: add
        ``children - 1`` to the counter and count the handle call; ``XACK`` the source entry
        if this was its last task (then, for W3, push the latency from the body's send time
        to the moment the ``XACK`` returned). Returns whether it acked."""
        acked = bool(self._finish(keys=self._keys, args=[source_id, children - 1, self.setup.group]))
        if acked and self._record:
            self.r.rpush(self.setup.lat_key, latency_ms(body.encode("latin-1"), time.time_ns()))
        return acked

    def ping(self) -> None:
        """Answer a readiness ping with this process's id."""
        self.r.rpush(self.setup.ping_key, os.getpid())


_completion: tuple[int, Completion] | None = None


def completion() -> Completion:
    """This worker process's :class:`Completion` (made on first use, after any fork)."""
    global _completion
    if _completion is None or _completion[0] != os.getpid():
        setup = Setup.from_env()
        if setup is None:
            raise RuntimeError(f"not a worker process: {ENV}* not set")
        _completion = (os.getpid(), Completion(setup))
    return _completion[1]


def _die_with_parent() -> None:
    """In the worker's main process: get ``SIGTERM`` if the benchmark child dies, so an
    interrupted run never leaves workers behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def workers(
    job: Job, name: str, argv: list[str], ping: Callable[[], object], processes: int
) -> Iterator[Setup]:
    """Start the peer's worker processes (``argv``, in a session of their own) with the job
    in their environment; wait until ``processes`` distinct worker processes have answered
    pings sent by ``ping()`` (and every ping sent was answered); yield; then stop them
    (``SIGTERM`` to the session, ``SIGKILL`` after :data:`STOP_TIMEOUT_S`) and delete every
    key under the job's prefix."""
    setup = Setup.of(job)
    r = client(job)
    env = {**os.environ, **setup.env(), "PYTHONPATH": str(REPO)}
    with tempfile.NamedTemporaryFile(prefix=f"{name}-pt7-", suffix=".log", dir="/tmp") as log:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            _wait_ready(r, setup, proc, ping, processes, log.name)
            yield setup
        finally:
            _stop(proc)
            cleanup(r, setup)
            r.close()


def _tail(path: str, lines: int = 20) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def _wait_ready(
    r: redis.Redis,
    setup: Setup,
    proc: subprocess.Popen[bytes],
    ping: Callable[[], object],
    processes: int,
    log: str,
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    pids: set[bytes | str] = set()
    sent = answered = 0
    while len(pids) < processes or answered < sent:
        if proc.poll() is not None:
            raise RuntimeError(f"workers exited with {proc.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers not ready in {START_TIMEOUT_S} s ({pids}):\n{_tail(log)}")
        if len(pids) < processes and answered == sent:
            for _ in range(4 * processes):
                ping()
            sent += 4 * processes
        reply = r.blpop([setup.ping_key], timeout=0.2)
        if reply is not None:
            pids.add(reply[1])
            answered += 1


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT_S)
    # The session may hold forked workers even when the main process has exited.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(STOP_TIMEOUT_S)


def cleanup(r: redis.Redis, setup: Setup) -> None:
    """Delete every key under the job's prefix (counters, latencies, the peer's queues)."""
    keys = list(r.scan_iter(match=f"{_glob_escape(setup.prefix)}:*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i : i + 500])


def _glob_escape(s: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)


def feed(job: Job, setup: Setup, r: redis.Redis, enqueue: Callable[[str, str], object]) -> None:
    """Read the job's ``n`` entries (``XREADGROUP COUNT 1000``); for each batch set the
    counters to 1 (one ``HSET``) and then ``enqueue(source_id, body)`` each entry. Bodies
    and ids go to the peers as ``str`` (latin-1), since both encode messages as JSON."""
    consumer = f"{job.system}-feeder"
    deadline = time.monotonic() + DEADLINE_S
    read = 0
    while read < job.n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job.label}: read {read} of {job.n} in {DEADLINE_S} s")
        batch = entries(r.xreadgroup(job.group, consumer, {job.key: ">"}, count=READ_COUNT, block=100))
        if not batch:
            continue
        r.hset(setup.count_key, mapping={entry_id: 1 for entry_id, _ in batch})
        for entry_id, fields in batch:
            enqueue(entry_id.decode(), fields[b"body"].decode("latin-1"))
        read += len(batch)


def handled(r: redis.Redis, setup: Setup) -> int:
    """The handle calls the tasks counted."""
    return int(r.get(setup.handled_key) or 0)


def collect_latencies(r: redis.Redis, setup: Setup, n: int) -> list[float]:
    """Wait (bounded) until the workers pushed ``n`` latencies, and return them."""
    deadline = time.monotonic() + DEADLINE_S
    while r.llen(setup.lat_key) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{r.llen(setup.lat_key)} of {n} latencies in {DEADLINE_S} s")
        time.sleep(0.01)
    return [float(x) for x in r.lrange(setup.lat_key, 0, -1)]


def python() -> str:
    """The interpreter running this benchmark (the venv's)."""
    return sys.executable
