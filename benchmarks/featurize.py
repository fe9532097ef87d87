"""Featurization speed on a folder of JPEGs: the naive PyTorch-tutorial loop against imgclf's engines.

    .venv/bin/python benchmarks/featurize.py ../shared/datasets/hymenoptera [--repeats 3] [--json out.json]

In ONE run, on the same images, with imgclf's feature cache OFF, it measures images/s end to end
(file → features) for
  (a) naive: torchvision ImageFolder-style PIL loading, Resize(256)/CenterCrop(224)/ToTensor/Normalize,
      DataLoader batch 32, fp32 eager efficientnet_lite0, as the PyTorch transfer-learning tutorial does;
  (b) imgclf, torch engine; (c) ONNX Runtime fp32 and (d) int8 with the backbone's bicubic crop;
  (e) OpenVINO fp32 with the area resampler, (f) bf16 with the bicubic crop, (g) bf16 and (h) int8
  with the area resampler and a stream per core ((g) is the default on CPUs with bf16 instructions),
  each also on one stream of all threads as before ((g1), (h1)) and with the "fast" resampler
  ((g2), (h2)); every JPEG decoded by libjpeg-turbo with DCT scaling,
and prints each median over the repeats (engines interleaved, so load swings hit all alike), the
ratio to (a) and the fraction of each row's per-stage ceiling, measured in the same run: the engine
alone (batch 32 of preprocessed inputs, all threads) plus decoding alone (one thread), as
cores / (cores / engine img/s + 1 / decode img/s). Decode alone is also timed for the Pillow path
imgclf used before (draft decode + bicubic crop), for comparison.
Then a child process featurizes 10,000 paths (the folder's files cycled) with the default engine
and reports its peak RSS (target: under 1.5 GB). Engine building (export, quantisation) is not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def jpegs(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))


def naive(paths: list[str], workers: int) -> float:
    """The tutorial's loop; returns images/s."""
    import torch
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms
    from torchvision.datasets.folder import default_loader

    model, spec = _naive_model()
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize(spec.mean, spec.std)])

    class Files(Dataset):  # ImageFolder's loader and transform over an explicit file list
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int):
            return tf(default_loader(paths[i])), 0

    t0 = time.perf_counter()
    out = []
    with torch.no_grad():
        for x, _ in DataLoader(Files(), batch_size=32, shuffle=False, num_workers=workers):
            out.append(model(x).numpy())
    return len(paths) / (time.perf_counter() - t0)


_NAIVE: dict = {}


def _naive_model():
    if not _NAIVE:
        from imgclf.features.backbones import create_backbone

        _NAIVE["m"] = create_backbone("efficientnet_lite0", 224, pretrained=True)
    return _NAIVE["m"]


def imgclf_speed(paths: list[str], engine, threads: int) -> float:
    from imgclf.features.featurize import featurize_paths

    t0 = time.perf_counter()
    res = featurize_paths(paths, engine, batch_size=32, cache_dir=None, threads=threads, progress=False)
    seconds = time.perf_counter() - t0
    assert res.ok.sum() == len(paths), res.errors[:3]
    return len(paths) / seconds


def build_engines(folder: Path, cache: Path, threads: int) -> dict:
    import numpy as np

    from imgclf.config.settings import EngineConfig, ModelConfig
    from imgclf.features.featurize import build_featurizer

    train = jpegs(folder / "train") if (folder / "train").is_dir() else jpegs(folder)
    pick = np.random.default_rng(0).choice(len(train), size=min(128, len(train)), replace=False)
    calibration = [train[i] for i in sorted(pick)]
    native, area, fast = ModelConfig(resampler="native"), ModelConfig(resampler="area"), ModelConfig(resampler="fast")

    def eng(mc, backend, precision):
        return build_featurizer(mc, EngineConfig(backend=backend, precision=precision, threads=threads), cache_dir=cache,
                                calibration=calibration if precision == "int8" else None)

    def one_stream(engine):  # OpenVINO as it ran before: every batch on one stream of all threads
        engine.streams = 1
        return engine

    return {
        "torch": build_featurizer(native, EngineConfig(backend="torch", precision="fp32", threads=threads)),
        "ort_fp32": eng(native, "onnxruntime", "fp32"), "ort_int8": eng(native, "onnxruntime", "int8"),
        "ov_fp32": eng(area, "openvino", "fp32"), "ov_bf16_bicubic": eng(native, "openvino", "bf16"),
        "ov_bf16_1s": one_stream(eng(area, "openvino", "bf16")), "ov_bf16": eng(area, "openvino", "bf16"),
        "ov_bf16_fast": eng(fast, "openvino", "bf16"),
        "ov_int8_1s": one_stream(eng(area, "openvino", "int8")), "ov_int8": eng(area, "openvino", "int8"),
        "ov_int8_fast": eng(fast, "openvino", "int8"),
    }


