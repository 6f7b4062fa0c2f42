"""C1, C2, C4: slow tasks, poison messages and the failure-policy matrix (DESIGN.md 3)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..checker import Report, handle_lines
from ..lab import Check, Lab, Result
from .common import at_most, check, dead_letter_records, equal, result, sink_times


def c2_poison(lab: Lab, quick: bool) -> Result:
    """A poison message with retry(3): exactly 4 attempts, one complete dead-letter
    record, and the messages behind it flow while it waits for its retries."""
    began = time.monotonic()
    n, poison = (300 if quick else 3000), 10
    producer = lab.producer(acts={poison: "raise"})
    producer.burst(n)
    proc = lab.run("--until-idle", PTR_DLQ_KEY=lab.dlq_key, PTR_POLICY="retry(3, delay_ms=300)",
                   PTR_MAX_PENDING="50")  # fmt: skip
    code = proc.wait(120)
    report = lab.check(producer)
    records = dead_letter_records(lab)
    checks = [
        equal("exit code", code, 0),
        equal("attempts of the poison message", report.attempts.get(poison), 4),
        equal("dead-letter records", len(records), 1),
        equal("completed", report.completed, n - 1),
        equal("sink duplicates", report.dup_sink, 0),
    ]
    if records:
        when, rec = records[0]
        complete = (
            rec.body == producer.body(poison) and rec.source_id == producer.produced.ids[poison]
            and rec.task == "decode" and "poison message 10" in rec.error and rec.reason == "error"
            and rec.attempts == 4 and rec.topology == lab.name
            and rec.source == f"redis_stream:{lab.source_key}"
            and 0 < rec.first_failure_ms <= rec.last_failure_ms
        )  # fmt: skip
        checks.append(check("the record is complete", complete, rec))
        behind = [max(ts) for seq, ts in sink_times(lab).items() if seq > poison]
        last = max(behind, default=when + 1)
        checks.append(check("the messages behind it finished before it was dead-lettered", last <= when,
                            f"{len(behind)} messages, the last {when - last} ms before the record"))  # fmt: skip
    return result("C2", "a poison message with retry(3)", report, checks, began)


def c1_slow_task(lab: Lab, quick: bool) -> Result:
    """A task slower than msg_timeout_ms: the timer fails the message within a second of
    its deadline (retry(0): dead-lettered at once) and the other messages go on."""
    began = time.monotonic()
    n, slow, timeout_ms = (200 if quick else 1000), 5, 1000
    producer = lab.producer(acts={slow: "sleep:4000"})
    producer.burst(n)
    proc = lab.run("--until-idle", PTR_DLQ_KEY=lab.dlq_key, PTR_POLICY="retry(0)",
                   PTR_MSG_TIMEOUT_MS=str(timeout_ms), PTR_MAX_PENDING="20")  # fmt: skip
    code = proc.wait(120)
    report = lab.check(producer)
    records = dead_letter_records(lab)
    read_ms = min(
        (t for task, seq, t in handle_lines(lab.log_dir) if task == "decode" and seq == slow), default=0
    )
    checks: list[Check] = [equal("exit code", code, 0), equal("dead-letter records", len(records), 1),
                           equal("completed", report.completed, n - 1)]  # fmt: skip
    if records:
        _, rec = records[0]
        late = rec.last_failure_ms - (read_ms + timeout_ms)
        checks.append(equal("reason", rec.reason, "timeout"))
        checks.append(at_most("failed after its deadline by", late, 1000, " ms"))
        others = [max(ts) for seq, ts in sink_times(lab).items() if seq != slow]
        checks.append(check("the others were not delayed: all done before the slow one's deadline",
                            max(others, default=0) <= read_ms + timeout_ms,
                            f"last other done {max(others, default=0) - read_ms} ms after the slow one was read"))  # fmt: skip
    return result("C1", "a task slower than msg_timeout_ms", report, checks, began)


@dataclass(frozen=True)
class Row:
    policy: str
    fault: str
    dead_letter: bool


ROWS = [Row(p, f, d) for p, d in (("none", False), ("best_effort", False), ("retry(2, delay_ms=50)", True),
                                   ("retry(2, delay_ms=50)", False)) for f in ("error", "timeout")]  # fmt: skip


def c4_matrix(lab: Lab, quick: bool) -> Result:
    """Every failure policy against an error and a timeout: the outcome counts are those of
    DESIGN.md section 3, row by row."""
    began = time.monotonic()
    checks: list[Check] = []
    reports = []
    for i, row in enumerate(ROWS):
        sub = Lab(lab.tmp / f"row{i}", lab.main_url, f"{lab.prefix}-r{i}")
        try:
            row_checks, row_report = _matrix_row(sub, row, 20 if quick else 200)
            checks.extend(row_checks)
            reports.append(row_report)
        finally:
            sub.close()
    total = reports[0]
    for r in reports[1:]:
        for name in ("produced", "completed", "dead_lettered", "stuck", "dropped", "lost", "dup_sink", "dup_task",
                     "stale_dropped"):  # fmt: skip
            setattr(total, name, getattr(total, name) + getattr(r, name))
    return result("C4", "failure-policy matrix", total, checks, began)


def _matrix_row(lab: Lab, row: Row, n: int) -> tuple[list[Check], Report]:
    bad = {3, n // 2}
    act = "raise" if row.fault == "error" else "sleep:1200"
    producer = lab.producer(acts=dict.fromkeys(bad, act))
    producer.burst(n)
    env = {"PTR_POLICY": row.policy, "PTR_MSG_TIMEOUT_MS": "400", "PTR_MAX_PENDING": "10"}
    if row.dead_letter:
        env["PTR_DLQ_KEY"] = lab.dlq_key
    code = lab.start("run", "reliability.topology:topology", "--quiet", "--until-idle",
                     PTR_METRICS_FILE=str(lab.metrics_file), **env).wait(120)  # fmt: skip
    drops = (
        bad
        if row.policy in ("best_effort",) or (row.policy.startswith("retry") and not row.dead_letter)
        else set()
    )
    report = lab.check(producer, allowed_drops=drops)
    m = lab.metrics()

    def metric(key: str) -> int:
        return int(m.get(f"{lab.name}.{key}", 0))

    retry = row.policy.startswith("retry")
    failed_key = "topology.source.msg.error" if row.fault == "error" else "topology.source.msg.timeout"
    expected = {
        "completed": n - 2,
        "stuck (unacked at the source)": 2 if row.policy == "none" else 0,
        "dead-lettered": 2 if row.dead_letter else 0,
        "dropped (acked without an outcome)": 2 if drops else 0,
        "acked": n - 2 if row.policy == "none" else n,
        "failed attempts": 6 if retry else 2,
        "retries queued": 4 if retry else 0,
        "retry.dropped": 2 if retry and not row.dead_letter else 0,
        "released": 2 if row.policy == "none" else 0,
    }
    got = {
        "completed": report.completed,
        "stuck (unacked at the source)": report.stuck,
        "dead-lettered": report.dead_lettered,
        "dropped (acked without an outcome)": report.dropped,
        "acked": metric("source.msg.acked.success"),
        "failed attempts": metric(failed_key),
        "retries queued": metric("topology.source.msg.retry.queued"),
        "retry.dropped": metric("topology.source.msg.retry.dropped"),
        "released": metric("topology.source.msg.released"),
    }
    label = f"{row.policy}{' + dead letter' if row.dead_letter else ''} x {row.fault}"
    wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    checks = [check(f"{label}: outcome counts", not wrong and code == 0 and report.lost == 0,
                    f"exit {code}, lost {report.lost}; " + ("as expected" if not wrong else f"(got, expected): {wrong}"))]  # fmt: skip
    if row.dead_letter:
        reasons = sorted({rec.reason for _, rec in dead_letter_records(lab)})
        checks.append(equal(f"{label}: dead-letter reason", reasons, [row.fault]))
    return checks, report
