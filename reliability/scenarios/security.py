"""S1: the whole topology under least-privilege ACL users, and the password nowhere.

Three users made with ``ACL SETUSER`` (unique names, deleted after) from the rules of
:mod:`reliability.security`: a topology user, a worker user, a status user, each with the
same unique password. The scenario runs ``pytempest run`` (with a poison message that
the source's pending handlers claim and dead-letter, and stream trimming: every Lua
script of the source), the distributed runtime (``pytempest topology`` and ``pytempest
task``), ``pytempest status`` and ``pytempest validate``, then wrong passwords, and checks
that Redis refused nothing (``ACL LOG``), nothing was lost, and the password appears in no
output, no Redis value pytempest wrote, and no repr.
"""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

from pytempest.deadletters import RedisStreamDeadLetter
from pytempest.runtimes.redis_bus.executor import RedisBusExecutor
from pytempest.sources import RedisStreamSource

from .. import security
from ..lab import Check, Lab, Result
from ..messages import wait_until
from ..redis_server import make_certificates
from .common import check, equal, result


def _url(lab: Lab, user: str, password: str) -> str:
    return lab.main_url.replace("redis://", f"redis://{user}:{password}@", 1)


def s1_least_privilege(lab: Lab, quick: bool) -> Result:
    began = time.monotonic()
    password = f"pw-{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex[:6]
    users = {"topology": f"pt-topo-{tag}", "worker": f"pt-worker-{tag}", "status": f"pt-status-{tag}"}
    rules = {
        "topology": (security.topology_keys(lab.name, lab.source_key, lab.dlq_key), security.TOPOLOGY),
        "worker": (security.worker_keys(lab.name), security.WORKER),
        "status": (security.status_keys(), security.STATUS),
    }
    for role, user in users.items():
        lab.main.execute_command(*security.setuser(user, password, *rules[role]))
    try:
        return _run(lab, users, password, began, quick)
    finally:
        lab.main.execute_command("ACL", "DELUSER", *users.values())


def _run(lab: Lab, users: dict[str, str], password: str, began: float, quick: bool) -> Result:
    turl, wurl, surl = (_url(lab, users[r], password) for r in ("topology", "worker", "status"))
    lab.source_url = turl
    n = 300 if quick else 3000
    producer = lab.producer(acts={5: "raise"}, url=lab.main_url)
    producer.burst(n)
    env = {"PTR_DLQ_KEY": lab.dlq_key, "PTR_DLQ_URL": turl, "PTR_POLICY": "none", "PTR_MONITOR_MS": "100",
           "PTR_HANDLERS": "dead_letter:100:2,claim:100", "PTR_MAX_LEN": "50"}  # fmt: skip
    run = lab.run(**env)
    wait_until(lambda: lab.drained(n) and lab.dead_letter_count() >= 1, 60, "the run under the ACL to finish")
    run.signal(signal.SIGTERM)
    codes = {"run": run.wait(30)}
    producer.burst(n)
    bus_env = {"PTR_DLQ_KEY": lab.dlq_key, "PTR_DLQ_URL": turl}
    worker = lab.start("task", "reliability.topology:topology", "--all", "--redis", wurl)
    top = lab.start("topology", "reliability.topology:topology", "--until-idle", "--redis", turl, **bus_env)
    codes["topology"] = top.wait(120)
    worker.signal(signal.SIGTERM)
    codes["worker"] = worker.wait(30)
    status = lab.start("status", "--redis", surl, lab.name)
    codes["status"] = status.wait(30)
    validate = lab.start("validate", "reliability.topology:topology", PYTEMPEST_SOURCE_URL=turl)
    codes["validate"] = validate.wait(30)
    wrong = _url(lab, users["topology"], "not-" + password)
    refused = lab.start("run", "reliability.topology:topology", "--until-idle", PTR_SOURCE_URL=wrong)
    refused_code = refused.wait(30)
    bad_status = lab.start("status", "--redis", wrong, lab.name)
    bad_status_code = bad_status.wait(30)
    report = lab.check(producer)
    denied = _acl_denials(lab, set(users.values()))
    leaks = _leaks(lab, password, [turl, wurl])
    checks: list[Check] = [
        equal("exit codes under the ACL", codes, dict.fromkeys(codes, 0)),
        equal("commands or keys Redis refused (ACL LOG)", denied, []),
        check(
            "the poison was claimed and dead-lettered by the pending handlers (Lua scripts ran)",
            report.dead_lettered == 1,
            report.dead_lettered,
        ),
        equal("completed", report.completed, 2 * n - 1),
        check("status shows the topology", lab.name in status.log(), status.log()[-300:]),
        check(
            "a wrong password is refused clearly",
            refused_code != 0 and "refused the credentials" in refused.log(),
            f"exit {refused_code}: {refused.log()[-300:]}",
        ),
        check(
            "status with a wrong password fails clearly, without a traceback",
            bad_status_code != 0 and "Traceback" not in bad_status.log(),
            f"exit {bad_status_code}: {bad_status.log()[-300:]}",
        ),
        equal("places the password shows up", leaks, []),
    ]
    return result("S1", "least-privilege ACL users; the password nowhere", report, checks, began)


