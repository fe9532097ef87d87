"""The driver of ``imgclf featurize --run-dir R --ray`` (or ``--ray-address ADDRESS``): the run's featurize step, its images
featurized by the cluster's actor pool.

What it writes is what a local featurize writes: each image's features in the feature cache of
``data.root`` (by content hash: a job killed half way and started again computes only what is not
cached), then the run's features.npz and skipped.csv rows, so train and evaluate cannot tell the
difference. The engine is resolved here, once, and every actor runs that one (features of one
backend and precision); its export is made here too (the engine cache), so no actor builds the network.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa

from ..config.settings import Config
from ..features.engines import resolve_engine
from ..features.ids import join_ids
from ..features.step import run_featurizers
from ..rundir.guard import writing
from ..rundir.layout import RunDir
from ..util.progress import progress_bar
from .cluster import actor_pool, connect
from .datasets import blocks
from .workers import FeatureWorker


def featurize_run(cfg: Config, run_dir: str | os.PathLike, *, address: str | None = None, actors: int | None = None,
                  actor_cpus: float = 1, progress: bool = True) -> dict[str, Any]:
    """Features of every image in split.csv → features.npz, computed on Ray; returns local featurize's
    summary and ``ray_start_s``, ``actors``."""
    with writing(run_dir, "featurize"):
        return _featurize(cfg, RunDir(run_dir), address, actors, actor_cpus, progress)


def _featurize(cfg: Config, rd: RunDir, address: str | None, actors: int | None, actor_cpus: float,
               progress: bool) -> dict[str, Any]:
    paths = [r.path for r in rd.split_rows()]
    t0 = time.perf_counter()
    cfg = dataclasses.replace(cfg, engine=resolve_engine(cfg.engine))
    engines = run_featurizers(cfg, rd)  # exported (int8: calibrated) once, here
    fid, dim = join_ids([e.feature_id for e in engines]), sum(e.dim for e in engines)
    del engines
    t1 = time.perf_counter()
    ray = connect(address)
    t2 = time.perf_counter()
    pool = actor_pool(ray, actors, actor_cpus)
    ds = ray.data.from_arrow(blocks(pa.table({"path": pa.array(paths, type=pa.string())}), cfg.featurize.batch_size))
    out = ds.map_batches(FeatureWorker, fn_constructor_kwargs={"config": cfg.to_dict(), "run_dir": str(rd.root.resolve()),
                                                               "actor_cpus": actor_cpus},
                         batch_size=cfg.featurize.batch_size, batch_format="pyarrow", **pool)
    row = {p: i for i, p in enumerate(paths)}
    features = np.zeros((len(paths), dim), dtype=np.float32)  # (N, D); an unreadable image's row stays zero
    ok = np.zeros(len(paths), dtype=bool)
    errors: list[tuple[str, str]] = []
    hits = 0
    bar = progress_bar(len(paths), "featurize (ray)") if progress else None
    for table in out.iter_batches(batch_size=None, batch_format="pyarrow"):
        got = table.column("features").combine_chunks()
        batch = np.asarray(got.flatten(), dtype=np.float32).reshape(table.num_rows, dim)  # (B, D)
        idx = [row[p] for p in table.column("path").to_pylist()]
        features[idx], ok[idx] = batch, table.column("ok").to_numpy(zero_copy_only=False)
        errors += [(p, e) for p, e in zip(table.column("path").to_pylist(), table.column("error").to_pylist()) if e is not None]
        hits += int(table.column("cache_hits").to_numpy().sum())
        if bar is not None:
            bar.update(table.num_rows)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    errors.sort(key=lambda e: row[e[0]])  # the order a local featurize lists them in
    rd.add_skipped([(p, reason, "featurize") for p, reason in errors], replace_stage="featurize")
    rd.write_features(paths, features, ok, fid)
    busy = seconds - (t2 - t0)
    return {"images": len(paths), "featurized": int(ok.sum()), "cache_hits": hits, "errors": len(errors),
            "seconds": round(seconds, 2), "feature_id": fid, "backend": cfg.engine.backend, "precision": cfg.engine.precision,
            "engine_seconds": round(t1 - t0, 2), "ray_start_s": round(t2 - t1, 2), "actors": pool["compute"].max_size,
            "images_per_s": round(len(paths) / busy, 1) if busy > 0 else None}
