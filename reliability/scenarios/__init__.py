"""The scenarios of the reliability suite, by id (see ``docs/guarantees.md`` for the table).

Each scenario is a function ``(lab, quick) -> Result``: it starts real processes against
real Redis, injects its fault, waits (bounded) for the outcome, runs the checker and
returns the report with its pass criteria. ``quick`` shrinks message counts and pauses
for the CI subset (``tests/faults/``); the full suite (``python -m reliability run``)
runs them at full size.
"""

from __future__ import annotations

from collections.abc import Callable

from ..lab import Lab, Result
from . import codec, crash, policy, redis, security, shutdown

Scenario = Callable[[Lab, bool], Result]

SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "A1": ("SIGKILL a worker mid-batch", crash.a1_worker_killed),
    "A2": ("SIGKILL the topology, restart", crash.a2_topology_killed),
    "A3": ("SIGKILL at each step of a message's life (failpoints)", crash.a3_failpoints),
    "B1": ("Redis restarted with AOF on", redis.b1_restart_aof),
    "B3": ("Redis restarted without persistence", redis.b3_restart_empty),
    "B4": ("Redis down at start", redis.b4_down_at_start),
    "B5": ("Redis paused (SIGSTOP)", redis.b5_paused),
    "B6": ("connections cut, delayed and black-holed (TCP proxy)", redis.b6_proxy_faults),
    "C1": ("a task slower than msg_timeout_ms", policy.c1_slow_task),
    "C2": ("a poison message with retry(3)", policy.c2_poison),
    "C3": ("a message that crashes the worker every time", crash.c3_crashing_message),
    "C3b": ("a message that crashes the topology process every time", crash.c3_inprocess),
    "C4": ("policy matrix none / best_effort / retry x error / timeout", policy.c4_matrix),
    "D1": ("SIGTERM with work in flight", shutdown.d1_sigterm),
    "D2": ("slow task at 10x load with max_pending", shutdown.d2_overload),
    "E1": ("oversized message", codec.e1_oversized),
    "E2": ("malformed JSON / msgpack payloads", codec.e2_malformed),
    "S1": (
        "least-privilege ACL users run everything; the password shows nowhere",
        security.s1_least_privilege,
    ),
    "S2": ("TLS with a CA, a client certificate and host name checking", security.s2_tls),
}
