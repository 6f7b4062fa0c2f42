"""The checker: reads the outcome records of a run and says what happened to every message.

Outcome records, all in Redis or in files, never in the memory of the processes under
test (which may have been killed):

* the **sink stream** the last task writes (``seq``, ``ok``): completed messages;
* the **dead-letter stream** (:func:`~pytempest.deadletters.redis.record_from_fields`):
  dead-lettered messages, named by their body, else by their source id;
* the **source**: the consumer group's pending entries and the entries not delivered yet
  (stuck: still to be delivered again; nothing is lost while they are there);
* the **handle logs** (``handles-<pid>.log``, ``<task> <seq>`` per call): task-level
  duplicates.

Every produced message ends in exactly one class: completed, dead-lettered, stuck,
dropped (acked without an outcome record, allowed only where a scenario's policy says so:
``best_effort``, or retries exhausted without a dead letter), or **lost**. Lost must be 0.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from pytempest.deadletters.redis import record_from_fields

from .messages import Produced, parse


@dataclass
class Report:
    """What happened to the messages of one run (see the module docstring)."""

    produced: int = 0
    completed: int = 0
    dead_lettered: int = 0
    stuck: int = 0
    dropped: int = 0
    lost: int = 0
    lost_by_redis: int = 0
    """Messages Redis itself lost (restarted without persistence): counted, not ours."""
    corrupted: int = 0
    dup_task: int = 0
    dup_sink: int = 0
    dup_dead_letter: int = 0
    stale_dropped: int = 0
    first_progress_ms: int | None = None
    drained_ms: int | None = None
    peak_rss_mib: float = 0.0
    lost_seqs: list[int] = field(default_factory=list)
    stuck_seqs: list[int] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)

    def row(self) -> dict[str, Any]:
        """The figures of the results table."""
        keep = ("produced", "completed", "dead_lettered", "stuck", "dropped", "lost", "lost_by_redis", "corrupted",
                "dup_task", "dup_sink", "stale_dropped", "first_progress_ms", "drained_ms", "peak_rss_mib")  # fmt: skip
        data = asdict(self)
        return {k: data[k] for k in keep}

    def summary(self) -> str:
        r = self.row()
        text = " ".join(f"{k}={v}" for k, v in r.items() if v is not None)
        if self.lost_seqs:
            text += f" lost_seqs={self.lost_seqs[:20]}"
        return text


@dataclass
class Run:
    """Where one scenario's records are."""

    source_url: str
    source_key: str
    group: str
    sink_url: str
    sink_key: str
    dlq_url: str | None = None
    dlq_key: str | None = None
    log_dir: Path | None = None


def read_sink(client: redis.Redis, key: str) -> tuple[Counter[int], int, list[int]]:
    """(entries per seq, corrupted entries, entry times in ms) of the sink stream."""
    per_seq: Counter[int] = Counter()
    corrupted = 0
    times: list[int] = []
    for raw_id, fields in _xrange_all(client, key):
        per_seq[int(fields[b"seq"])] += 1
        corrupted += fields.get(b"ok") != b"1"
        times.append(int(raw_id.split(b"-")[0]))
    return per_seq, corrupted, times


def read_dead_letters(
    client: redis.Redis, key: str, produced: Produced
) -> tuple[Counter[int], Counter[str], list[int]]:
    """(records per seq, reasons, record times in ms); a record whose body is not a
    harness message is matched by its source id."""
    per_seq: Counter[int] = Counter()
    reasons: Counter[str] = Counter()
    times: list[int] = []
    for raw_id, fields in _xrange_all(client, key):
        record = record_from_fields(fields)
        msg = parse(record.body)
        seq = msg.seq if msg is not None else produced.seqs.get(record.source_id, -1)
        per_seq[seq] += 1
        reasons[record.reason] += 1
        times.append(int(raw_id.split(b"-")[0]))
    return per_seq, reasons, times


