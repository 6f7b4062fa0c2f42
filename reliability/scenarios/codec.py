"""E1 (oversized messages) and E2 (malformed JSON and msgpack payloads): hostile input is
dead-lettered after one attempt with its reason, never decoded when too large, never
logged in full."""

from __future__ import annotations

import signal
import time

import msgpack

from ..lab import Check, Lab, Result
from ..messages import wait_until
from ..procs import rss_kib
from .common import at_most, check, dead_letter_records, equal, result

# A long run of one byte inside each hostile payload: if it shows in a log line or a
# dead-letter error, the payload was logged in full.
MARK = b"Z" * 64


def e1_oversized(lab: Lab, quick: bool) -> Result:
    """Bodies larger than the codec's max_bytes (a JSON array of many small objects, which
    would take many times its size once decoded) are refused before decoding: dead-lettered
    after one attempt, reason too_large, a short prefix in the error; memory stays bounded."""
    began = time.monotonic()
    size_mib = 4 if quick else 16
    max_bytes = 64 * 1024
    item = b'{"k": 1, "v": "' + MARK[:8] + b'"},'
    count = size_mib * 1024 * 1024 // len(item)
    big = b"[" + item * count + b'{"end": "' + MARK + b'"}]'
    producer = lab.producer()
    producer.burst(100)
    env = {"PTR_DLQ_KEY": lab.dlq_key, "PTR_POLICY": "retry(3, delay_ms=50)", "PTR_MAX_BYTES": str(max_bytes),
           "PTR_MAX_PENDING": "10", "PTR_READ_COUNT": "10"}  # fmt: skip
    proc = lab.run(**env)
    wait_until(lambda: lab.sink_count() >= 100, 60, "the first 100 messages completed")
    baseline = rss_kib(proc.pid)[1] / 1024  # the high-water mark so far
    bad = producer.write_raw([big, big + b" ", big + b"  "])
    producer.burst(100)
    wait_until(lambda: lab.sink_count() >= 200 and lab.dead_letter_count() >= 3, 120, "every message handled")
    peak = rss_kib(proc.pid)[1] / 1024
    proc.signal(signal.SIGTERM)
    code = proc.wait(60)
    report = lab.check(producer)
    records = [r for _, r in dead_letter_records(lab)]
    by_seq = {producer.produced.seqs.get(r.source_id): r for r in records}
    growth = peak - baseline
    log = proc.log()
    checks: list[Check] = [
        equal("exit code after SIGTERM", code, 0),
        equal("dead-lettered", sorted(s for s in by_seq if s is not None), bad),
        equal("reasons", sorted({r.reason for r in records}), ["too_large"]),
        equal("attempts in the records", sorted({r.attempts for r in records}), [1]),
        equal("decode attempts on the oversized bodies", _unknown_attempts(lab), len(bad)),
        check(
            "the error names the size and the limit",
            all(f"max_bytes={max_bytes}" in r.error for r in records),
            records[0].error[:160] if records else "none",
        ),
        at_most(
            "longest dead-letter error (a short prefix, not the payload)",
            max((len(r.error) for r in records), default=0),
            300,
            " chars",
        ),
        check(
            "the body is kept whole in the dead letter (nothing lost)",
            all(len(r.body) >= len(big) for r in records),
        ),
        check("the payload is not in the log", MARK.decode() not in log),
        at_most("RSS growth while refusing them (MiB)", round(growth, 1), 6 * size_mib + 30),
        equal("completed", report.completed, 200),
    ]
    return result("E1", "oversized message", report, checks, began,
                  f"3 bodies of {len(big) / 1048576:.1f} MiB; RSS high-water mark {baseline:.0f} -> {peak:.0f} MiB")  # fmt: skip


def _unknown_attempts(lab: Lab) -> int:
    """Decode calls on bodies that are not harness messages (``decode ?`` lines)."""
    total = 0
    for path in lab.log_dir.glob("handles-*.log"):
        total += sum(1 for line in path.read_text().splitlines() if line.startswith("decode ? "))
    return total


HOSTILE_JSON = [
    b'{"a": ',
    b"\xff\xfe\x00garbage",
    b"[" * 100_000,
    b'{"n": NaN}',
    b'{"a": 1}{"b": 2}',
    b'{"secret": "' + MARK * 8 + b'"',
    b"",
    b"[" * 40 + b"]" * 40,
]
HOSTILE_MSGPACK = [
    b"\xc1",
    b"\x91" * 5000,
    msgpack.packb({1: 2}),
    msgpack.packb(msgpack.ExtType(5, b"x")),
    b"\xdd\xff\xff\xff\xff",
    msgpack.packb({"secret": MARK * 8})[:-10],
    msgpack.packb([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
]


def e2_malformed(lab: Lab, quick: bool) -> Result:
    """Malformed JSON and msgpack payloads (truncated, not UTF-8, nested 100,000 deep, NaN,
    trailing data, extension types, integer map keys, huge length headers): each is
    dead-lettered after one attempt with the decode error; the payload is not logged in
    full; the good messages around them complete."""
    began = time.monotonic()
    checks: list[Check] = []
    total = None
    for codec, hostile in (("json", HOSTILE_JSON), ("msgpack", HOSTILE_MSGPACK)):
        sub = Lab(lab.tmp / codec, lab.main_url, f"{lab.prefix}-{codec}")
        try:
            producer = sub.producer(codec=codec)
            producer.burst(50)
            bad = producer.write_raw(hostile)
            producer.burst(50)
            env = {"PTR_DLQ_KEY": sub.dlq_key, "PTR_POLICY": "retry(3, delay_ms=50)", "PTR_CODEC": codec,
                   "PTR_MAX_DEPTH": "32"}  # fmt: skip
            code = sub.run("--until-idle", **env).wait(120)
            report = sub.check(producer)
            records = [r for _, r in dead_letter_records(sub)]
            seqs = sorted(
                s for s in (producer.produced.seqs.get(r.source_id) for r in records) if s is not None
            )
            text = sub.logs()
            checks += [
                equal(f"{codec}: exit code", code, 0),
                equal(f"{codec}: dead-lettered", seqs, bad),
                equal(f"{codec}: reasons", sorted({r.reason for r in records}), ["decode_error"]),
                equal(f"{codec}: attempts", sorted({r.attempts for r in records}), [1]),
                equal(f"{codec}: decode attempts on them", _unknown_attempts(sub), len(bad)),
                check(
                    f"{codec}: every error says why",
                    all("does not decode" in r.error for r in records),
                    [r.error[:100] for r in records],
                ),
                check(
                    f"{codec}: no payload in full in the log or the records",
                    MARK.decode() not in text and all(MARK.decode() not in r.error for r in records),
                ),
                equal(f"{codec}: completed", report.completed, 100),
            ]
            if total is None:
                total = report
            else:
                for name in (
                    "produced",
                    "completed",
                    "dead_lettered",
                    "stuck",
                    "lost",
                    "dup_sink",
                    "dup_task",
                ):
                    setattr(total, name, getattr(total, name) + getattr(report, name))
        finally:
            sub.close()
    assert total is not None
    return result("E2", "malformed JSON / msgpack payloads", total, checks, began)
