"""The steps of a run, each reading and writing files in one run directory (see :mod:`imgclf.rundir.layout`).

    prepare    images → split.csv, skipped.csv, leakage.csv, config.json
    select     (preset balanced or best, in ``run``) train split → candidates.json and the model.* it chose
    featurize  split.csv → features.npz (features of every usable image, cached by content)
    train      features.npz → model/ (the bundle), with the trainer ``train.classifier``
    evaluate   model/ + test split → metrics.json, predictions.csv, roc.png,
               confusion_matrix.png, report.html (and the metrics go into the bundle)
    doctor     features.npz → label_issues.csv, outliers.csv, duplicates.csv, and the dataset's
               health in metrics.json and report.html (see imgclf.doctor.step)

``run`` does all of them (the doctor when ``doctor.enabled``). Each step can be re-run alone on the same run directory, like the
2017 sample's numbered scripts. Every function here that writes a run directory holds it while it works
(:func:`imgclf.rundir.guard.writing`: one writer at a time, the run marked incomplete until its model, split
and metrics belong together again, a full disk reported in one line). This module only orchestrates: the
work is in the modules it calls. Each step names itself to the progress file when one is set
(:func:`imgclf.util.progress.report_stage`).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ..config.settings import Config, featurizer_names
from ..doctor.step import SUMMARY_KEYS
from ..doctor.step import doctor as doctor_step
from ..evaluation.metrics import Metrics
from ..evaluation.step import evaluate as evaluate_step
from ..features.engines import resolve_engine
from ..features.featurize import featurize_many
from ..features.ids import join_ids
from ..features.step import feature_cache_dir, run_featurizers
from ..labelnext.step import suggest as suggest_step
from ..prepare.step import prepare as prepare_step
from ..presets.select import RefinementStatus, after_refinement, needs_selection, post_seconds, select_featurizers, with_featurizers
from ..rundir.guard import writing
from ..rundir.layout import RunDir
from ..rundir.state import incomplete_info
from ..train.trainers import get_trainer, trainer_name
from ..util.budget import TimeBudget
from ..util.files import write_json
from ..util.progress import report_stage

log = logging.getLogger(__name__)

__all__ = ["prepare", "featurize", "train", "evaluate", "doctor", "refine", "suggest", "run", "default_run_dir"]


def prepare(cfg: Config, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Scan the images, split them → split.csv, skipped.csv, leakage.csv, config.json (see imgclf.prepare.step)."""
    with writing(run_dir, "prepare"):
        report_stage("prepare")
        return prepare_step(cfg, run_dir)


def featurize(cfg: Config, run_dir: str | os.PathLike, progress: bool = True) -> dict[str, Any]:
    """Features of every image in split.csv with the configured backbone → features.npz."""
    with writing(run_dir, "featurize"):
        report_stage("featurize")
        return _featurize(cfg, run_dir, progress)


def train(cfg: Config, run_dir: str | os.PathLike, trainer_as: str | None = None,
          budget: TimeBudget | None = None) -> dict[str, Any]:
    """Train ``cfg.train.classifier`` (``ensemble`` for preset best, see :func:`trainer_name`; ``trainer_as``
    another) and write the model bundle; ``budget``: what its time-limited part (the C search, refinement) may take."""
    with writing(run_dir, "train"):
        report_stage("train")
        return _train(cfg, run_dir, trainer_as, budget)


def evaluate(cfg: Config, run_dir: str | os.PathLike) -> Metrics:
    """Evaluate the bundle on the test split → metrics.json, plots, predictions.csv, report.html (see
    imgclf.evaluation.step); refused while the run is incomplete before evaluate."""
    with writing(run_dir, "evaluate"):
        report_stage("evaluate")
        return evaluate_step(cfg, run_dir)


def doctor(cfg: Config, run_dir: str | os.PathLike) -> dict[str, Any]:
    """The data doctor's findings and the dataset's health (see imgclf.doctor.step); returns the health."""
    with writing(run_dir, "doctor"):
        report_stage("doctor")
        return doctor_step(cfg, run_dir)


