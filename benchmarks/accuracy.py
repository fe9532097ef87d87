"""Accuracy benchmark: `imgclf run` on a folder; prints accuracy, class-averaged accuracy, wall time.

    python benchmarks/accuracy.py DIR [--set k=v ...] [--resolutions 224 320] [--repeats 1]

Each configuration runs in a fresh run directory with a fresh feature cache (so the wall time
includes featurization), as the CLI a user would call.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(images: Path, sets: list[str], work: Path) -> dict:
    run_dir = work / "run"
    cmd = [sys.executable, "-m", "imgclf", "run", "--images", str(images), "--run-dir", str(run_dir), "-q",
           "--set", f'data.root="{work / "data"}"', "--set", "tracking.enabled=false"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"imgclf run failed:\n{proc.stderr}")
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"accuracy": m["accuracy"], "class_avg_accuracy": m["class_avg_accuracy"], "wall_s": wall,
            "n_train": m["n_train"], "n_test": m["n_test"], "C": m["classifier"].get("C")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", type=Path)
    ap.add_argument("--set", action="append", default=[], help="extra imgclf setting (repeatable)")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[224])
    ap.add_argument("--repeats", type=int, default=1, help="runs per configuration (median wall time)")
    args = ap.parse_args()
    print(f"dataset: {args.images}")
    print(f"{'resolution':>10} {'accuracy':>9} {'class-avg':>9} {'wall s':>8} {'train':>6} {'test':>5} {'C':>7}")
    for res in args.resolutions:
        results = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as work:
                results.append(run_once(args.images, args.set + [f"model.resolution={res}"], Path(work)))
        r = results[0]
        wall = statistics.median(x["wall_s"] for x in results)
        print(f"{res:>10} {100 * r['accuracy']:>8.2f}% {100 * r['class_avg_accuracy']:>8.2f}% {wall:>8.1f} "
              f"{r['n_train']:>6} {r['n_test']:>5} {r['C']:>7}")


if __name__ == "__main__":
    main()
