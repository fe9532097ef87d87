"""Label next on a run directory: which pool images to label (``suggest``).

    suggest   the pool's images (``data.pool``) → pool_features.npz (only new or changed files are
              featurized, through the feature cache) → the run's head's probabilities → a strategy
              of :mod:`imgclf.labelnext` → suggestions.csv; the images a service kept after answering
              "unknown" or "uncertain" (:mod:`imgclf.data.kept`) lead the batch, each with that reason

Label next's Refit is the quick update (:mod:`imgclf.labelnext.quick`): the head refit on the current
labels as a draft iteration, whose own head then suggests. The labelled pool images only train, here
and in the next ``imgclf run`` too (:mod:`imgclf.data.split`). Needs a run whose model is a linear head
on features.npz (``train.classifier = "svm"``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle.folder import load_head
from ..classifier.linear import LinearHead
from ..config.settings import Config
from ..data.dataset import Item, scan_dataset
from ..data.kept import KeptImage, read_kept
from ..features.featurize import featurize_many
from ..features.ids import join_ids
from ..features.step import feature_cache_dir, run_featurizers
from ..rundir.layout import RunDir
from ..util.errors import DatasetError, RunDirError
from .strategies import DEFAULT_STRATEGY, check_strategy, select, uncertainty

__all__ = ["Pool", "load_pool", "current_head", "suggest", "served_unsure", "POOL_EMPTY"]

POOL_EMPTY = "pool_empty"  # the reason of the error suggest raises when no unlabelled image is left


@dataclass
class Pool:
    """The pool of a dataset: unlabelled images and those given a class, each with features."""

    unlabelled: list[Item]
    labelled: list[Item]  # pool images an annotation gave a class (``label`` is set)
    features: dict[str, np.ndarray]  # path → feature, for every image above
    failed: list[tuple[str, str]]  # (path, reason) of pool images that could not be featurized


def load_pool(cfg: Config, rd: RunDir, progress: bool = False) -> Pool:
    """The dataset's pool with the features of its images (new ones featurized and kept in pool_features.npz)."""
    ds = scan_dataset(cfg.images_dir(), pool=cfg.data.pool)
    labelled = [it for it in ds.items if it.from_pool]
    feats, failed = _pool_features(cfg, rd, [it.path for it in ds.pool + labelled], progress)
    return Pool([it for it in ds.pool if it.path in feats], [it for it in labelled if it.path in feats], feats, failed)


