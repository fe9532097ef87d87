"""The driver of ``imgclf predict MODEL INPUTS --ray --out FILE`` (or ``--ray-address ADDRESS``): the inputs listed
here, the images predicted by the cluster's actor pool (:func:`imgclf.scale.datasets.predict`), the rows streamed into
``FILE`` as batches finish (:mod:`imgclf.scale.output`: a rerun after a kill skips what is written)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

from ..bundle.folder import load_bundle
from ..config.settings import Config
from ..util.progress import progress_bar
from .cluster import connect
from .datasets import blocks, predict
from .output import listing_table, open_predictions, stamp


def predict_files(model: str | os.PathLike, inputs: Sequence[str], out: str | os.PathLike, cfg: Config, *,
                  address: str | None = None, actors: int | None = None, actor_cpus: float = 1, batch_size: int = 32,
                  progress: bool = True) -> dict[str, Any]:
    """Predict the image files ``inputs`` (as listed by :func:`imgclf.inference.predict.expand_inputs`) on Ray into
    ``out`` (.jsonl or .parquet; paths made absolute, each once); ``cfg``: the engine, predict and images
    sections. Returns what was done: ``images`` listed, ``skipped`` (written by an earlier job), ``predicted``,
    ``rows`` and ``errors`` in the file, ``ray_start_s`` and ``seconds``."""
    paths = list(dict.fromkeys(os.path.abspath(p) for p in inputs))
    listed = {p: stamp(p) for p in paths}
    labels = load_bundle(model).labels  # a bundle that does not load is refused before Ray starts
    sink = open_predictions(Path(out), labels, listed)
    todo = [p for p in paths if p not in sink.done]
    summary: dict[str, Any] = {"images": len(paths), "skipped": len(paths) - len(todo), "predicted": 0, "ray_start_s": None}
    t0 = time.perf_counter()
    try:
        if todo:
            ray = connect(address)
            summary["ray_start_s"] = round(time.perf_counter() - t0, 2)
            ds = ray.data.from_arrow(blocks(listing_table(todo, [listed[p] for p in todo]), batch_size))
            rows = predict(ds, model, engine=cfg.engine, predict=cfg.predict, images=cfg.images, actors=actors,
                           actor_cpus=actor_cpus, batch_size=batch_size)
            bar = progress_bar(len(todo), "predict (ray)") if progress else None
            for table in rows.iter_batches(batch_size=None, batch_format="pyarrow"):
                sink.write(table)
                summary["predicted"] += table.num_rows
                if bar is not None:
                    bar.update(table.num_rows)
            if bar is not None:
                bar.close()
    finally:
        sink.close()
    summary.update(rows=sink.rows, errors=sink.errors, seconds=round(time.perf_counter() - t0, 2))
    return summary
