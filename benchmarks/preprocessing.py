"""Does the faster path change accuracy? The crop resampler (area vs the backbone's bicubic) and the
inference precision (bf16 vs fp32), on real and generated data, over several split seeds.

    .venv/bin/python benchmarks/preprocessing.py ../shared/datasets/hymenoptera [more folders] [--seeds 0 1 2] [--demo]

Each folder's images are pooled (its own train/val/test subfolders are ignored) and split anew per
seed (75/25, stratified), so the figures average over splits; ``--demo`` adds the embedded demo set
(300 generated texture images). Every variant sees the same splits; features are cached by content,
so a seed only re-runs the SVM. Prints class-averaged test accuracy per variant, its mean over seeds
and the difference to the first variant (by default the old default, bicubic fp32).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

VARIANTS = {  # name -> settings
    "bicubic fp32 (old default)": ['model.resampler="native"', 'engine.backend="onnxruntime"', 'engine.precision="fp32"'],
    "area fp32": ['model.resampler="area"', 'engine.backend="onnxruntime"', 'engine.precision="fp32"'],
    "bicubic bf16": ['model.resampler="native"', 'engine.backend="openvino"', 'engine.precision="bf16"'],
    "area bf16": ['model.resampler="area"', 'engine.backend="openvino"', 'engine.precision="bf16"'],
    "fast bf16": ['model.resampler="fast"', 'engine.backend="openvino"', 'engine.precision="bf16"'],
}


def pooled(folder: Path, out: Path) -> Path:
    """``out/<class>/<n>.<ext>`` symlinks to every image of ``folder`` (any split subfolder)."""
    from imgclf.data.images import is_image_file

    splits = {"train", "val", "validation", "test"}
    for p in sorted(folder.rglob("*")):
        if not (p.is_file() and is_image_file(p)):
            continue
        parts = [x for x in p.relative_to(folder).parts[:-1] if x not in splits]
        if not parts:
            continue
        d = out / parts[0]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{len(list(d.iterdir())):05d}{p.suffix.lower()}").symlink_to(p.resolve())
    return out


def run(images: Path, data_root: Path, seed: int, settings: list[str]) -> float:
    from imgclf.config.settings import load_config
    from imgclf.pipeline.steps import run as run_steps

    cfg = load_config(None, [f"data.images={json.dumps(str(images))}", f"data.root={json.dumps(str(data_root))}",
                             f"data.seed={seed}", "tracking.enabled=false", "data.check_leakage=false", *settings])
    with tempfile.TemporaryDirectory() as rd:
        return run_steps(cfg, rd, progress=False).class_avg_accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="*")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--demo", action="store_true", help="also the embedded demo set")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), help="variant names (the first is the baseline)")
    args = ap.parse_args()
    from imgclf.data.demo import generate_demo

    with tempfile.TemporaryDirectory(prefix="imgclf-prep-") as tmp:
        tmp = Path(tmp)
        sets = {f.name: pooled(f, tmp / "sets" / f.name) for f in args.folders}
        if args.demo:
            generate_demo(tmp / "sets" / "demo", n_per_class=100, seed=0)
            sets["demo"] = tmp / "sets" / "demo"
        print("| data set | variant | " + " | ".join(f"seed {s}" for s in args.seeds) + f" | mean | vs {args.variants[0]} |")
        print("|---|---|" + "---|" * len(args.seeds) + "---|---|")
        for name, images in sets.items():
            base = None
            for variant in args.variants:
                settings = VARIANTS[variant]
                accs = [run(images, tmp / "data", s, settings) for s in args.seeds]
                mean = statistics.mean(accs)
                base = mean if base is None else base
                print(f"| {name} | {variant} | " + " | ".join(f"{100 * a:.2f}" for a in accs)
                      + f" | **{100 * mean:.2f}** | {100 * (mean - base):+.2f} |", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
