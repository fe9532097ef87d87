"""Refinement on a train/ + val/ image folder: accuracy at the defaults, and training speed.

    .venv/bin/python benchmarks/refine.py ../shared/datasets/hymenoptera [--set refine.epochs=8 ...]
        [--skip naive,svm_on_refined,all_layers] [--json out.json]

In ONE run, on the same images:
  (a) naive: the PyTorch transfer-learning tutorial's loop: ImageFolder, RandomResizedCrop(224) +
      flip + ToTensor + Normalize, DataLoader batch 16 (workers 0), fp32 eager efficientnet_lite0
      with every layer training (BatchNorm in train mode), SGD momentum; images/s over one epoch;
  (b) `imgclf run` with train.classifier = dnn at the defaults: test accuracy (the folder's val/ is
      the test split; refinement holds out its own validation part of train/), seconds per epoch and
      training images/s (median over epochs, decoding and augmentation included);
  (c) the same with train.classifier = svm_on_refined;
  (d) imgclf's loop with every layer training (refine.freeze_stages=0), one epoch: the same work as (a).
Nothing is written outside a temp folder. Timings swing with other load on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def naive_epoch(train_dir: Path, resolution: int = 224, batch_size: int = 16) -> float:
    """One epoch of the tutorial's fine-tuning loop; returns training images/s."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from imgclf.backbones import create_backbone

    model, spec = create_backbone("efficientnet_lite0", resolution, pretrained=True, num_classes=0)
    head = torch.nn.Linear(model.num_features, len([p for p in train_dir.iterdir() if p.is_dir()]))
    net = torch.nn.Sequential(model, torch.nn.Dropout(0.5), head).train()
    tf = transforms.Compose([transforms.RandomResizedCrop(resolution), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize(spec.mean, spec.std)])
    loader = DataLoader(datasets.ImageFolder(str(train_dir), tf), batch_size=batch_size, shuffle=True, num_workers=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    n, t0 = 0, time.perf_counter()
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(y)
    return n / (time.perf_counter() - t0)


def imgclf_run(images: Path, root: Path, classifier: str, overrides: list[str]) -> dict:
    from imgclf.config import load_config
    from imgclf.pipeline import run

    cfg = load_config(None, [f'data.root="{root}"', f'data.images="{images}"', "tracking.enabled=false",
                             f'train.classifier="{classifier}"', *overrides])
    t0 = time.perf_counter()
    m = run(cfg, root / f"run-{classifier}-{int(time.time())}", progress=False)
    hist = m["training_history"]
    return {"accuracy": m["accuracy"], "class_avg_accuracy": m["class_avg_accuracy"], "n_test": m["n_test"],
            "wall_seconds": round(time.perf_counter() - t0, 1), "epochs": len(hist),
            "seconds_per_epoch": sorted(h["seconds"] for h in hist)[len(hist) // 2],
            "train_images_per_s": sorted(h["images_per_s"] for h in hist)[len(hist) // 2],
            "final_val_error": hist[-1]["val_error"], "precision": m["steps"]["train"].get("precision")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--set", action="append", default=[], help="config override for the imgclf runs")
    ap.add_argument("--skip", default="", help="comma-separated: naive, dnn, svm_on_refined, all_layers")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    images = args.folder.resolve()
    out: dict = {"cores": len(os.sched_getaffinity(0)), "load_avg_start": os.getloadavg()[0], "overrides": args.set}
    with tempfile.TemporaryDirectory(prefix="imgclf-bench-refine-") as tmp:
        root = Path(tmp)
        if "naive" not in skip:
            out["naive_images_per_s"] = round(naive_epoch(images / "train"), 2)
            print(f"naive fp32 eager loop: {out['naive_images_per_s']} img/s", file=sys.stderr)
        if "all_layers" not in skip:
            r = imgclf_run(images, root, "dnn", args.set + ["refine.freeze_stages=0", "refine.epochs=1"])
            out["imgclf_all_layers_images_per_s"] = r["train_images_per_s"]
        for clf in ("dnn", "svm_on_refined"):
            if clf not in skip:
                out[clf] = imgclf_run(images, root, clf, args.set)
                print(f"{clf}: {json.dumps(out[clf])}", file=sys.stderr)
    if "naive_images_per_s" in out:
        base = out["naive_images_per_s"]
        if "dnn" in out:
            out["speedup_defaults"] = round(out["dnn"]["train_images_per_s"] / base, 2)
        if "imgclf_all_layers_images_per_s" in out:
            out["speedup_all_layers"] = round(out["imgclf_all_layers_images_per_s"] / base, 2)
    out["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