def read_stuck(client: redis.Redis, key: str, group: str, produced: Produced) -> set[int]:
    """Messages still at the source: pending in the group, or not delivered to it yet."""
    stuck: set[str] = set()
    if not client.exists(key):
        return set()
    groups = {g["name"].decode(): g for g in client.xinfo_groups(key)}
    if group not in groups:  # nothing was read yet: every entry is still to be delivered
        return {produced.seqs[i.decode()] for i, _ in _xrange_all(client, key) if i.decode() in produced.seqs}
    start = "-"
    while True:
        rows = client.xpending_range(key, group, start, "+", 1000)
        stuck.update(r["message_id"].decode() for r in rows)
        if len(rows) < 1000:
            break
        start = "(" + rows[-1]["message_id"].decode()
    last = groups[group]["last-delivered-id"].decode()
    for raw_id, _ in _xrange_all(client, key, "(" + last):
        stuck.add(raw_id.decode())
    return {produced.seqs[i] for i in stuck if i in produced.seqs}


def read_handles(log_dir: Path | None) -> dict[str, Counter[int]]:
    """Handle calls per task and seq, from every process's handle log."""
    out: dict[str, Counter[int]] = {}
    for task, seq, _ in handle_lines(log_dir):
        out.setdefault(task, Counter())[seq] += 1
    return out


def handle_lines(log_dir: Path | None) -> list[tuple[str, int, int]]:
    """Every ``(task, seq, epoch ms)`` of the handle logs (lines of unknown seqs left out)."""
    out: list[tuple[str, int, int]] = []
    if log_dir is None:
        return out
    for path in sorted(log_dir.glob("handles-*.log")):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] != "?":
                out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def check(
    run: Run,
    produced: Produced,
    *,
    allowed_drops: set[int] | frozenset[int] = frozenset(),
    fault_ms: int | None = None,
    stale_dropped: int = 0,
    peak_rss_mib: float = 0.0,
) -> Report:
    """Classify every produced message; ``fault_ms`` (epoch ms) times the recovery."""
    sink = redis.Redis.from_url(run.sink_url)
    source = redis.Redis.from_url(run.source_url)
    dlq = redis.Redis.from_url(run.dlq_url) if run.dlq_url and run.dlq_key else None
    try:
        sink_seqs, corrupted, sink_times = read_sink(sink, run.sink_key)
        dl_seqs: Counter[int] = Counter()
        reasons: Counter[str] = Counter()
        dl_times: list[int] = []
        if dlq is not None and run.dlq_key:
            dl_seqs, reasons, dl_times = read_dead_letters(dlq, run.dlq_key, produced)
        stuck = read_stuck(source, run.source_key, run.group, produced)
    finally:
        for client in (sink, source, dlq):
            if client is not None:
                client.close()
    handles = read_handles(run.log_dir)
    report = Report(produced=len(produced.ids), corrupted=corrupted, stale_dropped=stale_dropped,
                    peak_rss_mib=round(peak_rss_mib, 1), dead_letter_reasons=reasons)  # fmt: skip
    seqs = set(produced.ids)
    completed = seqs & set(sink_seqs)
    dead = (seqs & set(dl_seqs)) - completed
    still = (seqs & stuck) - completed - dead
    dropped = (seqs & set(allowed_drops)) - completed - dead - still
    lost = seqs - completed - dead - still - dropped
    report.completed, report.dead_lettered, report.stuck = len(completed), len(dead), len(still)
    report.dropped, report.lost = len(dropped), len(lost)
    report.lost_seqs, report.stuck_seqs = sorted(lost), sorted(still)
    report.dup_sink = sum(n - 1 for n in sink_seqs.values() if n > 1)
    report.dup_dead_letter = sum(n - 1 for n in dl_seqs.values() if n > 1)
    report.dup_task = sum(n - 1 for counts in handles.values() for n in counts.values() if n > 1)
    if "decode" in handles:
        report.attempts = dict(handles["decode"])
    times = sorted(sink_times + dl_times)
    if fault_ms is not None and times:
        after = [t for t in times if t >= fault_ms]
        report.first_progress_ms = after[0] - fault_ms if after else None
        report.drained_ms = max(0, times[-1] - fault_ms)
    return report


def final_metrics(path: Path) -> dict[str, float]:
    """The counters and gauges of the last line of a file metric target (empty if none)."""
    if not path.exists():
        return {}
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        return {}
    last = json.loads(lines[-1])
    return {**last.get("counters", {}), **last.get("gauges", {})}


def _xrange_all(client: redis.Redis, key: str, start: str = "-") -> list[tuple[bytes, dict[bytes, bytes]]]:
    out: list[tuple[bytes, dict[bytes, bytes]]] = []
    while True:
        page = client.xrange(key, start, "+", count=1000)
        out.extend(page)
        if len(page) < 1000:
            return out
        start = "(" + page[-1][0].decode()
