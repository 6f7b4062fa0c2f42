"""``python -m benchmarks``: the side-by-side suite (W1 to W5) against the peers.

    python -m benchmarks all               # every workload, every installed system, 3 rounds
    python -m benchmarks w1 w3 --rounds 5  # some workloads
    python -m benchmarks all --quick       # tiny sizes, one round: checks that everything runs
    python -m benchmarks report            # redo the tables, docs/performance.md and the chart

The peers come with the optional extra: ``pip install -e '.[bench]'``; a system whose
package is missing is skipped with a note. A full run writes ``benchmarks/results/latest.json``
and regenerates ``docs/performance.md``'s tables and ``docs/img/performance.png``; other
runs write only where ``--out`` says. The single-purpose diagnostics stay where they were
(``python -m benchmarks.engine``, ``.redis_stream``, ``.distributed``, ``.metrics_overhead``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import redis

from benchmarks.suite.plan import FULL, QUICK
from benchmarks.suite.report import chart, print_summary, write_doc
from benchmarks.suite.runner import BenchError
from benchmarks.suite.spec import SYSTEMS
from benchmarks.suite.suite import WORKLOADS, run_suite, save

ROOT = Path(__file__).resolve().parent.parent
LATEST = ROOT / "benchmarks" / "results" / "latest.json"
DOC = ROOT / "docs" / "performance.md"
PNG = ROOT / "docs" / "img" / "performance.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", nargs="+", help="all, report, or workloads: w1 w2 w3 w4 w5")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; --quick 1)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated (default: all)")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0", help="the Redis to measure on")
    parser.add_argument(
        "--out",
        type=Path,
        help="results file: written by a run (default: latest.json for full runs), read by report",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/performance.md")
    parser.add_argument("--doc", type=Path, default=DOC, help="the page whose tables are regenerated")
    parser.add_argument("--png", type=Path, default=PNG, help="the chart to write")
    args = parser.parse_args(argv)
    what = [w.lower() for w in args.what]

    if what == ["report"]:
        source = args.out or LATEST
        try:
            results = json.loads(source.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read the results file {source}: {exc}")
        print_summary(results)
        write_doc(results, args.doc)
        chart(results, args.png)
        print(f"\nwrote {args.doc} and {args.png}")
        return 0

    unknown = [w for w in what if w != "all" and w.upper() not in WORKLOADS]
    systems = tuple(s for s in args.systems.split(",") if s)
    bad = [s for s in systems if s not in SYSTEMS]
    if unknown or bad:
        parser.error(
            f"unknown {'workload' if unknown else 'system'}(s) {unknown or bad}; workloads are "
            f"all, report, {', '.join(w.lower() for w in WORKLOADS)}; systems are {', '.join(SYSTEMS)}"
        )
    workloads = WORKLOADS if "all" in what else tuple(w.upper() for w in what)
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    full = not args.quick and workloads == WORKLOADS and set(systems) == set(SYSTEMS)
    try:
        redis.Redis.from_url(args.url, socket_connect_timeout=2).ping()
    except (redis.RedisError, ValueError) as exc:
        parser.error(f"cannot reach Redis at {args.url}: {exc}")
    try:
        results = run_suite(plan, args.url, workloads, systems)
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    print()
    print_summary(results)
    out = args.out or (LATEST if full else None)
    if out is not None:
        save(results, out)
        print(f"\nresults in {out}")
    if full and not args.no_docs:
        write_doc(results, args.doc)
        chart(results, args.png)
        print(f"wrote {args.doc} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