def engine_alone(engine, x) -> float:
    """Images/s of ``engine.run`` on a batch of crops (normalising them is the engine's work)."""
    engine.run(x)
    t0 = time.perf_counter()
    engine.run(x)
    engine.run(x)
    return 2 * len(x) / (time.perf_counter() - t0)


def decode_alone(paths: list[str], fn) -> float:
    """Images/s of one thread decoding and preprocessing ``paths`` with ``fn(path)``."""
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return len(paths) / (time.perf_counter() - t0)


def memory_child(folder: Path, cache: Path, n: int, threads: int) -> dict:
    """Featurize ``n`` paths (the folder's files cycled) as `imgclf featurize` would, with the
    default engine (loaded from the engine cache: torch is never imported)."""
    from imgclf.config.settings import EngineConfig, ModelConfig
    from imgclf.features.featurize import build_featurizer, featurize_paths

    files = jpegs(folder)
    paths = (files * (n // len(files) + 1))[:n]
    engine = build_featurizer(ModelConfig(), EngineConfig(threads=threads), cache_dir=cache)  # the defaults
    t0 = time.perf_counter()
    res = featurize_paths(paths, engine, batch_size=32, cache_dir=None, threads=threads, progress=False)
    seconds = time.perf_counter() - t0
    return {"images": n, "ok": int(res.ok.sum()), "seconds": round(seconds, 1), "images_per_s": round(n / seconds, 1),
            "engine": type(engine).__name__, "torch_imported": "torch" in sys.modules, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not getrusage: ru_maxrss of a child started by a big parent
    inherits the parent's peak across exec (Linux), which here would add the parent's 2 GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="engine.threads (0 = all cores)")
    ap.add_argument("--naive-workers", type=int, default=2, help="DataLoader workers of the naive loop")
    ap.add_argument("--memory-images", type=int, default=10_000)
    ap.add_argument("--cache", type=Path, default=None, help="engine cache folder (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.folder, args.cache, args.memory_images, args.threads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        report = run(args, cache)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def run(args: argparse.Namespace, cache: Path) -> dict:
    import numpy as np
    import torch

    from imgclf.features.engines import cpu_threads

    paths = jpegs(args.folder)
    cores = cpu_threads(args.threads)
    torch.set_num_threads(cores)
    print(f"{len(paths)} JPEGs in {args.folder}; {cores} threads; load average {os.getloadavg()[0]:.1f}", flush=True)
    t0 = time.perf_counter()
    engines = build_engines(args.folder, cache, args.threads)
    _naive_model()
    print(f"engines built in {time.perf_counter() - t0:.0f} s", flush=True)
    from imgclf.data.images import decode_image
    from imgclf.features.preprocess import load_and_crop, load_and_preprocess, preprocess, resize_size

    native_spec, area_spec, fast_spec = engines["ort_fp32"].spec, engines["ov_bf16"].spec, engines["ov_bf16_fast"].spec
    decoders = {"pillow": lambda p: preprocess(decode_image(p, draft_size=resize_size(native_spec)), native_spec),
                "area_normalised": lambda p: load_and_preprocess(p, area_spec),
                "bicubic": lambda p: load_and_crop(p, native_spec), "area": lambda p: load_and_crop(p, area_spec),
                "fast": lambda p: load_and_crop(p, fast_spec)}
    x = np.stack([decoders["area"](p) for p in paths[:32]])  # (32, H, W, 3) uint8 crops
    runs: dict[str, list[float]] = {k: [] for k in ("naive", *engines)}
    alone: dict[str, list[float]] = {k: [] for k in (*engines, *(f"decode_{d}" for d in decoders))}
    loads = []
    for r in range(args.repeats):
        loads.append(os.getloadavg()[0])
        runs["naive"].append(naive(paths, args.naive_workers))
        torch.set_num_threads(cores)  # DataLoader workers may have changed it
        for name, engine in engines.items():
            runs[name].append(imgclf_speed(paths, engine, args.threads))
            alone[name].append(engine_alone(engine, x))
        for name, fn in decoders.items():
            alone[f"decode_{name}"].append(decode_alone(paths[:100], fn))
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()), flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    solo = {k: statistics.median(v) for k, v in alone.items()}
    decode_of = {"torch": "bicubic", "ort_fp32": "bicubic", "ort_int8": "bicubic", "ov_bf16_bicubic": "bicubic",
                 "ov_bf16_fast": "fast", "ov_int8_fast": "fast"}
    ceiling = {k: cores / (cores / solo[k] + 1 / solo[f"decode_{decode_of.get(k, 'area')}"]) for k in engines}
    labels = {"naive": "(a) naive PyTorch tutorial loop", "torch": "(b) imgclf, torch fp32",
              "ort_fp32": "(c) ONNX Runtime fp32, bicubic crop", "ort_int8": "(d) ONNX Runtime int8, bicubic crop",
              "ov_fp32": "(e) OpenVINO fp32, area crop", "ov_bf16_bicubic": "(f) OpenVINO bf16, bicubic crop",
              "ov_bf16_1s": "(g1) OpenVINO bf16, area crop, one stream (the default before)",
              "ov_bf16": "(g) OpenVINO bf16, area crop, a stream per core (default)",
              "ov_bf16_fast": "(g2) OpenVINO bf16, fast crop, a stream per core",
              "ov_int8_1s": "(h1) OpenVINO int8, area crop, one stream", "ov_int8": "(h) OpenVINO int8, area crop, a stream per core",
              "ov_int8_fast": "(h2) OpenVINO int8, fast crop, a stream per core"}
    print(f"\n| pipeline | img/s (median of {args.repeats}) | runs | vs naive | engine alone | ceiling | of ceiling |")
    print("|---|---|---|---|---|---|---|")
    for k, v in med.items():
        extra = f"{solo[k]:.0f} | {ceiling[k]:.0f} | {v / ceiling[k]:.0%}" if k in ceiling else "— | — | —"
        print(f"| {labels[k]} | {v:.1f} | {' / '.join(f'{x:.0f}' for x in runs[k])} | {v / med['naive']:.1f}x | {extra} |")
    print("decode + preprocess alone, one thread: " + ", ".join(
        f"{d} {1000 / solo[f'decode_{d}']:.2f} ms/img" for d in decoders)
          + " (pillow: the path before libjpeg-turbo, normalised; area_normalised: the crop and the float pass decode threads did before)")
    print(f"load average during the repeats: {', '.join(f'{x:.1f}' for x in loads)}")
    mem = json.loads(subprocess.run(
        [sys.executable, __file__, str(args.folder), "--memory-child", "--cache", str(cache),
         "--memory-images", str(args.memory_images), "--threads", str(args.threads)],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    print(f"\nmemory: {mem['images']} images ({mem['ok']} ok) with {mem['engine']} (defaults) in {mem['seconds']} s "
          f"({mem['images_per_s']} img/s); peak RSS {mem['peak_rss_mb']} MB (target < 1536 MB); torch imported: {mem['torch_imported']}")
    return {"images": len(paths), "threads": cores, "runs": runs, "median": med, "ratio": {k: v / med["naive"] for k, v in med.items()},
            "alone": solo, "ceiling": ceiling, "load": loads, "memory": mem}


if __name__ == "__main__":
    main()
