"""The topology every scenario runs (``reliability/topology.py:topology``), set up from
the environment so one file serves every process of every scenario.

Three tasks in a chain, over a Redis stream of harness messages (:mod:`.messages`)::

    decode -> work -> sink

* ``decode`` (inline) decodes the body with a codec (JSON by default, with size and depth
  limits: ``PTR_CODEC``, ``PTR_MAX_BYTES``, ``PTR_MAX_DEPTH``) and raises for a message
  whose ``act`` is ``raise`` (a poison message);
* ``work`` (threaded) sleeps ``PTR_WORK_MS`` (or the ``sleep:<ms>`` of the message; a
  ``hold`` message first waits for the file ``PTR_RELEASE_FILE`` to exist) and
  SIGKILLs its own process for a message whose ``act`` is ``crash``;
* ``sink`` appends ``{seq, run, ok, pid}`` to the sink stream ``PTR_SINK_KEY``: the
  outcome record of a completed message (``ok`` is 0 when the checksum did not match);
  inline, or threaded with ``PTR_SINK_THREADED=1`` (then a hung sink does not hold the
  event loop, and the source's own calls meet the outage).

Every ``handle`` call also appends ``<task> <seq> <epoch ms>`` to ``PTR_LOG_DIR/handles-<pid>.log``
with one ``write`` (it survives a SIGKILL of the process): the checker counts task-level
duplicates from these lines.

Environment: ``PTR_NAME``, ``PTR_SOURCE_URL``, ``PTR_SOURCE_KEY``, ``PTR_GROUP`` (``g``),
``PTR_CONSUMER`` (``c1``), ``PTR_READ_COUNT`` (100), ``PTR_BLOCK_MS`` (100), ``PTR_ACK``
(``batch(100, ack_interval_ms=50)``), ``PTR_MONITOR_MS`` (500), ``PTR_HANDLERS``
(``claim:<ms>`` or ``dead_letter:<ms>:<times>,claim:<ms>``; default ``claim:60000``),
``PTR_PREFETCH`` (1), ``PTR_MAX_LEN`` (unset), ``PTR_SINK_URL`` / ``PTR_DLQ_URL`` (default the source's),
``PTR_DLQ_KEY`` (empty: no dead letter), ``PTR_POLICY``, ``PTR_MSG_TIMEOUT_MS``,
``PTR_MAX_PENDING``, ``PTR_GRACE_MS``, ``PTR_METRICS_FILE`` (a JSON-lines metric target,
flushed every 250 ms), ``PTR_LOG_DIR``, ``PTR_RELEASE_FILE``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import redis

from pytempest import FailurePolicy, Pipeline, Task, Topology
from pytempest.codecs import codec
from pytempest.deadletters import RedisStreamDeadLetter
from pytempest.metrics.file import FileTarget
from pytempest.sources import PendingHandler, RedisStreamSource

from .messages import parse


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


class HandleLog:
    """``<task> <seq>`` lines, one ``write`` each, to a file of this process."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.pid = 0

    def write(self, task: str, seq: int | None) -> None:
        directory = env("PTR_LOG_DIR")
        if not directory:
            return
        if self.fd is None or self.pid != os.getpid():  # forked workers open their own
            self.pid = os.getpid()
            path = os.path.join(directory, f"handles-{self.pid}.log")
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self.fd, f"{task} {'?' if seq is None else seq} {int(time.time() * 1000)}\n".encode())


LOG = HandleLog()


class Decode(Task):
    name = "decode"

    def __init__(self) -> None:
        self.codec = codec(
            env("PTR_CODEC", "json"),
            max_bytes=env_int("PTR_MAX_BYTES", 1 << 20),
            max_depth=env_int("PTR_MAX_DEPTH", 32),
        )

    def handle(self, body: bytes) -> list[bytes]:
        try:
            value = self.codec.decode(body)
        except Exception:
            LOG.write(self.name, None)
            raise
        msg = parse(value) if isinstance(value, dict) else None
        LOG.write(self.name, msg.seq if msg else None)
        if msg is not None and msg.act == "raise":
            raise ValueError(f"poison message {msg.seq}")
        return [body] if self.codec.name == "json" else [json.dumps(value).encode()]


