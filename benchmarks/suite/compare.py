"""What a change bought: one workload on pytempest at several git revisions, interleaved.

    python -m benchmarks.suite.compare W2 --at b332051,561f359 [--rounds 3] [--n 10000]

Each revision's ``src/`` is checked out into a temporary git worktree and put first on
the children's ``PYTHONPATH``, so the same benchmark code (this checkout's) measures each
revision's pytempest, round after round (A B A B ...), with the baseline in every round.
Prints the median of each figure and its ratio to the baseline of the same round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks.suite.runner import percentile, run_one, streams

ROOT = Path(__file__).resolve().parents[2]


def figure(workload: str, result: object) -> float:
    """msgs/s (W1, W2), p99 ms (W3) or RSS bytes per in-flight message (W4)."""
    r = result
    if workload == "W3":
        return percentile(r.latencies_ms, 0.99)  # type: ignore[attr-defined]
    if workload == "W4":
        return r.rss_bytes / r.handled  # type: ignore[attr-defined]
    return r.handled / r.seconds / (71 if workload == "W2" else 1)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workload", choices=["W1", "W2", "W3", "W4"])
    parser.add_argument("--at", required=True, help="comma-separated git revisions")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, help="source messages (W3: rate x 10 s)")
    parser.add_argument("--rate", type=int, default=2000, help="W3 rate")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    n = args.n or {"W1": 200_000, "W2": 10_000, "W3": args.rate * 10, "W4": 10_000}[args.workload]
    revs = [r for r in args.at.split(",") if r]
    unit = {"W3": "p99 ms", "W4": "RSS B/msg"}.get(args.workload, "msgs/s")
    figures: dict[str, list[float]] = {rev: [] for rev in ["baseline", *revs]}
    ratios: dict[str, list[float]] = {rev: [] for rev in revs}
    with tempfile.TemporaryDirectory(prefix="pt-compare-") as tmp:
        trees = {}
        for rev in revs:
            tree = Path(tmp) / rev.replace("/", "_")
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                           check=True, capture_output=True)  # fmt: skip
            trees[rev] = tree
        saved = os.environ.get("PYTHONPATH")
        try:
            with streams(args.url) as s:
                for rnd in range(args.rounds):
                    os.environ.pop("PYTHONPATH", None)
                    base = figure(args.workload, run_one(s, "baseline", args.workload, n, rate=args.rate))
                    figures["baseline"].append(base)
                    for rev in revs:
                        os.environ["PYTHONPATH"] = f"{trees[rev] / 'src'}{os.pathsep}{ROOT}"
                        value = figure(
                            args.workload, run_one(s, "pytempest", args.workload, n, rate=args.rate)
                        )
                        figures[rev].append(value)
                        ratios[rev].append(value / base)
                    line = ", ".join(f"{k} {v[-1]:,.2f}" for k, v in figures.items())
                    print(f"round {rnd + 1}: {line} ({unit})", flush=True)
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               check=False, capture_output=True)  # fmt: skip
    print(f"\n{args.workload}, n={n}, median of {args.rounds} round(s) ({unit}; ratio to the baseline):")
    print(f"  baseline: {statistics.median(figures['baseline']):,.2f}")
    for rev in revs:
        print(f"  {rev}: {statistics.median(figures[rev]):,.2f} (ratio {statistics.median(ratios[rev]):.2f})")


if __name__ == "__main__":
    main()
