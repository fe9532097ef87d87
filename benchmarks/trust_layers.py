"""Multi-layer features of efficientnet_lite0@224 for the unknown-image benchmark (torch, CPU).

    python benchmarks/trust_layers.py [--sets hymenoptera clothing10 cub_warblers demo] [--work W]

For every image of a set's run dir (benchmarks/datasets.py, lite0@224: the same paths and split),
the global-average-pooled output of the network's stages 2-6 (``blocks[2]`` … ``blocks[6]``: 40, 80,
112, 192 and 320 channels at 28², 14², 14², 7², 7²) and of the head (``conv_head`` + ``bn2`` with its
ReLU6, 1,280 channels at 7²: the pooled feature imgclf exports), computed in fp32 with imgclf's own
preprocessing (area resampler). Written to ``W/layers/<set>.npz`` (``paths`` and one array per layer);
benchmarks/trust_features.py reads them. ``--pooling`` writes ``W/layers/<set>-pool.npz`` instead: the
head's activations pooled otherwise (``head_max``: spatial max; ``head_gem``: generalised mean, p = 3)
and ``head_flip`` (the mean of the pooled head of the image and of its mirror image). The engines stay untouched: this is a measurement only.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from datasets import prepared
from trust import SETS

LAYERS = ("b2", "b3", "b4", "b5", "b6", "head")
POOLINGS = ("head_max", "head_gem", "head_flip")


def _inputs(paths: list[str], spec) -> np.ndarray:
    from imgclf.features.preprocess import load_and_preprocess

    xs = []
    for p in paths:
        try:
            xs.append(load_and_preprocess(Path(p).read_bytes(), spec))
        except Exception:  # noqa: BLE001 - a broken image is a NaN row, as the run dir marks it not ok
            xs.append(np.full((3, spec.resolution, spec.resolution), np.nan, np.float32))
    return np.stack(xs)


def pooled_heads(paths: list[str], cfg, batch: int = 32) -> dict[str, np.ndarray]:
    """{pooling: (N, 1280) float32}: the head's activations max-pooled, GeM-pooled (p = 3), and mean-pooled
    over the image and its mirror image."""
    import torch

    from imgclf.features.backbones import model_backbone

    model, spec = model_backbone(cfg.model)
    out: dict[str, list[np.ndarray]] = {k: [] for k in POOLINGS}
    torch.set_num_threads(1)
    with torch.inference_mode():
        for s in range(0, len(paths), batch):
            x = torch.from_numpy(_inputs(paths[s:s + batch], spec))
            h = model.forward_features(x)  # (n, 1280, 7, 7) after bn2's ReLU6: non-negative
            out["head_max"].append(h.amax(dim=(2, 3)).numpy())
            out["head_gem"].append(h.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3).numpy())
            out["head_flip"].append(((h.mean(dim=(2, 3)) + model.forward_features(x.flip(3)).mean(dim=(2, 3))) / 2).numpy())
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def layer_features(paths: list[str], cfg, batch: int = 32) -> dict[str, np.ndarray]:
    """{layer: (N, C) float32} pooled activations of every path (a path that fails to decode gets NaN rows)."""
    import torch

    from imgclf.features.backbones import model_backbone

    model, spec = model_backbone(cfg.model)
    out: dict[str, list[np.ndarray]] = {k: [] for k in LAYERS}
    torch.set_num_threads(1)
    with torch.inference_mode():
        for s in range(0, len(paths), batch):
            h = model.bn1(model.conv_stem(torch.from_numpy(_inputs(paths[s:s + batch], spec))))
            for i, block in enumerate(model.blocks):
                h = block(h)
                if f"b{i}" in out:
                    out[f"b{i}"].append(h.mean(dim=(2, 3)).numpy())
            out["head"].append(model.bn2(model.conv_head(h)).mean(dim=(2, 3)).numpy())
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--work", type=Path, default=Path("/work/bench-work"))
    ap.add_argument("--pooling", action="store_true", help="the head pooled otherwise (<set>-pool.npz)")
    args = ap.parse_args()
    (args.work / "layers").mkdir(exist_ok=True)
    for n in args.sets:
        target = args.work / "layers" / f"{n}{'-pool' if args.pooling else ''}.npz"
        if target.exists():
            continue
        t0 = time.time()
        cfg, rd = prepared(SETS[n], args.work)
        paths = [str(p) for p in np.load(rd / "features.npz", allow_pickle=False)["paths"]]
        feats = (pooled_heads if args.pooling else layer_features)(paths, cfg)
        tmp = target.with_suffix(".tmp.npz")
        np.savez(tmp, paths=np.array(paths), **feats)
        tmp.replace(target)
        print(n, len(paths), "images", f"{time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