def _wait_for_release() -> None:
    """Block until the file ``PTR_RELEASE_FILE`` exists (at most 120 s): a message that
    cannot finish while a scenario needs the process to hold it."""
    path = env("PTR_RELEASE_FILE")
    deadline = time.monotonic() + 120
    while path and not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


class Work(Task):
    name = "work"
    threaded = True

    def handle(self, body: bytes) -> list[bytes]:
        msg = parse(body)
        LOG.write(self.name, msg.seq if msg else None)
        act = msg.act if msg else ""
        if act == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if act == "hold":
            _wait_for_release()
        sleep_ms = int(act.split(":", 1)[1]) if act.startswith("sleep:") else env_int("PTR_WORK_MS", 0)
        if sleep_ms:
            time.sleep(sleep_ms / 1000)
        return [body]


class Sink(Task):
    name = "sink"

    def __init__(self) -> None:
        self.client: redis.Redis | None = None
        self.threaded = env_int("PTR_SINK_THREADED", 0) == 1

    def setup(self) -> None:
        url = env("PTR_SINK_URL") or env("PTR_SOURCE_URL")
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    def handle(self, body: bytes) -> None:
        msg = parse(body)
        seq = msg.seq if msg else -1
        LOG.write(self.name, seq)
        assert self.client is not None
        fields: Any = {"seq": seq, "run": msg.run if msg else "", "ok": int(bool(msg and msg.ok)),
                       "pid": os.getpid()}  # fmt: skip
        self.client.xadd(env("PTR_SINK_KEY"), fields)

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close()


def handlers(spec: str) -> list[PendingHandler]:
    """``dead_letter:2000:3,claim:2000`` -> pending handlers."""
    out = []
    for part in filter(None, spec.split(",")):
        action, _, rest = part.partition(":")
        idle, _, times = rest.partition(":")
        out.append(PendingHandler(action, int(idle or 0), int(times or 1)))  # type: ignore[arg-type]
    return out


def topology() -> Topology:
    url = env("PTR_SOURCE_URL", "redis://127.0.0.1:6379/0")
    source = RedisStreamSource(
        url,
        env("PTR_SOURCE_KEY"),
        env("PTR_GROUP", "g"),
        consumer=env("PTR_CONSUMER", "c1"),
        read_count=env_int("PTR_READ_COUNT", 100),
        block_ms=env_int("PTR_BLOCK_MS", 100),
        ack_policy=env("PTR_ACK", "batch(100, ack_interval_ms=50)"),
        monitor_interval_ms=env_int("PTR_MONITOR_MS", 500),
        pending_handlers=handlers(env("PTR_HANDLERS", "claim:60000")),
        prefetch=env("PTR_PREFETCH", "1") == "1",
        max_len=env_int("PTR_MAX_LEN", 0) or None,
    )
    dlq_key = env("PTR_DLQ_KEY")
    dead_letter = RedisStreamDeadLetter(env("PTR_DLQ_URL") or url, dlq_key) if dlq_key else None
    metrics_file = env("PTR_METRICS_FILE")
    return Topology(
        env("PTR_NAME", "reliability"),
        Pipeline().task(Decode()).task(Work()).task(Sink()).edges(("decode", "work"), ("work", "sink")),
        source,
        failure_policy=FailurePolicy.parse(env("PTR_POLICY", "retry(3, delay_ms=100)")),
        msg_timeout_ms=env_int("PTR_MSG_TIMEOUT_MS", 30_000),
        max_pending=env_int("PTR_MAX_PENDING", 100),
        graceful_shutdown_ms=env_int("PTR_GRACE_MS", 10_000),
        dead_letter=dead_letter,
        metric_targets=[FileTarget(metrics_file)] if metrics_file else [],
        metric_flush_interval_ms=250,
    )
