"""Serving speed against offline featurization, on a folder of JPEGs and a trained bundle.

    .venv/bin/python benchmarks/serve.py RUN_DIR/model ../shared/datasets/hymenoptera [--seconds 20] [--json out.json]

In ONE run, on the same images:
  (a) offline: images/s of ``imgclf.features.featurize.featurize_paths`` with the bundle's engine (cache off),
      measured before and after the server runs (the mean is the reference, so load swings show);
  (b) a real ``python -m imgclf serve`` process on 127.0.0.1; sequential single-image POST /predict
      over one keep-alive connection: latency p50/p99 and the server's own time;
  (c) 32 concurrent clients for --seconds: images/s, p50/p99 latency, error count, and the server's
      RSS sampled every 0.5 s (start of the run → end).
Prints the ratio (c)/(a) and checks the targets: p50 <= 6 ms, ratio >= 0.8, 0 errors, RSS flat.
The load generator runs in this process, so it shares the CPU with the server, as a client on
the same host would.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from imgclf.serve.client import run_load

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from netutil import free_port  # noqa: E402  (tests/netutil.py: one helper for tests and benchmarks)

TARGET_P50_MS = 6.0  # issue 12: OpenVINO, batch-1 requests on a model compiled for batch 1
TARGET_RATIO = 0.8
FLAT_RSS_MB = 50.0  # growth from the first to the last half of the concurrent run that counts as flat


def jpegs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))


def offline(bundle: Path, paths: list[Path], sets: list[str]) -> tuple[float, str]:
    """Images/s of featurize_paths with the bundle's engine (``--set`` engine keys applied), and the engine's name."""
    from imgclf.bundle.folder import bundle_engine
    from imgclf.config.settings import Config, load_config
    from imgclf.features.featurize import featurize_paths
    from imgclf.inference.predict import Predictor

    predictor = Predictor(bundle, load_config(None, sets, base=Config(engine=bundle_engine(bundle))).engine)
    featurize_paths([str(p) for p in paths[:32]], predictor.compute.engines[0], progress=False)  # warm-up
    t0 = time.perf_counter()
    res = featurize_paths([str(p) for p in paths], predictor.compute.engines[0], batch_size=32, cache_dir=None, progress=False)
    seconds = time.perf_counter() - t0
    assert res.ok.all(), res.errors[:3]
    return len(paths) / seconds, predictor.engine_cfg.backend


def start_server(bundle: Path, sets: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "imgclf", "serve", str(bundle), "--port", str(port),
                             *(a for x in sets for a in ("--set", x))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    until = time.monotonic() + 180
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not become ready in 180 s")


def sequential(url: str, images: list[bytes], n: int) -> dict:
    """Latencies of n single-image calls, one at a time, over one keep-alive connection."""
    lat, server_ms, errors = [], [], 0
    with httpx.Client(timeout=60, headers={"Content-Type": "image/jpeg"}) as c:
        for i in range(-10, n):  # 10 warm-up calls
            t0 = time.perf_counter()
            r = c.post(url + "/predict", content=images[i % len(images)])
            ms = (time.perf_counter() - t0) * 1000.0
            if i < 0:
                continue
            if r.status_code != 200:
                errors += 1
                continue
            lat.append(ms)
            server_ms.append(r.json()["executionTimeMs"])
    q = statistics.quantiles(lat, n=100)
    return {"n": n, "p50_ms": statistics.median(lat), "p99_ms": q[98], "server_p50_ms": statistics.median(server_ms),
            "errors": errors}


def concurrent(url: str, images: list[bytes], pid: int, clients: int, seconds: float) -> dict:
    proc = psutil.Process(pid)
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(proc.memory_info().rss / 2**20)
            stop.wait(0.5)

    run_load(url, images, clients=clients, duration_s=min(3.0, seconds))  # warm-up: batch shapes, pools
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    load = run_load(url, images, clients=clients, duration_s=seconds)
    stop.set()
    t.join()
    half = max(1, len(samples) // 2)
    return {"clients": clients, "seconds": round(load.seconds, 2), "images_per_s": load.throughput,
            "p50_ms": load.percentile(50), "p99_ms": load.percentile(99), "errors": sum(load.errors.values()),
            "error_kinds": load.errors, "rss_start_mb": samples[0], "rss_end_mb": samples[-1],
            "rss_max_mb": max(samples), "rss_growth_mb": statistics.mean(samples[half:]) - statistics.mean(samples[:half])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("images", type=Path)
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of the concurrent run")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--sequential", type=int, default=200, help="single-image calls for the latency figures")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--set", action="append", default=[], help="an engine setting for both the server and the offline run")
    args = ap.parse_args()

    paths = jpegs(args.images)
    if not paths:
        raise SystemExit(f"no JPEG under {args.images}")
    images = [p.read_bytes() for p in paths]
    off_before, backend = offline(args.bundle, paths, args.set)
    proc, url = start_server(args.bundle, args.set)
    try:
        seq = sequential(url, images, args.sequential)
        conc = concurrent(url, images, proc.pid, args.clients, args.seconds)
    finally:
        proc.terminate()
        proc.wait(60)
    off_after, _ = offline(args.bundle, paths, args.set)
    off = (off_before + off_after) / 2
    ratio = conc["images_per_s"] / off
    errors = seq["errors"] + conc["errors"]
    figures = {"images": len(paths), "engine": backend, "cpus": len(os.sched_getaffinity(0)),
               "offline_images_per_s": off, "offline_before": off_before, "offline_after": off_after,
               "sequential": seq, "concurrent": conc, "ratio": ratio, "errors": errors,
               "load_average": os.getloadavg()}

    print(f"{len(paths)} JPEGs, engine {backend}, {figures['cpus']} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"offline featurize_paths      {off:7.1f} img/s  (before {off_before:.1f}, after {off_after:.1f})")
    print(f"sequential /predict          p50 {seq['p50_ms']:6.1f} ms  p99 {seq['p99_ms']:6.1f} ms  "
          f"(server {seq['server_p50_ms']:.1f} ms)  errors {seq['errors']}")
    print(f"{conc['clients']} concurrent clients        {conc['images_per_s']:7.1f} img/s  p50 {conc['p50_ms']:.1f} ms  "
          f"p99 {conc['p99_ms']:.1f} ms  errors {conc['errors']} {conc['error_kinds'] or ''}")
    print(f"server RSS                   {conc['rss_start_mb']:.0f} → {conc['rss_end_mb']:.0f} MB "
          f"(max {conc['rss_max_mb']:.0f}, growth {conc['rss_growth_mb']:+.1f} MB)")
    print(f"ratio concurrent/offline     {ratio:.2f}")
    checks = {f"p50 <= {TARGET_P50_MS:g} ms": seq["p50_ms"] <= TARGET_P50_MS, f"ratio >= {TARGET_RATIO:g}": ratio >= TARGET_RATIO,
              "0 errors": errors == 0, "RSS flat": conc["rss_growth_mb"] < FLAT_RSS_MB}
    print("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in checks.items()))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
