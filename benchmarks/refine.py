"""Refinement on a train/ + val/ image folder: accuracy at the defaults, and training speed.

    .venv/bin/python benchmarks/refine.py ../shared/datasets/hymenoptera [--set refine.epochs=8 ...]
        [--skip speed,dnn,svm_on_refined] [--rounds 3] [--json out.json]

In ONE run, on the same images:
  speed, interleaved over --rounds rounds of 96 training images each, median images/s of
    (a) naive: the PyTorch transfer-learning tutorial's loop: ImageFolder, RandomResizedCrop(224) +
        flip + ToTensor + Normalize, DataLoader batch 16 (workers 0), fp32 eager efficientnet_lite0
        with every layer training (BatchNorm in train mode), SGD momentum;
    (b) imgclf's refinement loop at the defaults (decoding and augmentation included), on the
        naive loop's network (efficientnet_lite0 at 224 px: refine.backbone="" and
        refine.resolution=0, so both loops do the same work per image);
    (c) imgclf's loop with every layer training (refine.freeze_stages=0): the same work as (a);
  dnn: `imgclf run` with train.classifier = dnn at the defaults: test accuracy (the folder's val/
    is the test split; refinement holds out its own validation part of train/), seconds per epoch,
    training images/s (median over epochs) and wall time;
  svm_on_refined: the same with train.classifier = svm_on_refined.
Interleaving matters on a shared CPU: another process holding a core slows a 2-thread loop by
several times, so the three loops take turns and medians are compared. Nothing is written
outside a temp folder.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SPEED_IMAGES = 96  # per measurement: 6 steps of 16
SAME_NET = ['refine.backbone=""', "refine.resolution=0"]  # refine model.* (lite0 at 224), the naive loop's network


def naive_images_per_s(train_dir: Path, resolution: int = 224, batch_size: int = 16) -> float:
    """SPEED_IMAGES images through the tutorial's fine-tuning loop (after one warm-up step); images/s."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from imgclf.features.backbones import create_backbone

    model, spec = create_backbone("efficientnet_lite0", resolution, pretrained=True, num_classes=0)
    head = torch.nn.Linear(model.num_features, len([p for p in train_dir.iterdir() if p.is_dir()]))
    net = torch.nn.Sequential(model, torch.nn.Dropout(0.5), head).train()
    tf = transforms.Compose([transforms.RandomResizedCrop(resolution), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize(spec.mean, spec.std)])
    loader = DataLoader(datasets.ImageFolder(str(train_dir), tf), batch_size=batch_size, shuffle=True, num_workers=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    n, t0 = -batch_size, 0.0
    for x, y in loader:
        if n == 0:
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(y)
        if n >= SPEED_IMAGES:
            break
    return n / (time.perf_counter() - t0)


def imgclf_images_per_s(images: Path, root: Path, overrides: list[str]) -> float:
    """SPEED_IMAGES images through imgclf's refinement loop (one epoch, capped); images/s."""
    from imgclf.config.settings import load_config
    from imgclf.pipeline.steps import prepare
    from imgclf.refine import distributed
    from imgclf.refine.loop import fit
    from imgclf.rundir.layout import RunDir

    cfg = load_config(None, [f'data.root="{root}"', f'data.images="{images}"', "tracking.enabled=false", *overrides,
                             "refine.epochs=1", f"refine.max_images_per_epoch={SPEED_IMAGES}", "refine.val_fraction=0",
                             'refine.head_init="random"'])
    rd = RunDir(root / "speed")
    if not rd.split.exists():
        prepare(cfg, rd.root)
    refined = fit(cfg, rd, distributed.setup(cfg.train.device, cfg.engine.threads), progress=False)
    return refined.history[0]["images_per_s"]


def imgclf_run(images: Path, root: Path, classifier: str, overrides: list[str]) -> dict:
    from imgclf.api import run
    from imgclf.config.settings import load_config

    cfg = load_config(None, [f'data.root="{root}"', f'data.images="{images}"', "tracking.enabled=false",
                             f'train.classifier="{classifier}"', *overrides])
    t0 = time.perf_counter()
    m = run(cfg, root / f"run-{classifier}-{int(time.time())}", progress=False)
    hist = m["training_history"]
    return {"backbone": m["backbone"], "resolution": m["resolution"],
            "accuracy": m["accuracy"], "class_avg_accuracy": m["class_avg_accuracy"], "n_test": m["n_test"],
            "wall_seconds": round(time.perf_counter() - t0, 1), "epochs": len(hist),
            "seconds_per_epoch": sorted(h["seconds"] for h in hist)[len(hist) // 2],
            "train_images_per_s": sorted(h["images_per_s"] for h in hist)[len(hist) // 2],
            "final_val_error": hist[-1]["val_error"], "precision": m["steps"]["train"].get("precision")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--set", action="append", default=[], help="config override for the imgclf runs")
    ap.add_argument("--skip", default="", help="comma-separated: speed, dnn, svm_on_refined")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved speed rounds")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    images = args.folder.resolve()
    out: dict = {"cores": len(os.sched_getaffinity(0)), "load_avg_start": os.getloadavg()[0], "overrides": args.set}
    with tempfile.TemporaryDirectory(prefix="imgclf-bench-refine-") as tmp:
        root = Path(tmp)
        if "speed" not in skip:
            runs: dict[str, list[float]] = {"naive": [], "imgclf_defaults": [], "imgclf_all_layers": []}
            for r in range(args.rounds):
                runs["naive"].append(naive_images_per_s(images / "train"))
                runs["imgclf_defaults"].append(imgclf_images_per_s(images, root, SAME_NET + args.set))
                runs["imgclf_all_layers"].append(imgclf_images_per_s(images, root, SAME_NET + args.set + ["refine.freeze_stages=0"]))
                print(f"speed round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()) + " img/s", file=sys.stderr)
            med = {k: round(statistics.median(v), 2) for k, v in runs.items()}
            out["speed_images_per_s"] = {"median": med, "rounds": runs}
            out["speedup_defaults"] = round(med["imgclf_defaults"] / med["naive"], 2)
            out["speedup_all_layers"] = round(med["imgclf_all_layers"] / med["naive"], 2)
        for clf in ("dnn", "svm_on_refined"):
            if clf not in skip:
                out[clf] = imgclf_run(images, root, clf, args.set)
                print(f"{clf}: {json.dumps(out[clf])}", file=sys.stderr)
    out["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
