"""The doctor step: the run's cached features → label_issues.csv, outliers.csv, duplicates.csv,
oof_predictions.csv (the out-of-fold probabilities the label check computed: the web UI's scores of train images), and
the "dataset health" section of metrics.json and report.html (see :mod:`imgclf.doctor`).

It reads only what earlier steps left in the run directory — split.csv, features.npz,
hashes.npz (dhash codes from ``prepare``) and, when the run was evaluated, predictions.csv —
plus the dataset's annotations.csv (what a person already reviewed) and the images' headers
(their sizes). Nothing is featurized again; a missing dhash code is computed once and kept.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..config.settings import Config
from ..data.annotations import current_state
from ..data.duplicates import compute_codes
from ..data.images import read_header
from ..data.split import SplitRow
from ..evaluation.metrics import Metrics
from ..evaluation.step import write_run_report
from ..features.engines import cpu_threads
from ..rundir.layout import RunDir
from ..util.errors import DatasetError, ImageError
from ..util.files import read_csv, read_json, write_json
from .examine import Findings, Images, examine

#: Keys of the health summary that `imgclf run` prints and keeps in metrics.json's ``steps``.
SUMMARY_KEYS = ("estimated_label_error_rate", "label_issues", "outliers", "duplicate_pairs", "leak_pairs", "seconds")


def doctor(cfg: Config, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Examine the run's images; write the findings; add the health section to an evaluated run. Returns the health."""
    t0 = time.perf_counter()
    rd = RunDir(run_dir)
    images = load_images(cfg, rd)
    classes = sorted(set(images.labels))
    if len(classes) < 2:
        raise DatasetError(f"the doctor needs images of at least 2 classes with features; got {classes}",
                           hint=f"see {rd.split} and {rd.skipped}")
    found = examine(images, classes, cfg.doctor, input_size=cfg.model.resolution,
                    max_distance=cfg.data.duplicate_distance, seed=cfg.data.seed)
    rd.write_findings(found.label_issues, found.outliers, found.duplicates, found.decided)
    rd.write_oof_predictions([SplitRow(p, lb, sp, rel) for p, rel, lb, sp in zip(images.paths, images.rels, images.labels, images.splits)],
                             found.proba, classes)
    health = found.health
    if rd.metrics.exists() and rd.predictions.exists():
        health.update(_accuracy_without_suspects(rd, found))
    health["seconds"] = round(time.perf_counter() - t0, 3)
    if rd.metrics.exists() and rd.predictions.exists():
        m = Metrics.from_dict(read_json(rd.metrics))
        m.estimated_label_error_rate = health["estimated_label_error_rate"]
        m.dataset_health = health
        write_json(rd.metrics, m.to_dict())
        write_run_report(rd, m, rd.read_predictions(m.labels), label_issues=found.label_issues)
    return health


def load_images(cfg: Config, rd: RunDir) -> Images:
    """The usable images of the run (in split.csv, not skipped, with features) and what is known of them."""
    index, feats, ok, _ = rd.load_features()
    bad = rd.skipped_paths()
    rows = [r for r in rd.split_rows() if r.path not in bad and r.path in index and ok[index[r.path]]]
    if len(rows) < 4:
        raise DatasetError(f"the doctor needs at least 4 usable images with features; {rd.features} has {len(rows)}",
                           hint=f"run `imgclf featurize --run-dir {rd.root}`, and see {rd.skipped}")
    paths = [r.path for r in rows]
    images_dir = cfg.images_dir()
    reviewed = {rel: a.action for rel, a in current_state(images_dir).items()} if images_dir.is_dir() else {}
    return Images(paths=paths, rels=[r.rel or r.path for r in rows], labels=[r.label for r in rows],
                  splits=[r.split for r in rows], features=feats[[index[p] for p in paths]],
                  codes=_codes(rd, paths, cfg.engine.threads), sizes=_sizes(paths, cfg.engine.threads), reviewed=reviewed)


def _codes(rd: RunDir, paths: list[str], threads: int) -> np.ndarray | None:
    """dhash codes from hashes.npz; the missing ones are computed and saved. None when none could be had."""
    known = rd.load_hashes()
    missing = [p for p in paths if p not in known]
    if missing:
        codes, ok, _ = compute_codes(missing, workers=cpu_threads(threads))
        known.update({p: c for p, c, good in zip(missing, codes, ok) if good})
        rd.write_hashes(list(known), np.stack(list(known.values())) if known else np.zeros((0, 32), np.uint8))
    if not all(p in known for p in paths):
        return None
    return np.stack([known[p] for p in paths])


def _sizes(paths: list[str], threads: int) -> np.ndarray:
    """(N, 2) width and height from each file's header; 0, 0 for a file that cannot be read now."""
    def one(p: str) -> tuple[int, int]:
        try:
            header = read_header(p)
            return header.width, header.height
        except ImageError:
            return 0, 0

    with ThreadPoolExecutor(cpu_threads(threads)) as pool:
        return np.array(list(pool.map(one, paths)), dtype=np.int64).reshape(-1, 2)


def _accuracy_without_suspects(rd: RunDir, found: Findings) -> dict[str, Any]:
    """Test accuracy again without the test images that leak from train or carry a suspected wrong label."""
    suspects = {r["path"] for r in found.label_issues if r["split"] == "test"}
    suspects |= {r["path_a"] if r["split_a"] == "test" else r["path_b"] for r in found.duplicates if r["leak"]}
    preds = [(r["label"], r["predicted"]) for r in read_csv(rd.predictions) if r["path"] not in suspects]
    return {"accuracy_without_suspects": round(sum(a == b for a, b in preds) / len(preds), 6) if preds else None,
            "n_test_without_suspects": len(preds)}

