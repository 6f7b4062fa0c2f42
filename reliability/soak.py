"""The random-kill soak: a steady load for N minutes while random faults hit every part.

Two topology instances share the source's consumer group: ``pytempest run`` (consumer
``soak-a``, in process) and ``pytempest topology`` (consumer ``soak-b``) with two
``pytempest task`` workers. A producer writes a steady stream with a few poison messages
(retry(2), then the dead letter). Every 5 to 15 seconds (seeded) one fault, chosen among:
SIGKILL, SIGTERM or SIGSTOP (3 s) of a random process, a Redis restart (AOF) or a Redis
pause (SIGSTOP, 3 s). Killed and stopped processes are started again after a second, as
systemd would. At the end the producer stops, every process is up, the source drains,
and the checker classifies every message: lost must be 0, every poison message must be
dead-lettered once, nothing may have died that the soak did not kill.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .lab import Check, Lab, Result
from .messages import wait_until
from .procs import Proc
from .scenarios.common import at_most, check, count_lines, equal

RATE = 200
ENV = {
    "PTR_POLICY": "retry(2, delay_ms=200)",
    "PTR_MSG_TIMEOUT_MS": "15000",
    "PTR_HANDLERS": "claim:5000",
    "PTR_MONITOR_MS": "1000",
    "PTR_WORK_MS": "2",
    "PTR_MAX_PENDING": "200",
}


@dataclass
class Role:
    """One long-running process the soak keeps alive."""

    name: str
    start: Callable[[], Proc]
    proc: Proc | None = None
    down_until: float = 0.0
    faulted: bool = False
    unexpected: list[int] = field(default_factory=list)


class Supervisor:
    """Restarts every role whose process died, once its fault's down time is over."""

    def __init__(self, roles: list[Role]) -> None:
        self.roles = roles
        for role in roles:
            role.proc = role.start()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="soak-supervisor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                for role in self.roles:
                    proc = role.proc
                    if proc is None or proc.alive() or time.time() < role.down_until:
                        continue
                    code = proc.wait(5)
                    if not role.faulted:
                        role.unexpected.append(code)
                    role.faulted = False
                    role.proc = role.start()

    def fault(self, role: Role, sig: int, down_s: float = 1.0) -> None:
        with self._lock:
            role.faulted = True
            role.down_until = time.time() + down_s
            if role.proc is not None:
                role.proc.signal(sig)

    def all_alive(self) -> bool:
        with self._lock:
            return all(r.proc is not None and r.proc.alive() for r in self.roles)

    def stop(self) -> dict[str, int]:
        """Stop restarting; SIGTERM every process; their exit codes."""
        self._stop.set()
        self._thread.join(5)
        codes = {}
        for role in self.roles:
            if role.proc is not None and role.proc.alive():
                role.proc.signal(signal.SIGCONT)
                role.proc.signal(signal.SIGTERM)
                codes[role.name] = role.proc.wait(60)
        return codes


def soak(lab: Lab, minutes: float, seed: int) -> Result:
    began = time.monotonic()
    rng = random.Random(seed)
    server = lab.redis_server("aof")
    expected = int(RATE * minutes * 60 * 1.2) + 1000
    poison = {s for s in range(expected) if rng.random() < 0.003}
    producer = lab.producer(acts=dict.fromkeys(poison, "raise"))
    env = {**ENV, "PTR_DLQ_KEY": lab.dlq_key}
    roles = [
        Role("run", lambda: lab.run(**env, PTR_CONSUMER="soak-a")),
        Role("topology", lambda: lab.topology(**env, PTR_CONSUMER="soak-b")),
        Role("worker-1", lambda: lab.worker(**env)),
        Role("worker-2", lambda: lab.worker(**env)),
    ]
    supervisor = Supervisor(roles)
    producer.start(rate_per_s=RATE)
    faults: list[tuple[float, str]] = []
    deadline = time.monotonic() + minutes * 60
    try:
        while time.monotonic() < deadline:
            time.sleep(min(rng.uniform(5, 15), max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                break
            faults.append((time.monotonic() - began, _inject(rng, supervisor, roles, server)))
        producer.stop()
        wait_until(supervisor.all_alive, 60, "every process up again")
        lab.wait_drained(len(producer.produced.ids), 300)
        time.sleep(2.0)  # the last dead letters and acks
    finally:
        codes = supervisor.stop()
    report = lab.check(producer)
    kinds = Counter(f for _, f in faults)
    logs = lab.logs()
    produced_poison = poison & set(producer.produced.ids)
    checks: list[Check] = [
        equal("exit codes at the end (SIGTERM)", codes, dict.fromkeys(codes, 0)),
        equal(
            "processes that died without being killed",
            {r.name: r.unexpected for r in roles if r.unexpected},
            {},
        ),
        equal("poison messages dead-lettered", report.dead_lettered, len(produced_poison)),
        equal("completed", report.completed, report.produced - len(produced_poison)),
        at_most(
            "dead-letter records duplicated",
            report.dup_dead_letter,
            kinds["SIGKILL run"] + kinds["SIGKILL topology"] + kinds["SIGKILL worker"],
        ),
        equal("engine loops that died (CRITICAL lines)", count_lines(logs, " CRITICAL "), 0),
        check("faults injected", len(faults) >= minutes * 3, dict(kinds)),
    ]
    timeline = "; ".join(f"{t:.0f}s {f}" for t, f in faults)
    return Result("SOAK", f"{minutes:g}-minute random-kill soak (seed {seed})", report, checks,
                  time.monotonic() - began, [f"{len(faults)} faults: {dict(kinds)}", f"timeline: {timeline}"])  # fmt: skip


def _inject(rng: random.Random, supervisor: Supervisor, roles: list[Role], server: object) -> str:
    from .redis_server import RedisServer

    assert isinstance(server, RedisServer)
    kind = rng.choice(["SIGKILL", "SIGKILL", "SIGTERM", "SIGSTOP", "redis restart", "redis pause"])
    if kind == "redis restart":
        server.restart(down_s=1.0)
        return kind
    if kind == "redis pause":
        server.pause()
        time.sleep(3.0)
        server.resume()
        return kind
    role = rng.choice(roles)
    label = role.name.split("-")[0]
    if kind == "SIGSTOP":
        proc = role.proc
        if proc is not None and proc.alive():
            proc.signal(signal.SIGSTOP)
            time.sleep(3.0)
            proc.signal(signal.SIGCONT)
        return f"SIGSTOP {label}"
    supervisor.fault(role, signal.SIGKILL if kind == "SIGKILL" else signal.SIGTERM, rng.uniform(0.5, 2.0))
    return f"{kind} {label}"
