"""``--ray`` of ``imgclf predict`` and ``imgclf featurize``: the same commands, their work done on a Ray cluster
(see :mod:`imgclf.scale`). Ray is imported only once one of them runs with --ray."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import typer

from ..util.errors import ImgclfError


def no_ray_options(**given: Any) -> None:
    """Refuse the options that only --ray reads when they were given without it."""
    named = [f"--{k}" for k, v in given.items() if v is not None]
    if named:
        raise ImgclfError(f"{' and '.join(named)} go{'es' if len(named) == 1 else ''} with --ray, which was not given",
                          hint="add --ray (a local Ray instance) or --ray-address ADDRESS, or leave them out")


def _quiet_ray_data() -> None:
    """Ray Data's notes on each execution (its plan, its log folder, its bars turned off) stay out of the command's output."""
    from ..scale.cluster import require_ray

    require_ray()
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def ray_predict(model: Path, inputs: Sequence[str], out: Optional[Path], cfg: Any, address: Optional[str],
                actors: Optional[int]) -> int:
    """Predict ``inputs`` on Ray into ``out``; prints what was done; returns the exit status (1: unreadable images)."""
    from ..rundir.state import bundle_run_incomplete

    _quiet_ray_data()
    from ..scale.predict import predict_files

    if out is None:
        raise ImgclfError("--ray writes its rows into a file, and no --out was given",
                          hint="--out predictions.jsonl (or .parquet): a rerun after a stop skips the rows written")
    incomplete = bundle_run_incomplete(model)
    if incomplete:
        typer.echo(f"warning: {incomplete['message']}\nhint: {incomplete['hint']}", err=True)
    s = predict_files(model, inputs, out, cfg, address=address, actors=actors, actor_cpus=cfg.engine.threads or 1,
                      batch_size=cfg.featurize.batch_size)
    earlier = f", {s['skipped']} written by an earlier job" if s["skipped"] else ""
    start = f", Ray start-up {s['ray_start_s']} s" if s["ray_start_s"] is not None else ""
    typer.echo(f"predicted {s['predicted']} of {s['images']} images{earlier} in {s['seconds']} s{start}: {out} holds {s['rows']} rows")
    if s["errors"]:
        typer.echo(f"error: {s['errors']} of {s['rows']} images could not be read (their rows carry an \"error\")", err=True)
        return 1
    return 0


def ray_featurize(cfg: Any, run_dir: Path, address: Optional[str], actors: Optional[int]) -> None:
    """The featurize step on Ray; prints local featurize's line and Ray's part."""
    _quiet_ray_data()
    from ..scale.featurize import featurize_run

    s = featurize_run(cfg, run_dir, address=address, actors=actors, actor_cpus=cfg.engine.threads or 1)
    typer.echo(f"featurized {s['featurized']}/{s['images']} images ({s['cache_hits']} from cache) in {s['seconds']} s"
               f" [{s['feature_id']}] on Ray: {s['actors']} actors, start-up {s['ray_start_s']} s")
