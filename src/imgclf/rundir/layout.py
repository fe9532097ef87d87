"""The run directory: every file a run writes, its name and its schema, in one place.

    RUN_DIR/
      config.json, config.toml   the resolved config of the run (JSON read back; TOML for --config)
      split.csv                  path, rel, label, split (train|test): the images used, by ``prepare``
      skipped.csv                path, reason, stage: images left out, and why (never fatal)
      leakage.csv                train_path, test_path: near-duplicate pairs across the split
      hashes.npz                 paths (N,), codes (N, 32) uint8: packed 256-bit dhash of each usable image
      features.npz               paths (N,), features (N, D) float32, ok (N,) bool, feature_id (str; several
                                 featurizers' ids joined by "+" when their L2-normalised features are concatenated)
      candidates.json            preset balanced/best: each candidate featurizer's nested-CV score on the train
                                 split, cost in seconds, status, and the winner (see imgclf.presets.select); best
                                 adds "refinement" (its plan) and "ensemble" (each component's validation score,
                                 weight and why, every grid point tried; see imgclf.refine.ensemble)
      ensemble_components.npz    preset best: each component's calibrated head over the bundle's feature blocks
                                 (weight_<name> (K, D), bias_<name> (K,)); the bundle's head is their weighted sum
      label_issues.csv           path, rel, split, given_label, suggested_label, score, rank, reason: suspected
                                 label errors, worst (lowest out-of-fold probability of the given label) first
      outliers.csv               path, rel, split, label, distance, threshold, rank: images far from every train image
      duplicates.csv             path_a, path_b, rel_a, rel_b, label_a, label_b, split_a, split_b, kind, leak, cosine,
                                 dhash_distance: near-duplicate pairs (kind within_class | cross_class; leak 1 = train/test)
      decided_findings.csv       kind, path, rel, split, given_label, suggested_label, decision: the doctor's findings on
                                 images a person already decided on (annotations.csv), left out of the three files above
      oof_predictions.csv        path, rel, split, label, predicted, score, p_<label> for every class: the data doctor's
                                 out-of-fold probabilities of every usable image, each from models that never saw its label
                                 (a draft's: its train images', from its cross-validation)
      model/                     the model bundle (see imgclf.bundle)
      metrics.json               test metrics (see imgclf.evaluation.metrics.Metrics); a draft iteration's (made by the
                                 quick update, see imgclf.labelnext.quick) holds ``"draft": true`` and cross-validated
                                 train figures (cv_*) instead, never a test figure
      predictions.csv            path, rel, label, predicted, score, p_<label> for every class
      roc.png, confusion_matrix.png, reliability.png, coverage.png, training_curves.png, report.html
      class_maps/                <row>.predicted.png, <row>.true.png: class activation maps of misclassified test
                                 images (row: of predictions.csv), shown in report.html
      tracking.json              the MLflow run this directory is logged to (see imgclf.tracking)
      refine/                    refinement checkpoints, while a refinement runs or can be resumed
      pool_features.npz          paths (N,), features (N, D) float32, ok (N,) bool, stamps (N, 2) int64 (size, mtime_ns),
                                 feature_id (str): features of the pool's unlabelled images (``imgclf suggest``)
      suggestions.csv            rank, path, rel, predicted, score, reason: the pool images to label next, first first
                                 (score: uncertainty in [0, 1], or for kcenter the cosine distance to the labelled images)

      .imgclf-run.json           written by the first imgclf command that writes the folder: imgclf made it
      INCOMPLETE                 {command, started, pid, host, next[, finished]} while the model, split and metrics may
                                 not belong together (see imgclf.rundir.state)
      .imgclf.lock, .imgclf.lock.json   the lock every writing command holds, and its holder (see imgclf.rundir.lock)

Every file is written atomically (temp file + rename).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..config.settings import Config, config_from_dict, to_toml
from ..data.split import SplitRow, load_split
from ..util.errors import RunDirError
from ..util.files import read_csv, read_json, read_npz, write_csv, write_json, write_npz, write_text
from .lock import HOLDER, LOCK
from .state import INCOMPLETE, MADE_BY

SKIPPED_COLUMNS = ["path", "reason", "stage"]
LEAKAGE_COLUMNS = ["train_path", "test_path"]
LABEL_ISSUE_COLUMNS = ["path", "rel", "split", "given_label", "suggested_label", "score", "rank", "reason"]
DECIDED_COLUMNS = ["kind", "path", "rel", "split", "given_label", "suggested_label", "decision"]
OUTLIER_COLUMNS = ["path", "rel", "split", "label", "distance", "threshold", "rank"]
DUPLICATE_COLUMNS = ["path_a", "path_b", "rel_a", "rel_b", "label_a", "label_b", "split_a", "split_b", "kind", "leak",
                     "cosine", "dhash_distance"]
PREDICTION_COLUMNS = ["path", "rel", "label", "predicted", "score"]  # then p_<label> for every class
SUGGESTION_COLUMNS = ["rank", "path", "rel", "predicted", "score", "reason"]
OOF_PREDICTION_COLUMNS = ["path", "rel", "split", "label", "predicted", "score"]  # then p_<label> for every class
SCORE_PREFIX = "p_"


@dataclass(frozen=True)
class RunDir:
    """File names inside a run directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda s: s.root / "config.json")
    config_toml = property(lambda s: s.root / "config.toml")
    split = property(lambda s: s.root / "split.csv")
    skipped = property(lambda s: s.root / "skipped.csv")
    leakage = property(lambda s: s.root / "leakage.csv")
    hashes = property(lambda s: s.root / "hashes.npz")
    features = property(lambda s: s.root / "features.npz")
    candidates = property(lambda s: s.root / "candidates.json")
    ensemble_components = property(lambda s: s.root / "ensemble_components.npz")
    label_issues = property(lambda s: s.root / "label_issues.csv")
    outliers = property(lambda s: s.root / "outliers.csv")
    duplicates = property(lambda s: s.root / "duplicates.csv")
    oof_predictions = property(lambda s: s.root / "oof_predictions.csv")
    decided_findings = property(lambda s: s.root / "decided_findings.csv")
    model = property(lambda s: s.root / "model")
    metrics = property(lambda s: s.root / "metrics.json")
    predictions = property(lambda s: s.root / "predictions.csv")
    report = property(lambda s: s.root / "report.html")
    roc = property(lambda s: s.root / "roc.png")
    confusion = property(lambda s: s.root / "confusion_matrix.png")
    training_curves = property(lambda s: s.root / "training_curves.png")
    reliability = property(lambda s: s.root / "reliability.png")  # calibration before/after (evaluate)
    coverage = property(lambda s: s.root / "coverage.png")  # accuracy against coverage when abstaining (evaluate)
    class_maps = property(lambda s: s.root / "class_maps")
    tracking = property(lambda s: s.root / "tracking.json")
    checkpoints = property(lambda s: s.root / "refine")
    pool_features = property(lambda s: s.root / "pool_features.npz")
    suggestions = property(lambda s: s.root / "suggestions.csv")
    made_by = property(lambda s: s.root / MADE_BY)  # imgclf made this folder (see imgclf.rundir.state)
    incomplete = property(lambda s: s.root / INCOMPLETE)
    lock = property(lambda s: s.root / LOCK)
    lock_holder = property(lambda s: s.root / HOLDER)

    #: Files kept with the run in the tracking store (the model/ folder goes in too).
    ARTIFACTS = ("roc.png", "confusion_matrix.png", "reliability.png", "coverage.png", "report.html", "metrics.json", "config.json", "config.toml",
                 "split.csv", "skipped.csv", "predictions.csv", "leakage.csv", "label_issues.csv", "outliers.csv",
                 "duplicates.csv", "candidates.json", "oof_predictions.csv", "decided_findings.csv")

    def need(self, path: Path, step: str) -> Path:
        """``path``, or a RunDirError saying which step makes it."""
        if not path.exists():
            raise RunDirError(f"{path} is missing", hint=f"run `imgclf {step} --run-dir {self.root}` first (or `imgclf run`)")
        return path

    # ---------------------------------------------------------------- config

    def saved_config(self) -> Config | None:
        """The resolved config saved in this run directory, or None."""
        return config_from_dict(read_json(self.config)) if self.config.exists() else None

    def save_config(self, cfg: Config) -> None:
        write_json(self.config, cfg.to_dict())
        write_text(self.config_toml, to_toml(cfg))

    # ---------------------------------------------------------------- split

    def split_rows(self, side: str | None = None) -> list[SplitRow]:
        """Rows of split.csv (of one ``side`` when given). ``"train"`` includes the ``val`` rows of a
        ``validation/`` folder: what the SVM trains on; refinement tells them apart (``r.split``)."""
        rows = load_split(str(self.need(self.split, "prepare")))
        if side is None:
            return rows
        sides = ("train", "val") if side == "train" else (side,)
        return [r for r in rows if r.split in sides]

    # ---------------------------------------------------------------- skipped images

    def skipped_rows(self) -> list[tuple[str, str, str]]:
        """(path, reason, stage) of every image left out so far."""
        return [(r["path"], r["reason"], r["stage"]) for r in read_csv(self.skipped)] if self.skipped.exists() else []

    def add_skipped(self, rows: Iterable[tuple[str, str, str]], replace_stage: str | None = None) -> None:
        """Add (path, reason, stage) rows; ``replace_stage`` first drops that stage's earlier rows."""
        old = [r for r in self.skipped_rows() if r[2] != replace_stage]
        seen = {r[0] for r in old}
        write_csv(self.skipped, SKIPPED_COLUMNS, old + [r for r in rows if r[0] not in seen])

    def skipped_paths(self) -> set[str]:
        return {r[0] for r in self.skipped_rows()}

    # ---------------------------------------------------------------- leakage

    def write_leakage(self, pairs: Sequence[tuple[str, str]]) -> None:
        write_csv(self.leakage, LEAKAGE_COLUMNS, pairs)

    def leakage_count(self) -> int | None:
        return len(read_csv(self.leakage)) if self.leakage.exists() else None

    # ---------------------------------------------------------------- dhash codes

    def write_hashes(self, paths: Sequence[str], codes: np.ndarray) -> None:
        write_npz(self.hashes, paths=np.array(list(paths), dtype=str), codes=np.asarray(codes, dtype=np.uint8))

    def load_hashes(self) -> dict[str, np.ndarray]:
        """The packed dhash code of each image path (empty when hashes.npz is missing)."""
        if not self.hashes.exists():
            return {}
        z = read_npz(self.hashes)
        return {str(p): c for p, c in zip(z["paths"], z["codes"])}

    # ---------------------------------------------------------------- the doctor's findings

    def write_findings(self, label_issues: Sequence[dict], outliers: Sequence[dict], duplicates: Sequence[dict],
                       decided: Sequence[dict] = ()) -> None:
        """label_issues.csv, outliers.csv, duplicates.csv and decided_findings.csv from rows given as dicts."""
        for path, columns, rows in ((self.label_issues, LABEL_ISSUE_COLUMNS, label_issues),
                                    (self.outliers, OUTLIER_COLUMNS, outliers), (self.duplicates, DUPLICATE_COLUMNS, duplicates),
                                    (self.decided_findings, DECIDED_COLUMNS, decided)):
            write_csv(path, columns, ([r[c] for c in columns] for r in rows))

    def read_findings(self) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
        """Rows of label_issues.csv, outliers.csv and duplicates.csv (a RunDirError when the doctor has not run)."""
        return tuple(read_csv(self.need(p, "doctor")) for p in (self.label_issues, self.outliers, self.duplicates))  # type: ignore[return-value]

    # ---------------------------------------------------------------- features

    def write_features(self, paths: Sequence[str], features: np.ndarray, ok: np.ndarray, feature_id: Any) -> None:
        write_npz(self.features, paths=np.array(list(paths)), features=features, ok=ok, feature_id=np.array(str(feature_id)))

    def load_features(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, str]:
        """(row of each path, features, ok, feature id) from features.npz."""
        z = read_npz(self.need(self.features, "featurize"))
        return {str(p): i for i, p in enumerate(z["paths"])}, z["features"], z["ok"], str(z["feature_id"])

    def split_features(self, side: str) -> tuple[list[SplitRow], np.ndarray]:
        """Split rows of ``side`` that have features, and their features."""
        index, feats, ok, _ = self.load_features()
        rows = [r for r in self.split_rows(side) if r.path in index and ok[index[r.path]]]
        return rows, feats[[index[r.path] for r in rows]] if rows else np.zeros((0, feats.shape[1]), np.float32)

    # ---------------------------------------------------------------- predictions

    def write_predictions(self, rows: Sequence[SplitRow], proba: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
        """predictions.csv of test ``rows`` with probabilities ``proba`` (N, K); returns its rows as dicts."""
        preds = _scored_rows(rows, proba, labels)
        columns = PREDICTION_COLUMNS + [f"{SCORE_PREFIX}{n}" for n in labels]
        write_csv(self.predictions, columns, ([p[c] for c in columns] for p in preds))
        return preds

    def class_map(self, row: int, which: str) -> Path:
        """The overlay PNG of test result ``row`` (of predictions.csv) for its ``which`` class: predicted or true."""
        return self.class_maps / f"{row}.{which}.png"

    def read_predictions(self, labels: Sequence[str]) -> list[dict[str, Any]]:
        """predictions.csv rows: path, rel, label, predicted, score (float) and scores {label: p}."""
        return _read_scored(self.predictions, labels)

    def write_oof_predictions(self, rows: Sequence[SplitRow], proba: np.ndarray, labels: Sequence[str]) -> None:
        """oof_predictions.csv: the doctor's out-of-fold probabilities ``proba`` (N, K) of ``rows`` (any split)."""
        preds = _scored_rows(rows, proba, labels)
        columns = OOF_PREDICTION_COLUMNS + [f"{SCORE_PREFIX}{n}" for n in labels]
        write_csv(self.oof_predictions, columns, ([p[c] for c in columns] for p in preds))

    def read_oof_predictions(self) -> tuple[list[str], list[dict[str, Any]]]:
        """(classes, rows) of oof_predictions.csv; rows as :meth:`read_predictions` gives them, plus ``split``."""
        with open(self.need(self.oof_predictions, "doctor"), newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        labels = [c[len(SCORE_PREFIX):] for c in header[len(OOF_PREDICTION_COLUMNS):]]
        return labels, _read_scored(self.oof_predictions, labels)


    # ---------------------------------------------------------------- Label next

    def write_pool_features(self, paths: Sequence[str], features: np.ndarray, ok: np.ndarray, stamps: np.ndarray,
                            feature_id: Any) -> None:
        write_npz(self.pool_features, paths=np.array(list(paths), dtype=str), features=np.asarray(features, np.float32),
                  ok=np.asarray(ok, bool), stamps=np.asarray(stamps, np.int64).reshape(-1, 2), feature_id=np.array(str(feature_id)))

    def load_pool_features(self) -> dict[str, np.ndarray]:
        """pool_features.npz's arrays (empty arrays when there is none)."""
        if not self.pool_features.exists():
            return {"paths": np.zeros(0, str), "features": np.zeros((0, 0), np.float32), "ok": np.zeros(0, bool),
                    "stamps": np.zeros((0, 2), np.int64), "feature_id": np.array("")}
        return read_npz(self.pool_features)

    def write_suggestions(self, rows: Sequence[dict[str, Any]]) -> None:
        write_csv(self.suggestions, SUGGESTION_COLUMNS, ([r[c] for c in SUGGESTION_COLUMNS] for r in rows))

    def read_suggestions(self) -> list[dict[str, Any]]:
        """suggestions.csv rows (rank int, score float); empty when there is none."""
        if not self.suggestions.exists():
            return []
        return [{**r, "rank": int(r["rank"]), "score": float(r["score"])} for r in read_csv(self.suggestions)]


def run_config(run_dir: str | os.PathLike) -> Config | None:
    """The resolved config saved in a run directory, or None."""
    return RunDir(run_dir).saved_config()


def _scored_rows(rows: Sequence[SplitRow], proba: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    return [{"path": r.path, "rel": r.rel, "split": r.split, "label": r.label, "predicted": labels[int(p.argmax())],
             "score": float(p.max()), **{f"{SCORE_PREFIX}{n}": float(v) for n, v in zip(labels, p)}}
            for r, p in zip(rows, proba)]


def _read_scored(path: Path, labels: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for r in read_csv(path):
        row = {"path": r["path"], "rel": r.get("rel", ""), "label": r["label"], "predicted": r["predicted"],
               "score": float(r["score"]), "scores": {n: float(r.get(f"{SCORE_PREFIX}{n}") or 0.0) for n in labels}}
        if "split" in r:
            row["split"] = r["split"]
        out.append(row)
    return out
