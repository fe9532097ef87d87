"""The quick update: a run's linear head refit on the CURRENT labels, written as a draft iteration beside the run.

    parent run + its dataset folder, scanned with annotations.csv applied (the corrections of every page, pool
    images labelled since, excluded images left out)
      → each image's features: the parent's features.npz, its pool_features.npz, else the parent bundle's
        featurizer through the content-keyed feature cache (only those images)
      → the parent's split kept: an image it split stays on its side, a new image trains (nothing joins test),
        unless the dataset's folders predefine its split (``test/``: the user put it there, as ``imgclf run`` would)
      → one LinearSVC at the parent's C on the train rows (no search), scored by stratified k-fold
        cross-validation on the train rows only; the temperature and the unknown-image detector from the
        same out-of-fold decision values
      → DRAFT = <parent's folder>/<time>-quick: config.json, split.csv (the current labels), features.npz,
        skipped.csv, oof_predictions.csv (the train rows, out of fold), model/ (featurizer files hard-linked
        from the parent's bundle) and metrics.json (``draft``, the cross-validated figures, the parent)

The test split never steers a draft and is never scored by one: a draft's metrics hold no test figure,
only a full iteration (``imgclf run``) measures the test split. Needs a parent whose model is a linear head
on its features.npz (``train.classifier = "svm"``; the parent may itself be a draft). The draft appears
whole or not at all: it is written in a hidden folder beside, then renamed into place.
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle.folder import derive_bundle, load_bundle, load_head
from ..bundle.swap import fsync_dir, link_or_copy
from ..classifier.linear import LinearHead, fit_head
from ..config.settings import Config, EngineConfig
from ..data.dataset import Item, scan_dataset
from ..data.split import MIN_TRAIN_PER_CLASS, SplitRow, save_split
from ..evaluation.metrics import per_class_scores
from ..features.featurize import featurize_many
from ..features.step import feature_cache_dir
from ..rundir.guard import writing
from ..rundir.layout import RunDir
from ..rundir.state import RunIncomplete, read_incomplete
from ..trust.calibration import fit_temperature, softmax
from ..trust.ood import fit_ood
from ..util.arrays import class_averaged_accuracy
from ..util.errors import DatasetError, RunDirError
from ..util.files import current_umask, read_json, write_json
from .step import _stamp  # the pool features' (size, mtime) stamp

log = logging.getLogger(__name__)

__all__ = ["DRAFT_SUFFIX", "QUICK_UPDATE", "LabelChanges", "label_changes", "quick_update", "is_draft", "cv_figures"]

DRAFT_SUFFIX = "-quick"  # a draft's folder: <time><DRAFT_SUFFIX>, beside its parent
QUICK_UPDATE = "quick-update"  # the command name a draft is written under (lock holder, skipped.csv stage)


@dataclass(frozen=True)
class LabelChanges:
    """How the current labels differ from an iteration's split.csv (images it could not use left aside)."""

    relabelled: int  # images of the iteration whose label is another now
    added: int  # images it did not have (new files, pool images labelled since)
    removed: int  # images it had that are excluded or gone now

    @property
    def total(self) -> int:
        return self.relabelled + self.added + self.removed

    def to_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "total": self.total}