def refine(cfg: Config, run_dir: str | os.PathLike, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Refine the network → RUN_DIR/model (see imgclf.train.dnn.refine; every torchrun process calls it)."""
    from ..train.dnn import refine as refine_step  # torch is imported only by the commands that refine

    with writing(run_dir, "refine"):
        report_stage("refine")
        return refine_step(cfg, run_dir, resume=resume, progress=progress)


def suggest(cfg: Config, run_dir: str | os.PathLike, **kw: Any) -> dict[str, Any]:
    """The pool images to label next → suggestions.csv (see imgclf.labelnext.step.suggest); the summary's
    ``run_incomplete`` says when the model it ranks with belongs to an unfinished run (else None)."""
    with writing(run_dir, "suggest", marks=False):
        return {**suggest_step(cfg, run_dir, **kw), "run_incomplete": incomplete_info(run_dir)}


def _featurize(cfg: Config, run_dir: str | os.PathLike, progress: bool = True) -> dict[str, Any]:
    rd = RunDir(run_dir)
    rows = rd.split_rows()
    t0 = time.perf_counter()
    engines = run_featurizers(cfg, rd)
    t1 = time.perf_counter()  # building (exporting, quantising) the engine happens once per featurizer
    res = featurize_many([r.path for r in rows], engines, batch_size=cfg.featurize.batch_size,
                         cache_dir=feature_cache_dir(cfg), threads=cfg.engine.threads, progress=progress)
    seconds = time.perf_counter() - t0
    ran = resolve_engine(cfg.engine)
    fid = join_ids([e.feature_id for e in engines])
    rd.add_skipped([(p, reason, "featurize") for p, reason in res.errors], replace_stage="featurize")
    rd.write_features(res.paths, res.features, res.ok, fid)
    return {"images": len(rows), "featurized": int(res.ok.sum()), "cache_hits": res.cache_hits,
            "errors": len(res.errors), "seconds": round(seconds, 2), "feature_id": fid,
            "backend": ran.backend, "precision": ran.precision, "engine_seconds": round(t1 - t0, 2),
            "images_per_s": round(len(rows) / (seconds - (t1 - t0)), 1) if seconds > t1 - t0 else None}


def _train(cfg: Config, run_dir: str | os.PathLike, trainer_as: str | None = None,
           budget: TimeBudget | None = None) -> dict[str, Any]:
    rd = RunDir(run_dir)
    name = trainer_as or trainer_name(cfg)
    cfg = cfg.with_change("train.classifier", name, by=f"train.preset={cfg.train.preset}")  # best: svm becomes ensemble
    trainer = get_trainer(name)
    t0 = time.perf_counter()
    out = trainer.fit(cfg, rd, budget or TimeBudget())
    out["seconds"] = round(time.perf_counter() - t0, 2)
    rd.save_config(cfg)
    return out


def run(cfg: Config, run_dir: str | os.PathLike, progress: bool = True) -> Metrics:
    """prepare → select (balanced/best) → featurize (when the trainer or the doctor needs it) → train → evaluate →
    doctor (when ``doctor.enabled``), within ``train.time_limit_s``; returns the test metrics."""
    with writing(run_dir, "run"):
        return _run(cfg, run_dir, progress)


def _run(cfg: Config, run_dir: str | os.PathLike, progress: bool) -> Metrics:
    budget = TimeBudget.start(cfg.train.time_limit_s)
    t0 = time.perf_counter()
    report_stage("prepare")
    steps = {"prepare": prepare_step(cfg, run_dir)}
    rd = RunDir(run_dir)
    rows = rd.split_rows()
    name = trainer_name(cfg)
    train_budget = TimeBudget()  # what the trainer's time-limited part may take: none unless planned below
    if needs_selection(cfg):
        report_stage("select")
        chosen = select_featurizers(cfg, rd, budget)
        cfg = with_featurizers(cfg, chosen.winner)
        rd.save_config(cfg)
        steps["select"] = {"winner": chosen.winner, "seconds": chosen.table["seconds"]}
        if chosen.refinement is not None and chosen.refinement.status is RefinementStatus.DROPPED:
            name = "svm"  # best without the time for refinement: balanced's SVM
        elif chosen.refinement is not None and name == "ensemble":  # refinement gets what is left, for the planned epochs
            later = chosen.after_s + after_refinement(cfg, sum(r.split == "train" for r in rows), len(rows),
                                                      chosen.s_per_gflop, len({r.label for r in rows}))
            train_budget = budget.before(later).with_refine_epochs(chosen.refinement.epochs)
    elif cfg.train.preset != "fast" and cfg.train.classifier == "svm":  # model.* pins the featurizer
        log.info("preset %s: featurizer %s as model.* sets it; nothing to choose", cfg.train.preset, "+".join(featurizer_names(cfg.model)))
    if name == "svm":  # the C search gets what is left
        train_budget = budget.before(post_seconds(len(rows)))
    trainer = get_trainer(name)
    if (trainer.needs_features or cfg.doctor.enabled) and not trainer.writes_features:
        report_stage("featurize")
        steps["featurize"] = _featurize(cfg, run_dir, progress=progress)
    report_stage("train")
    steps["train"] = _train(cfg, run_dir, trainer_as=name, budget=train_budget)
    report_stage("evaluate")
    metrics = evaluate_step(cfg, run_dir)
    if cfg.doctor.enabled:
        report_stage("doctor")
        health = doctor_step(cfg, run_dir)
        steps["doctor"] = {k: health.get(k) for k in SUMMARY_KEYS}
        metrics.estimated_label_error_rate = health["estimated_label_error_rate"]
        metrics.dataset_health = health
    metrics.wall_seconds = round(time.perf_counter() - t0, 2)
    metrics.steps = steps
    write_json(RunDir(run_dir).metrics, metrics.to_dict())
    return metrics


def default_run_dir(cfg: Config) -> Path:
    """``ROOT/runs/<dataset>/<timestamp>`` for a run without --run-dir."""
    return Path(cfg.data.root) / "runs" / cfg.dataset_name() / time.strftime("%Y%m%d-%H%M%S")
