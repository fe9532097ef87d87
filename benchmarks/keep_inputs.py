"""What keeping the images asked about (``serve.keep_inputs``) costs the answer: /predict latency, keeping on vs off.

    .venv/bin/python benchmarks/keep_inputs.py DATA_DIR WORK_DIR [--requests 300] [--block 10] [--json out.json]

Trains a model on DATA_DIR (a dataset folder; once, reused from WORK_DIR/run), then serves it in ONE real server
(uvicorn on 127.0.0.1, in this process) and sends single-image ``POST /predict`` requests over one keep-alive
connection, each a different JPEG of DATA_DIR (so every request kept is a new image to check and write).
Keeping is switched on and off between blocks of ``--block`` requests (the service's keeper attached or
detached), alternating, so both modes meet the same load swings. Prints p50 / p99 per mode, their ratio
(target: p50 on / off <= 1.10) and what the keeper did (kept, dropped). Quota and rate are lifted so that
every new image is kept.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx

TARGET_RATIO = 1.10


def train(data: Path, work: Path) -> Path:
    """The model bundle of a plain run on ``data`` (made once)."""
    from imgclf.api import run
    from imgclf.config.settings import load_config

    rd = work / "run"
    if not (rd / "model" / "bundle.json").exists():
        cfg = load_config(None, [f'data.root="{work / "data"}"', f'data.images="{data}"', "tracking.enabled=false",
                                 "doctor.enabled=false"])
        run(cfg, rd, progress=False)
    return rd / "model"


def percentile(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] if len(xs) > 1 else xs[0]


def measure(bundle: Path, images: list[Path], work: Path, block: int) -> dict:
    from imgclf.config.settings import ServeConfig
    from imgclf.inference.predict import Predictor
    from imgclf.serve.app import create_app
    from imgclf.serve.keeper import keep_place
    from imgclf.serve.server import ServerThread

    kept_dir = work / "kept"
    for p in kept_dir.glob("kept*"):  # every run keeps afresh
        p.unlink()
    cfg = ServeConfig(keep_inputs=True, keep_dir=str(kept_dir), keep_quota_mb=100_000, keep_rate_per_min=0)
    app = create_app(Predictor(bundle), cfg, keep_into=keep_place(cfg))
    service = app.state.imgclf
    keeper = service.keeper
    ms: dict[str, list[float]] = {"off": [], "on": []}
    with ServerThread(app, cfg) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        for p in images[:20]:  # warm-up, keeping off
            service.keeper = None
            c.post("/predict", content=p.read_bytes(), headers={"Content-Type": "image/jpeg"}).raise_for_status()
        for i, p in enumerate(images[20:]):
            mode = "on" if (i // block) % 2 else "off"
            service.keeper = keeper if mode == "on" else None
            data = p.read_bytes()
            t0 = time.perf_counter()
            c.post("/predict", content=data, headers={"Content-Type": "image/jpeg"}).raise_for_status()
            ms[mode].append((time.perf_counter() - t0) * 1000)
        service.keeper = keeper
        time.sleep(2.0)
        metrics = c.get("/metrics").text
    out = {m: {"n": len(v), "p50_ms": round(statistics.median(v), 2), "p99_ms": round(percentile(v, 99), 2)}
           for m, v in ms.items()}
    out["ratio_p50"] = round(out["on"]["p50_ms"] / out["off"]["p50_ms"], 3)
    out["keeper"] = {line.split()[0]: float(line.split()[-1]) for line in metrics.splitlines()
                     if line.startswith(("imgclf_kept_images_total", "imgclf_keep_dropped_total", "imgclf_kept_bytes"))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="dataset folder (one subfolder per class, or train/ val/)")
    ap.add_argument("work", type=Path, help="working folder: the run, the data root, the kept images")
    ap.add_argument("--requests", type=int, default=300, help="timed requests (after 20 warm-up ones)")
    ap.add_argument("--block", type=int, default=10, help="requests per block of one mode")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = train(args.data, args.work)
    images = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[: args.requests + 20]
    if len(images) < args.requests + 20:
        raise SystemExit(f"{args.data} holds {len(images)} JPEGs; --requests {args.requests} needs {args.requests + 20}")
    out = measure(bundle, images, args.work, args.block)
    print(f"/predict, one image per request, {args.requests} requests in blocks of {args.block}, keeping off / on alternately")
    print(f"  off: p50 {out['off']['p50_ms']} ms, p99 {out['off']['p99_ms']} ms ({out['off']['n']} requests)")
    print(f"  on:  p50 {out['on']['p50_ms']} ms, p99 {out['on']['p99_ms']} ms ({out['on']['n']} requests)")
    print(f"  p50 on / off: {out['ratio_p50']} (target <= {TARGET_RATIO}: {'met' if out['ratio_p50'] <= TARGET_RATIO else 'missed'})")
    print(f"  keeper: {out['keeper']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
