"""Run the reliability suite or the soak and write a markdown report.

    python -m reliability run [--only A1,B1] [--quick] [--report reliability/REPORT.md]
    python -m reliability soak [--minutes 10] [--seed 1] [--report reliability/SOAK.md]
    python -m reliability list

``--redis URL`` (default ``$PYTEMPEST_TEST_REDIS_URL`` or ``redis://127.0.0.1:6379/0``) is
the stable Redis for sinks, dead letters and the distributed runtime; scenarios that
break Redis start their own ``redis-server`` on a spare port. Every key a scenario makes
is deleted after it. Exit code 0 when every scenario passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import report
from .checker import Report
from .lab import Check, Lab, Result
from .scenarios import SCENARIOS

HERE = Path(__file__).resolve().parent


def _run_one(sid: str, url: str, quick: bool, tmp: Path) -> Result:
    title, scenario = SCENARIOS[sid]
    began = time.monotonic()
    print(f"== {sid} {title} ...", flush=True)
    try:
        with Lab(tmp / sid, url) as lab:
            result = scenario(lab, quick)
    except Exception as exc:  # a scenario that breaks is a failed scenario, reported
        result = Result(sid, title, Report(), [Check("the scenario ran", False, f"{type(exc).__name__}: {exc}")],
                        time.monotonic() - began, [traceback.format_exc(limit=3)])  # fmt: skip
    print(result.explain(), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--redis", default=os.environ.get("PYTEMPEST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the scenarios (all, or --only)")
    run.add_argument("--only", default="", help="comma-separated scenario ids")
    run.add_argument("--quick", action="store_true", help="the CI sizes")
    run.add_argument("--report", type=Path, default=HERE / "REPORT.md")
    soak = sub.add_parser("soak", help="the random-kill soak")
    soak.add_argument("--minutes", type=float, default=10.0)
    soak.add_argument("--seed", type=int, default=1)
    soak.add_argument("--report", type=Path, default=HERE / "SOAK.md")
    sub.add_parser("list", help="list the scenarios")
    args = parser.parse_args(argv)

    if args.command == "list":
        for sid, (title, _) in SCENARIOS.items():
            print(f"{sid:5} {title}")
        return 0
    with tempfile.TemporaryDirectory(prefix="pytempest-reliability-") as tmp:
        if args.command == "soak":
            from .soak import soak as run_soak

            with Lab(Path(tmp) / "soak", args.redis) as lab:
                results = [run_soak(lab, args.minutes, args.seed)]
            command = f"python -m reliability soak --minutes {args.minutes:g} --seed {args.seed}"
            print(results[0].explain())
            report.write(args.report, "Random-kill soak", command, results)
        else:
            ids = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
            unknown = [s for s in ids if s not in SCENARIOS]
            if unknown:
                parser.error(f"unknown scenario(s) {', '.join(unknown)}; see `python -m reliability list`")
            results = [_run_one(sid, args.redis, args.quick, Path(tmp)) for sid in ids]
            command = "python -m reliability run" + (" --quick" if args.quick else "") + (
                f" --only {args.only}" if args.only else "")  # fmt: skip
            report.write(args.report, "Reliability suite", command, results)
    print(f"report: {args.report}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
