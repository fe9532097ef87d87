"""Presets benchmark: `imgclf run --preset fast|balanced|best` beside fixed featurizer settings, per set.

    python benchmarks/presets.py --datasets DIR --work W [--sets hymenoptera clothing10 cub_warblers demo]
        [--presets fast balanced best] [--seeds 3] [--first-seed 0] [--out presets.json]

Each preset is a whole `imgclf run` (the CLI a user calls, doctor included) in a fresh data root
whose feature cache is empty and whose engine cache holds the work dir's exports (a network is
exported once per machine): the wall time includes featurizing every candidate. The fixed settings
(each candidate alone, and lite0@224+lite2@320) run with the work dir's shared caches, doctor off:
their test accuracy is what a person trying them by hand would see; the best of them is the
"best single fixed setting" the balanced preset is measured against (chosen on the test split, so it
flatters the fixed side). Sets with no split of their own (demo) run with 3 split seeds.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from accuracy import run_once
from datasets import images_folder

FIXED = ("efficientnet_lite0@224", "efficientnet_lite0@320", "efficientnet_lite1@256", "efficientnet_lite2@320",
         "efficientnet_lite0@224+efficientnet_lite2@320")
FIXED_SPLIT = {"hymenoptera", "clothing10", "cub_warblers"}  # sets with train/ test/ folders of their own


KEPT = ("split.csv", "features.npz", "candidates.json", "metrics.json", "ensemble_components.npz", "model/bundle.json", "model/head.npz")


def imgclf_run(images: Path, work: Path, sets: list[str], keep: Path | None = None) -> dict:
    """accuracy.py's whole `imgclf run` in ``work`` (data root ``work/data``, run dir ``work/run``), and what the preset chose;
    ``keep``: a folder that receives the run's split, features, choices and head (no networks) for later analysis."""
    r = run_once(images, sets, work)
    if keep is not None:
        for name in KEPT:
            if (work / "run" / name).is_file():
                (keep / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(work / "run" / name, keep / name)
    preset = json.loads((work / "run" / "metrics.json").read_text()).get("preset") or {}
    ensemble = preset.get("ensemble") or {}
    return {**r, "wall_s": round(r["wall_s"], 1), "winner": preset.get("winner"), "candidates": preset.get("candidates"),
            "ensemble": ensemble.get("chosen"), "components": ensemble.get("components"), "refinement": preset.get("refinement"),
            "refine_seconds": ensemble.get("refine_seconds"), "refine_s_per_image_epoch": ensemble.get("refine_s_per_image_epoch")}


def fixed_sets(name: str) -> list[str]:
    first, *rest = name.split("+")
    backbone, res = first.split("@")
    return [f'model.backbone="{backbone}"', f"model.resolution={res}", f"model.featurizers={json.dumps(rest)}",
            "doctor.enabled=false", "data.check_leakage=false"]


def bench_set(images: Path, seed: int, work: Path, balanced: list[str] = (), fixed: bool = True,
              presets: tuple[str, ...] = ("fast", "balanced", "best"), keep: Path | None = None) -> dict:
    out: dict = {"seed": seed, "presets": {}, "fixed": {}}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for preset in presets:
            (Path(tmp) / preset / "data").mkdir(parents=True)
            (Path(tmp) / preset / "data" / "engines").symlink_to(work / "data" / "engines")  # exports kept; features cold
            extra = list(balanced) if preset in ("balanced", "best") else []
            kept = keep / f"{images.name}-{seed}-{preset}" if keep else None
            out["presets"][preset] = imgclf_run(images, Path(tmp) / preset, [f"train.preset={preset}", f"data.seed={seed}", *extra], kept)
            print(f"  seed {seed} {preset:<9} {out['presets'][preset]}", file=sys.stderr, flush=True)
        if "fast" in out["presets"]:
            out["fixed"][FIXED[0]] = out["presets"]["fast"]  # fast is lite0@224 alone
        for name in FIXED[1:] if fixed else ():
            shared = [f'data.root="{work / "data"}"', *fixed_sets(name), f"data.seed={seed}"]  # shared caches
            r = imgclf_run(images, Path(tmp) / name, shared)
            out["fixed"][name] = r
            print(f"  seed {seed} {name:<45} {100 * r['accuracy']:.2f}%", file=sys.stderr, flush=True)
    return out


def warm_engines(engines: Path) -> None:
    """Export every candidate network once, so that no timed run pays a one-time export."""
    from imgclf.config.settings import EngineConfig, ModelConfig
    from imgclf.features.featurize import build_featurizer
    from imgclf.presets.select import CANDIDATES

    engines.mkdir(parents=True, exist_ok=True)
    for name in CANDIDATES:
        backbone, res = name.split("@")
        for precision in ("auto", "fp32"):  # the engine's own, and the fp32 file a bundle copies
            build_featurizer(ModelConfig(backbone=backbone, resolution=int(res)), EngineConfig(precision=precision), cache_dir=engines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["hymenoptera", "clothing10", "cub_warblers", "demo"])
    ap.add_argument("--datasets", type=Path, required=True, help="folder holding the --sets folders")
    ap.add_argument("--work", type=Path, required=True, help="folder for run directories and the caches (kept)")
    ap.add_argument("--seeds", type=int, default=3, help="split seeds of sets without a split of their own")
    ap.add_argument("--first-seed", type=int, default=0, help="the first of those seeds")
    ap.add_argument("--out", type=Path, default=Path("presets.json"))
    ap.add_argument("--balanced-set", action="append", default=[], help="extra setting of the balanced runs (repeatable)")
    ap.add_argument("--keep", type=Path, help="copy each preset run's split, features, choices and head here")
    ap.add_argument("--no-fixed", action="store_true", help="presets only (no fixed settings)")
    ap.add_argument("--presets", nargs="+", default=["fast", "balanced", "best"], choices=["fast", "balanced", "best"])
    args = ap.parse_args()
    warm_engines(args.work / "data" / "engines")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in args.sets:
        images = images_folder(name if name == "demo" else str(args.datasets / name), args.work)
        seeds = [0] if name in FIXED_SPLIT else list(range(args.first_seed, args.first_seed + args.seeds))
        print(f"{name}: {images}", file=sys.stderr, flush=True)
        results[name] = [bench_set(images, s, args.work, args.balanced_set, not args.no_fixed, tuple(args.presets), args.keep) for s in seeds]
        args.out.write_text(json.dumps(results, indent=1))
    print(table(results))


def _mean(xs: list[float]) -> float:
    return statistics.mean(xs)


def table(results: dict) -> str:
    """Markdown: per set, mean over seeds of accuracy / class-averaged accuracy and median wall time of each preset run,
    what balanced and best chose, and the best fixed setting (by test accuracy) where fixed settings ran."""
    presets = [p for p in ("fast", "balanced", "best") if any(p in r["presets"] for runs in results.values() for r in runs)]
    head = [h for p in presets for h in (f"{p} acc / class-avg", "wall s")]
    lines = ["| set | " + " | ".join(head) + " | balanced chose | best chose (weights svm/head/svm_on_refined, flip) | best fixed (by test) | acc |",
             "|" + "---|" * (len(head) + 5)]
    for name, runs in results.items():
        row = [name]
        for preset in presets:
            rs = [r["presets"][preset] for r in runs if preset in r["presets"]]
            if not rs:
                row += ["—", "—"]
                continue
            row.append(f"{100 * _mean([r['accuracy'] for r in rs]):.2f} / {100 * _mean([r['class_avg_accuracy'] for r in rs]):.2f}")
            row.append(f"{statistics.median(r['wall_s'] for r in rs):.1f}")
        row.append(", ".join(sorted({r["presets"]["balanced"]["winner"] or "—" for r in runs if "balanced" in r["presets"]})) or "—")
        row.append("; ".join(_ensemble_text(r["presets"]["best"]) for r in runs if "best" in r["presets"]) or "—")
        fixed = {k: _mean([r["fixed"][k]["accuracy"] for r in runs]) for k in runs[0]["fixed"]}
        best = max(fixed, key=fixed.get) if fixed else None
        row += [best or "—", f"{100 * fixed[best]:.2f}" if best else "—"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _ensemble_text(r: dict) -> str:
    e = r.get("ensemble")
    if not e:
        return f"{r.get('winner')}, no ensemble ({(r.get('refinement') or {}).get('status', '?')})"
    w = "/".join(f"{v:g}" for v in e["weights"].values())
    return f"{r.get('winner')}; {w}{', flip' if e['tta_flip'] else ''}"


if __name__ == "__main__":
    main()
