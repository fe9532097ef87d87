"""`--time-limit` benchmark: do whole `imgclf run --preset P --time-limit L` runs end within L (±10%)?

    python benchmarks/time_limit.py --datasets DIR --work W [--cases hymenoptera:balanced:25 clothing10:balanced:150 ...]
        [--out time_limit.json]

Each case is a whole `imgclf run` as a user types it (tracking on, doctor included) in a fresh data
root whose feature cache is empty and whose engine cache holds the work dir's exports (a network is
exported once per machine). Reported per case: the wall time of the command against the limit, what
the plan kept and dropped, the seconds each step took, and the test accuracy (so that a limit met by
dropping everything shows). The limits are chosen below each preset's unlimited time, so that the plan
has to drop work.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datasets import images_folder
from presets import warm_engines

CASES = ("hymenoptera:balanced:25", "cub_warblers:balanced:40", "clothing10:balanced:150",
         "hymenoptera:best:150", "cub_warblers:best:240", "clothing10:best:600")


def run_case(images: Path, preset: str, limit: float, work: Path) -> dict:
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (data / "engines").symlink_to(work / "data" / "engines")  # exports kept; features cold
        cmd = [sys.executable, "-m", "imgclf", "run", "--images", str(images), "--run-dir", str(Path(tmp) / "run"), "-q",
               "--preset", preset, "--time-limit", f"{limit:g}s", "--set", f'data.root="{data}"']
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"imgclf run failed:\n{proc.stderr}")
        m = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    p = m.get("preset") or {}
    kept = [c["featurizers"] for c in p.get("candidates", []) if not str(c["status"]).startswith("dropped")]
    return {"preset": preset, "limit_s": limit, "wall_s": round(wall, 1), "ratio": round(wall / limit, 3),
            "accuracy": m["accuracy"], "winner": p.get("winner"), "kept": kept,
            "dropped": [c["featurizers"] for c in p.get("candidates", []) if str(c["status"]).startswith("dropped")],
            "refinement": (p.get("refinement") or {}).get("status"), "planned_s": p.get("planned_s"),
            "steps_s": {k: v.get("seconds") for k, v in m.get("steps", {}).items() if isinstance(v, dict)},
            "classifier": m.get("classifier", {}).get("type"), "epochs": len(m.get("training_history") or []) or None,
            "c_unscored": m.get("classifier", {}).get("c_unscored")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), help="SET:PRESET:SECONDS")
    ap.add_argument("--datasets", type=Path, required=True, help="folder holding the sets the cases name")
    ap.add_argument("--work", type=Path, required=True, help="folder for run directories and the caches (kept)")
    ap.add_argument("--out", type=Path, default=Path("time_limit.json"))
    args = ap.parse_args()
    warm_engines(args.work / "data" / "engines")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for case in args.cases:
        name, preset, limit = case.split(":")
        images = images_folder(name if name == "demo" else str(args.datasets / name), args.work)
        r = run_case(images, preset, float(limit), args.work)
        results[case] = r
        print(f"{case:<28} {r['wall_s']:7.1f} s  {r['ratio']:5.2f}x  {100 * r['accuracy']:.2f}%  {r['winner']}  "
              f"refinement: {r['refinement']}  steps {r['steps_s']}", file=sys.stderr, flush=True)
        args.out.write_text(json.dumps(results, indent=1))
    print(table(results))


def table(results: dict) -> str:
    lines = ["| case | limit s | wall s | wall / limit | test accuracy | kept | refinement |", "|---|---|---|---|---|---|---|"]
    for case, r in results.items():
        lines.append(f"| {case} | {r['limit_s']:g} | {r['wall_s']} | {r['ratio']:.2f} | {100 * r['accuracy']:.2f} | "
                     f"{r['winner']} | {r['refinement'] or '—'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