def _acl_denials(lab: Lab, users: set[str]) -> list[str]:
    out = []
    for entry in lab.main.execute_command("ACL", "LOG", "128"):
        fields: dict[Any, Any] = (
            dict(zip(entry[::2], entry[1::2], strict=True)) if isinstance(entry, list) else entry
        )
        user = fields.get(b"username", fields.get("username", b""))
        user = user.decode() if isinstance(user, bytes) else str(user)
        reason_text = _text(fields.get(b"reason", fields.get("reason", b"")))
        if user in users and reason_text != "auth":  # "auth": the wrong-password attempts, on purpose
            what = fields.get(b"object", fields.get("object", b""))
            reason = fields.get(b"reason", fields.get("reason", b""))
            out.append(f"{user}: {_text(reason)} {_text(what)}")
    return out


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _leaks(lab: Lab, password: str, urls: list[str]) -> list[str]:
    """Where ``password`` shows: process output, Redis values pytempest wrote, reprs."""
    found = [f"log of pytempest {' '.join(p.args[:2])}" for p in lab.procs if password in p.log()]
    needle = password.encode()
    for key in lab.main.scan_iter(match=f"*{lab.name}*", count=1000):
        kind = lab.main.type(key)
        if kind == b"hash":
            values = list(lab.main.hgetall(key).values())
        elif kind == b"stream":
            values = [v for _, f in lab.main.xrange(key) for v in f.values()]
        else:
            continue
        if any(needle in v for v in values):
            found.append(f"redis key {key.decode()}")
    for url in urls:
        for obj in (
            RedisStreamSource(url, "k", "g"),
            RedisStreamDeadLetter(url, "k"),
            RedisBusExecutor("t", url),
        ):
            text = repr(obj) + " " + (obj.describe() if hasattr(obj, "describe") else "")
            if password in text:
                found.append(f"repr of {type(obj).__name__}")
    return found


def s2_tls(lab: Lab, quick: bool) -> Result:
    """The source and the dead letter over TLS (``rediss://``) with a CA file, a client
    certificate and host name checking: everything completes; a wrong CA, a host name the
    certificate does not name, and a missing client certificate each stop the run at once
    with an error that says what to check (no endless retrying)."""
    began = time.monotonic()
    certs = make_certificates(lab.tmp / "certs")
    server = lab.redis_server("none", tls=certs)
    client_files = f"ssl_certfile={certs.client_cert}&ssl_keyfile={certs.client_key}"
    good = f"{server.url}?ssl_ca_certs={certs.ca}&{client_files}"
    lab.direct_url = lab.source_url = lab.dlq_url = good
    producer = lab.producer(acts={3: "raise"})
    producer.burst(200 if quick else 2000)
    run = lab.run("--until-idle", PTR_DLQ_KEY=lab.dlq_key, PTR_POLICY="retry(0)")
    code = run.wait(60)
    report = lab.check(producer)
    bad = {
        "no CA file (the server's certificate does not verify)": f"{server.url}?{client_files}",
        "a host name the certificate does not name": good.replace(
            "rediss://localhost:", "rediss://127.0.0.1:"
        ),
        "no client certificate": f"{server.url}?ssl_ca_certs={certs.ca}",
    }
    checks: list[Check] = [
        equal("exit code over TLS", code, 0),
        equal("completed", report.completed, report.produced - 1),
        equal("dead letters written over TLS", report.dead_lettered, 1),
    ]
    for what, url in bad.items():
        proc = lab.run("--until-idle", PTR_SOURCE_URL=url)
        started = time.monotonic()
        refused = proc.wait(60)
        text = proc.log()
        checks.append(check(f"{what}: stops at once with a clear error",
                            refused == 3 and "TLS handshake" in text and time.monotonic() - started < 30,
                            f"exit {refused}: {text[-240:]}"))  # fmt: skip
    return result("S2", "TLS with a CA, a client certificate and host name checking", report, checks, began)