def _features(rd: RunDir) -> tuple[dict[str, int], np.ndarray, np.ndarray, str]:
    """The run's features.npz, read once per version of the file (a server makes many drafts of one iteration, and
    a draft's file is its parent's, hard-linked, when no image was added)."""
    st = os.stat(rd.need(rd.features, "featurize"))
    return _read_features(str(rd.features), st.st_ino, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _read_features(path: str, inode: int, mtime_ns: int, size: int) -> tuple[dict[str, int], np.ndarray, np.ndarray, str]:
    index, feats, ok, fid = RunDir(Path(path).parent).load_features()
    feats.flags.writeable = False  # shared by every draft made from it
    return index, feats, ok, fid


def _current_items(cfg: Config, rd: RunDir) -> tuple[list[Item], set[str]]:
    """(the dataset's labelled images now, the paths the run could not use: skipped.csv)."""
    ds = scan_dataset(cfg.images_dir(), pool=cfg.data.pool)
    return ds.items, rd.skipped_paths()


def _matched(old: list[SplitRow], items: list[Item]) -> list[SplitRow | None]:
    """The parent's split row of each current image (None: a new one): by its path, else by its path in the dataset
    folder (a dataset moved or copied since the run keeps those)."""
    by_path, by_rel = {r.path: r for r in old}, {r.rel: r for r in old if r.rel}
    return [by_path.get(it.path) or by_rel.get(it.rel) for it in items]


def _changes(old: list[SplitRow], items: list[Item], matched: list[SplitRow | None], unusable: set[str]) -> LabelChanges:
    return LabelChanges(relabelled=sum(1 for it, m in zip(items, matched) if m is not None and m.label != it.label),
                        added=sum(1 for it, m in zip(items, matched) if m is None and it.path not in unusable),
                        removed=len(old) - len({m.path for m in matched if m is not None}))


def _config(rd: RunDir, images_dir: str | os.PathLike) -> Config:
    cfg = rd.saved_config()
    if cfg is None:
        raise RunDirError(f"{rd.config} is missing: {rd.root} is not a run directory", hint="give a folder `imgclf run` wrote")
    cfg.data.images = str(Path(images_dir).resolve())
    return cfg


def label_changes(run_dir: str | os.PathLike, images_dir: str | os.PathLike) -> LabelChanges:
    """How the dataset's current labels differ from those the iteration ``run_dir`` was made with."""
    rd = RunDir(run_dir)
    items, unusable = _current_items(_config(rd, images_dir), rd)
    old = rd.split_rows()
    return _changes(old, items, _matched(old, items), unusable)


def is_draft(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` is a draft iteration (made by :func:`quick_update`, never measured on the test split)."""
    rd = RunDir(run_dir)
    return rd.metrics.is_file() and bool(read_json(rd.metrics).get("draft"))


def cv_figures(run_dir: str | os.PathLike) -> dict[str, float | None]:
    """The cross-validated train figures of an iteration: a draft's own; a full run's class-averaged accuracy
    at its chosen C from its C search (bundle.json), its accuracy unknown (None)."""
    rd = RunDir(run_dir)
    if is_draft(rd.root):
        m = read_json(rd.metrics)
        return {"cv_accuracy": m["cv_accuracy"], "cv_class_avg_accuracy": m["cv_class_avg_accuracy"]}
    return _full_run_figures(load_head(rd.model)[1].classifier)


def _full_run_figures(classifier: dict[str, Any]) -> dict[str, float | None]:
    return {"cv_accuracy": None, "cv_class_avg_accuracy": _score_at_c(classifier)}


def _score_at_c(classifier: dict[str, Any]) -> float | None:
    scores, c = classifier.get("cv_class_avg_accuracy"), classifier.get("C")
    if isinstance(scores, dict) and c is not None:
        found = [v for k, v in scores.items() if float(k) == float(c)]
        return float(found[0]) if found else None
    return float(scores) if isinstance(scores, (int, float)) else None


@dataclass
class _Labelled:
    """The draft's rows (current labels, sides kept) with their features, and what was left out."""

    rows: list[SplitRow]
    features: np.ndarray  # (N, D), one row per entry of ``rows``
    new_features: bool  # some rows' features are not in the parent's features.npz under their path
    failed: list[tuple[str, str]]  # (path, reason): images that could not be featurized
    unusable: int  # images the parent could not use (skipped.csv), still left out


def _labelled(cfg: Config, rd: RunDir, meta: Any, items: list[Item], unusable: set[str], matched: list[SplitRow | None],
              features: tuple[dict[str, int], np.ndarray, np.ndarray, str]) -> _Labelled:
    """Every current image with its features (``features``: the parent's features.npz), on the side of its row of the
    parent's split (``matched``; a new image on train)."""
    index, feats, ok, fid = features
    pool = rd.load_pool_features()
    in_pool = {}
    if str(pool["feature_id"]) == fid:
        in_pool = {str(p): i for i, p in enumerate(pool["paths"]) if pool["ok"][i]}
    usable, n_unusable, known = [], 0, {}
    for it, m in zip(items, matched):
        key = m.path if m is not None and m.path in index else it.path
        if it.path in unusable or (key in index and not ok[index[key]]):
            n_unusable += 1
            continue
        usable.append((it, m))
        if key in index:
            known[it.path] = feats[index[key]]
        elif it.path in in_pool and _stamp(it.path) == tuple(pool["stamps"][in_pool[it.path]]):
            known[it.path] = pool["features"][in_pool[it.path]]
    fresh = [it.path for it, _ in usable if it.path not in known]
    failed: list[tuple[str, str]] = []
    if fresh:
        engines = load_bundle(rd.model).build_engines(EngineConfig(**meta.engine))
        res = featurize_many(fresh, engines, batch_size=cfg.featurize.batch_size, cache_dir=feature_cache_dir(cfg),
                             threads=cfg.engine.threads, progress=False, desc=QUICK_UPDATE)
        known.update({p: f for p, f, good in zip(res.paths, res.features, res.ok) if good})
        failed = res.errors
        log.info("quick update: %d new images featurized, %d unreadable", int(res.ok.sum()), len(failed))
    rows = [SplitRow(it.path, it.label, m.split if m is not None else it.split or "train", it.rel) for it, m in usable
            if it.path in known]
    x = np.stack([known[r.path] for r in rows]) if rows else np.zeros((0, feats.shape[1]), np.float32)
    return _Labelled(rows, x.astype(np.float32, copy=False), not all(r.path in index for r in rows), failed, n_unusable)


def _trainable(rows: list[SplitRow], parent_labels: list[str], min_new: int) -> tuple[list[str], dict[str, int]]:
    """(the classes the draft learns, {class left out: its train images}): a class of the parent needs
    MIN_TRAIN_PER_CLASS train images, a new class ``min_new`` (one per cross-validation fold)."""
    counts = Counter(r.label for r in rows if r.split != "test")
    need = {lab: MIN_TRAIN_PER_CLASS if lab in parent_labels else min_new for lab in {r.label for r in rows}}
    labels = sorted(lab for lab in need if counts[lab] >= need[lab])
    return labels, {lab: counts[lab] for lab in sorted(need) if lab not in labels}


@dataclass
class _Fit:
    head: LinearHead
    oof: np.ndarray  # (N, K) out-of-fold decision values of the train rows
    folds: int


def _fit_scored(x: np.ndarray, y: np.ndarray, c: float, cfg: Config, normalize: bool) -> _Fit:
    """The head at ``c`` on all of ``x``, and the out-of-fold decision values of a stratified k-fold of it; the
    folds' fits and the whole fit run side by side (liblinear releases the GIL)."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold

    from ..features.engines import cpu_threads

    folds = max(2, min(cfg.svm.cv_folds, int(np.bincount(y).min())))
    parts = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.data.seed).split(x, y))
    fit = dict(normalize=normalize, class_weight=cfg.svm.class_weight, max_iter=cfg.svm.max_iter, seed=cfg.data.seed)
    jobs = [(x, y)] + [(x[tr], y[tr]) for tr, _ in parts]
    heads = Parallel(n_jobs=min(len(jobs), cpu_threads(cfg.engine.threads)), prefer="threads")(
        delayed(fit_head)(xs, ys, c, **fit) for xs, ys in jobs)
    oof = np.zeros((len(y), heads[0].weight.shape[0]), np.float64)
    for head, (_, te) in zip(heads[1:], parts):
        oof[te] = head.decision_function(x[te])
    t = fit_temperature(oof, y)
    return _Fit(dataclasses.replace(heads[0], temperature=t), oof, folds)


def _scores(y: np.ndarray, oof: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """The cross-validated figures of out-of-fold decision values ``oof`` against the train classes ``y``."""
    pred = oof.argmax(axis=1)
    cm = np.zeros((len(labels), len(labels)), np.int64)
    np.add.at(cm, (y, pred), 1)
    per_class = per_class_scores(cm, labels)
    return {"cv_accuracy": round(float((pred == y).mean()), 6), "cv_class_avg_accuracy": round(class_averaged_accuracy(y, pred), 6),
            "cv_per_class_recall": per_class["per_class_recall"], "cv_per_class_precision": per_class["per_class_precision"],
            "cv_per_class_support": per_class["per_class_support"], "cv_confusion_matrix": cm.tolist()}


def _draft_dir(parent: Path) -> Path:
    """A new folder name beside ``parent`` (a run directory or a draft): <time>-quick, numbered when that name is taken."""
    base = time.strftime("%Y%m%d-%H%M%S") + DRAFT_SUFFIX
    name, n = base, 2
    while (parent.parent / name).exists():
        name, n = f"{base}-{n}", n + 1
    return parent.parent / name


def quick_update(run_dir: str | os.PathLike, images_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Refit the head of iteration ``run_dir`` on the current labels of ``images_dir`` → a draft iteration at
    ``out_dir`` (default: beside ``run_dir``, see :func:`_draft_dir`); returns its summary (its metrics.json)."""
    t0 = time.perf_counter()
    parent = RunDir(Path(run_dir).resolve())
    cfg = _config(parent, images_dir)
    unfinished = read_incomplete(parent.root)
    if unfinished is not None:  # its model, split and features may not belong together
        raise RunIncomplete(f"{unfinished.describe(parent.root)}; a quick update would build on it", hint=unfinished.hint(parent.root))
    bundle_dir, meta, head = load_head(parent.model)
    features = _features(parent)
    if meta.feature_ids != features[3] or "C" not in meta.classifier:
        raise RunDirError(f"the model of {parent.root} is a {meta.kind or 'model'} on features of {meta.feature_ids}, not a "
                          "linear SVM head on its features.npz: the quick update refits that head only",
                          hint="use an iteration made with train.classifier = \"svm\" (presets fast and balanced)")
    items, unusable = _current_items(cfg, parent)
    old = parent.split_rows()
    matched = _matched(old, items)
    data = _labelled(cfg, parent, meta, items, unusable, matched, features)
    labels, too_few = _trainable(data.rows, meta.labels, max(MIN_TRAIN_PER_CLASS, cfg.svm.cv_folds))
    if len(labels) < 2:
        raise DatasetError(f"the current labels of {cfg.images_dir()} leave {len(labels)} class(es) with enough train images "
                           f"({', '.join(labels) or 'none'}); a classifier needs 2", hint="label more images, or restore corrections")
    keep = [i for i, r in enumerate(data.rows) if r.label in labels]
    rows, x = [data.rows[i] for i in keep], data.features[keep]
    train = np.array([r.split != "test" for r in rows], bool)
    y = np.array([labels.index(r.label) for r in rows])[train]
    c = float(meta.classifier["C"])
    fit = _fit_scored(x[train], y, c, cfg, head.l2_normalize)
    metrics = {"draft": True, "iteration": QUICK_UPDATE, "labels": labels, "n_train": int(train.sum()),
               "n_test_unscored": int((~train).sum()), "cv_folds": fit.folds, **_scores(y, fit.oof, labels),
               "classifier": {"type": "svm", "C": c, "temperature": round(fit.head.temperature, 6), "cv_folds": fit.folds},
               "backbone": meta.backbone, "resolution": meta.resolution,
               "parent": {"run": str(parent.root), "name": parent.root.name,
                          **(cv_figures(parent.root) if is_draft(parent.root) else _full_run_figures(meta.classifier))},
               "changes": _changes(old, items, matched, unusable).to_dict(),
               "left_out": {"classes_with_too_few_images": too_few, "unreadable": len(data.failed), "unusable_in_parent": data.unusable}}
    classifier = {**metrics["classifier"], "cv_class_avg_accuracy": {str(c): metrics["cv_class_avg_accuracy"]}}
    draft_meta = dataclasses.replace(meta, labels=labels, classifier=classifier, trust=None, training_history=None)
    target = Path(out_dir).resolve() if out_dir is not None else _draft_dir(parent.root)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-{os.getpid()}-", dir=target.parent))
    try:
        with writing(stage, QUICK_UPDATE):
            rd = RunDir(stage)
            rd.save_config(cfg)
            save_split(str(rd.split), rows)
            _features_of(parent, rd, rows, x, features[3] if data.new_features else None)
            rd.add_skipped(parent.skipped_rows() + [(p, why, "featurize") for p, why in data.failed])
            rd.write_oof_predictions([r for r, t in zip(rows, train) if t], softmax(fit.head.temperature * fit.oof), labels)
            ood = fit_ood(x[train], fit.head.temperature * fit.oof)
            metrics["wall_seconds"] = round(time.perf_counter() - t0, 3)
            derive_bundle(bundle_dir, rd.model, draft_meta, fit.head, metrics=metrics, ood=ood)
            write_json(rd.metrics, metrics)
        target = _publish(stage, target, pick_another=out_dir is None)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    log.info("quick update of %s → draft %s in %.2f s", parent.root.name, target.name, time.perf_counter() - t0)
    return {"run": str(target), "name": target.name, **metrics}


def _publish(stage: Path, target: Path, pick_another: bool) -> Path:
    """Rename the finished ``stage`` to ``target`` (a folder of that name made meanwhile, by a draft of the same
    second: the next free name when ``pick_another``, else a RunDirError); returns where it went."""
    os.chmod(stage, 0o777 & ~current_umask())  # mkdtemp makes 0700; a run directory is an ordinary folder
    while True:
        try:
            if target.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(target))
            os.rename(stage, target)
            break
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if not pick_another:
                raise RunDirError(f"{target} exists already; the draft was not written",
                                  hint="give a new folder, or leave the draft's folder to the quick update") from None
            target = _draft_dir(target)
    fsync_dir(target.parent)
    return target


def _features_of(parent: RunDir, rd: RunDir, rows: list[SplitRow], x: np.ndarray, new_id: str | None) -> None:
    """The draft's features.npz: the parent's, hard-linked, when every row's features came from it, else the rows'
    own (``new_id``: their feature id); and the parent's pool_features.npz, hard-linked (the next suggestions need
    not featurize the pool again)."""
    if new_id is not None:
        rd.write_features([r.path for r in rows], x, np.ones(len(rows), bool), new_id)
    else:
        link_or_copy(parent.features, rd.features)
    if parent.pool_features.is_file():
        link_or_copy(parent.pool_features, rd.pool_features)