def _stamp(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def _pool_features(cfg: Config, rd: RunDir, paths: list[str], progress: bool) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Features of ``paths``: from pool_features.npz while a file's size and mtime are unchanged, else featurized."""
    run_fid = rd.load_features()[3]
    old = rd.load_pool_features()
    stamps = {p: _stamp(p) for p in paths}
    known: dict[str, int] = {}
    if str(old["feature_id"]) == run_fid:
        known = {str(p): i for i, p in enumerate(old["paths"]) if old["ok"][i] and tuple(old["stamps"][i]) == stamps.get(str(p))}
    fresh = [p for p in paths if p not in known]
    feats = {p: old["features"][i] for p, i in known.items()}
    failed: list[tuple[str, str]] = []
    if fresh:
        engines = run_featurizers(cfg, rd)
        fid = join_ids([e.feature_id for e in engines])
        if fid != run_fid:
            raise RunDirError(f"features.npz was made by featurizer(s) {run_fid} but the config now gives {fid}",
                              hint=f"run `imgclf featurize --run-dir {rd.root}` again, or give the run's own settings")
        res = featurize_many(fresh, engines, batch_size=cfg.featurize.batch_size, cache_dir=feature_cache_dir(cfg),
                             threads=cfg.engine.threads, progress=progress, desc="pool")
        feats.update({p: f for p, f, ok in zip(res.paths, res.features, res.ok) if ok})
        failed = res.errors
    if fresh or len(known) != len(old["paths"]):
        keep = [p for p in paths if p in feats]
        dim = len(next(iter(feats.values()))) if feats else 0
        rd.write_pool_features(keep, np.stack([feats[p] for p in keep]) if keep else np.zeros((0, dim), np.float32),
                               np.ones(len(keep), bool), np.array([stamps[p] for p in keep], np.int64), run_fid)
    return feats, failed


def current_head(rd: RunDir) -> tuple[LinearHead, list[str], dict[str, Any]]:
    """(head, class labels, the bundle's classifier section) of the run's model. Refuses a model that is not a
    head on features.npz."""
    _, meta, head = load_head(rd.model)  # recovers a bundle swap killed between its renames
    run_fid = rd.load_features()[3]
    if meta.feature_ids != run_fid:
        raise RunDirError(f"the model of {rd.root} classifies features of {meta.feature_ids}, not those of "
                          f"features.npz ({run_fid}); Label next ranks with a linear head on features.npz",
                          hint="use a run made with train.classifier = \"svm\"")
    return head, list(meta.labels), meta.classifier


def _labelled_features(rd: RunDir, pool: Pool) -> np.ndarray:
    """Features of the run's train images and of the pool images given a class since the run's split (the
    labelled images a suggestion should not duplicate)."""
    _, x = rd.split_features("train")
    in_split = {r.path for r in rd.split_rows()}
    since = [it for it in pool.labelled if it.path not in in_split]
    x_pool = np.stack([pool.features[it.path] for it in since]) if since else np.zeros((0, x.shape[1]), np.float32)
    return np.concatenate([x, x_pool])


def suggest(cfg: Config, run_dir: str | os.PathLike, n: int = 50, strategy: str = DEFAULT_STRATEGY,
            progress: bool = False) -> dict[str, Any]:
    """Rank the pool's unlabelled images by ``strategy`` and write the first ``n`` to suggestions.csv."""
    t0 = time.perf_counter()
    check_strategy(strategy)
    rd = RunDir(run_dir)
    head, labels, _ = current_head(rd)
    pool = load_pool(cfg, rd, progress)
    if not pool.unlabelled:
        raise DatasetError(f"the pool of {cfg.images_dir()} has no unlabelled images left",
                           hint="put images to label in IMAGES/_unlabeled (or the folder data.pool names)", reason=POOL_EMPTY)
    x_pool = np.stack([pool.features[it.path] for it in pool.unlabelled])
    x_lab = _labelled_features(rd, pool)
    proba = head.predict_proba(x_pool)
    first = served_unsure(pool.unlabelled)[:n]
    sel = select(strategy, proba, x_pool, x_lab, n + len(first), seed=cfg.data.seed, duplicate_cosine=cfg.doctor.duplicate_cosine)
    served = {i for i, _ in first}
    picks = [(i, float(uncertainty(proba[i:i + 1])[0]), why) for i, why in first]
    picks += [(int(i), float(s), sel.reason) for i, s in zip(sel.indices, sel.scores) if int(i) not in served][:n - len(first)]
    rows = [{"rank": k + 1, "path": pool.unlabelled[i].path, "rel": pool.unlabelled[i].rel,
             "predicted": labels[int(proba[i].argmax())], "score": round(s, 6), "reason": why}
            for k, (i, s, why) in enumerate(picks)]
    rd.write_suggestions(rows)
    return {"strategy": strategy, "suggested": len(rows), "pool": len(pool.unlabelled), "labelled_in_pool": len(pool.labelled),
            "served_unsure_first": len(first), "near_duplicates_skipped": len(sel.skipped), "unreadable": len(pool.failed),
            "labels": labels, "seconds": round(time.perf_counter() - t0, 3), "rows": rows}


def served_unsure(items: list[Item]) -> list[tuple[int, str]]:
    """(index in ``items``, why) of the images a service kept (``serve.keep_inputs``) after answering "unknown" or
    "uncertain": unknown first, then the most asked, then the most recently asked. Label next puts them first."""
    records: dict[Path, dict[str, KeptImage]] = {}
    found = []
    for i, it in enumerate(items):
        folder = Path(it.path).parent
        if folder not in records:
            records[folder] = read_kept(folder)
        k = records[folder].get(Path(it.path).name)
        if k is not None and k.unsure:
            found.append((i, k))
    found.sort(key=lambda x: x[1].last_asked, reverse=True)
    found.sort(key=lambda x: (not x[1].unknown, -x[1].times_asked))
    return [(i, served_reason(k)) for i, k in found]


def served_reason(k: KeptImage) -> str:
    """Why a kept image is suggested: ``the service answered unknown on 2026-12-05 (asked 3 times)``."""
    flagged = ", flagged unknown," if k.unknown and k.answer != "unknown" else ""
    return (f"the service answered {k.answer}{flagged} on {k.first_asked[:10]}"
            + (f" (asked {k.times_asked} times)" if k.times_asked > 1 else ""))
