"""Local predict against predict on Ray (2 single-threaded actors) on the same 2,000 images.

    .venv/bin/python benchmarks/ray_predict.py ../shared/datasets/clothing10 WORK_DIR [--images 2000] [--json out.json]

A bundle is trained first (the embedded demo set, in a child process: its features are irrelevant to
inference speed, its featurizer is the default lite0 at 224 px on OpenVINO). Then, in ONE run on the
first ``--images`` image files of DATA_DIR (cycled if there are fewer), interleaved local / Ray / local:
- local: ``Predictor(model).predict(paths)`` as ``imgclf predict`` runs it (all cores), bundle loaded first;
- Ray: ``ray.init`` timed alone (start-up), then what ``imgclf predict --ray`` runs (the listing in blocks of
  32, ``imgclf.ray.predict``) with an actor pool of 2 actors of 1 CPU and 1 thread each; its wall time from
  the dataset's creation to the last row includes each actor loading the bundle, so the steady rate is
  also given, from the first batch's arrival to the last.
Peak RSS: of each actor (its worker process sampled every 0.2 s) and of this process after local predict.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def image_paths(folder: Path, n: int) -> list[str]:
    found = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [found[i % len(found)] for i in range(n)] if len(found) < n else found[:n]


def train_bundle(work: Path) -> Path:
    run = work / "run"
    if not (run / "model" / "bundle.json").exists():
        subprocess.run([sys.executable, "-m", "imgclf", "demo", "--run-dir", str(run), "--n-per-class", "20",
                        "--set", f'data.root="{work / "data"}"', "--set", "tracking.enabled=false"], check=True,
                       stdout=subprocess.DEVNULL)
    return run / "model"


def local(model: Path, paths: list[str]) -> float:
    from imgclf.inference.predict import Predictor

    predictor = Predictor(model)
    t0 = time.perf_counter()
    rows = predictor.predict(paths)
    seconds = time.perf_counter() - t0
    assert len(rows) == len(paths)
    return len(paths) / seconds


class ActorRss:
    """Peak RSS of each Ray worker process running our actors, sampled in a thread."""

    def __init__(self, marker: str):
        self.marker, self.peak, self._stop = marker, {}, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            for p in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                if p.info["memory_info"] is not None and any(self.marker in c for c in p.info["cmdline"] or ()):
                    self.peak[p.info["pid"]] = max(self.peak.get(p.info["pid"], 0), p.info["memory_info"].rss)

    def __enter__(self) -> "ActorRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def on_ray(model: Path, paths: list[str]) -> dict:
    """What ``imgclf predict --ray`` runs (the driver's listing in blocks of a batch, the actor pool), its rows
    taken as they arrive."""
    import ray

    import imgclf
    from imgclf.bundle.folder import bundle_engine
    from imgclf.scale.datasets import blocks
    from imgclf.scale.output import listing_table, stamp

    engine = dataclasses.replace(bundle_engine(model), threads=1)
    with ActorRss("PredictWorker") as rss:
        t0 = time.perf_counter()
        ds = ray.data.from_arrow(blocks(listing_table(paths, [stamp(p) for p in paths]), 32))
        first, rows = None, 0
        for table in imgclf.ray.predict(ds, model, engine=engine, actors=2, actor_cpus=1).iter_batches(batch_size=None, batch_format="pyarrow"):
            first = first or (time.perf_counter(), table.num_rows)
            rows += table.num_rows
        t1 = time.perf_counter()
    assert rows == len(paths), rows
    return {"images_per_s_wall": round(len(paths) / (t1 - t0), 1),
            "images_per_s_steady": round((len(paths) - first[1]) / (t1 - first[0]), 1),
            "first_batch_s": round(first[0] - t0, 2), "wall_s": round(t1 - t0, 2),
            "actor_peak_rss_mb": sorted(round(v / 2**20) for v in rss.peak.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = train_bundle(args.work)
    paths = image_paths(args.data, args.images)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    first_local = local(model, paths)
    local_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    ray_start_s = round(time.perf_counter() - t0, 2)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    remote = on_ray(model, paths)
    ray.shutdown()
    second_local = local(model, paths)
    local_ips = statistics.median([first_local, second_local])
    result = {"images": len(paths), "load_average": load, "local_images_per_s": [round(first_local, 1), round(second_local, 1)],
              "local_peak_rss_mb": local_rss_mb, "ray_start_s": ray_start_s, "ray": remote,
              "ray_vs_local_steady": round(remote["images_per_s_steady"] / local_ips, 3),
              "ray_vs_local_wall": round(remote["images_per_s_wall"] / local_ips, 3), "cpus": os.cpu_count()}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
