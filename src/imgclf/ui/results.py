"""A run's scores for the UI: the model's test predictions, the doctor's out-of-fold train scores, metrics.json.

Two sides: ``test`` is predictions.csv (the bundle on the test split); ``train`` is the train rows
of oof_predictions.csv, the data doctor's out-of-fold probabilities (each image scored by models
that never saw its label), the only honest score of an image the model was trained on.
A draft iteration (a quick update, :mod:`imgclf.labelnext.quick`) has the train side only, from its
cross-validation: its test side is refused with the reason ``draft``, since test results exist for
full iterations only.

Result images are addressed by their row in those files, never by a path from the request, so
the results page cannot be used to read files: the paths come from the run's own artifacts.
A run keeps absolute paths; when a row's file is gone (the run was moved or shared) its image is
the dataset image it was matched to (see :meth:`Catalog.match`).
"""
from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

from ..evaluation.metrics import per_class_scores
from ..labelnext.quick import is_draft
from ..rundir.layout import RunDir
from ..util.errors import InvalidRequest, NotFound
from ..util.files import read_json
from .catalog import Catalog
from .thumbs import file_version

_METRIC_KEYS = ("accuracy", "class_avg_accuracy", "n_test", "n_train", "per_class_accuracy", "backbone", "resolution",
                "macro_auc", "draft", "cv_accuracy", "cv_class_avg_accuracy", "cv_folds", "parent")
DRAFT = "draft"  # the reason of the refusal of a draft's test side
SIDES = ("test", "train")
#: The run files the Results page shows: its name for each → the RunDir attribute that names the file.
RUN_FILES = {"roc": "roc", "confusion": "confusion", "curves": "training_curves", "report": "report"}
_MIN_P = 1e-12  # probabilities are clipped here before the log of the loss


class RunResults:
    """The scores of one run directory's images, reloaded when their files change."""

    def __init__(self, run_dir: str | os.PathLike, catalog: Catalog | None = None):
        self.rd = RunDir(Path(run_dir).resolve())
        self.catalog = catalog
        self._cache: dict[str, tuple[tuple[int, ...], list[dict[str, Any]], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _metrics_file(self) -> Path:
        if is_draft(self.rd.root):
            m = read_json(self.rd.metrics)
            raise NotFound(f"{self.rd.root.name} is a draft iteration (a quick update), scored by cross-validation on its "
                           f"{m.get('n_train')} train images only: accuracy {_pct(m.get('cv_accuracy'))}, class-averaged "
                           f"{_pct(m.get('cv_class_avg_accuracy'))}. Test results exist only for full iterations: train one "
                           "(`imgclf run`) to measure it on the test split; its train images are under Train images",
                           reason=DRAFT)
        for p in (self.rd.predictions, self.rd.metrics):
            if not p.exists():
                raise NotFound(f"{p} is missing: the run has not been evaluated; "
                               f"run `imgclf evaluate --run-dir {self.rd.root}`")
        return self.rd.metrics

    def _load(self, side: str = "test") -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if side not in SIDES:
            raise InvalidRequest(f"split must be one of {', '.join(SIDES)}; got {side!r}")
        if side == "train":
            if not is_draft(self.rd.root):
                self._metrics_file()  # a full run's train side, like its test side, once it was evaluated
            if not self.rd.oof_predictions.exists():
                raise NotFound(f"the run {self.rd.root} has no scores of its train images ({self.rd.oof_predictions.name}): "
                               f"run `imgclf doctor --run-dir {self.rd.root}` to compute them", reason="no_train_scores")
            files = [self.rd.metrics, self.rd.oof_predictions]
        else:
            files = [self._metrics_file(), self.rd.predictions]
        stamp = tuple(p.stat().st_mtime_ns for p in files)
        with self._lock:
            cached = self._cache.get(side)
            if cached is None or cached[0] != stamp:
                metrics = read_json(self.rd.metrics)
                if side == "test":
                    rows = self.rd.read_predictions(list(metrics["labels"]))
                else:
                    _, rows = self.rd.read_oof_predictions()
                    rows = [r for r in rows if r.get("split") in ("train", "val")]
                rows = [{"i": i, **r} for i, r in enumerate(rows)]
                cached = self._cache[side] = (stamp, rows, metrics)
            return cached[1], cached[2]

    def image_path(self, index: int, side: str = "test") -> str:
        """The image file of row ``index``; NotFound when there is no such row."""
        rows, _ = self._load(side)
        if not 0 <= index < len(rows):
            raise NotFound(f"no result {index}: the run has {len(rows)} {side} results (0 to {len(rows) - 1})")
        path = rows[index]["path"]
        if not os.path.exists(path) and self.catalog is not None:  # the run was moved: its dataset image, if found
            rel = self.catalog.match([(path, rows[index]["rel"])])[0]
            if rel is not None:
                return self.catalog.entries()[rel].path
        return path

    def label_of(self, index: int) -> str:
        """The true label of result row ``index`` (call :meth:`image_path` first: it checks the index)."""
        return self._load("test")[0][index]["label"]

    def payload(self, side: str = "test") -> dict[str, Any]:
        """Everything the results page shows; each item says whether and how it can be relabelled."""
        rows, metrics = self._load(side)
        catalog = self.catalog
        rels = catalog.match([(r["path"], r["rel"]) for r in rows]) if catalog is not None else [None] * len(rows)
        views = catalog.views([rel for rel in rels if rel]) if catalog is not None else {}
        items = [{**{k: v for k, v in r.items() if k not in ("path", "split")}, "name": Path(r["path"]).name,
                  "v": file_version(r["path"]), "correct": r["label"] == r["predicted"],
                  "loss": round(-math.log(max(r["scores"].get(r["label"], 0.0), _MIN_P)), 6),
                  "dataset_path": rel, "dataset": views.get(rel)}
                 for r, rel in zip(rows, rels)]
        labels = list(metrics["labels"])
        if side == "test":
            cm = metrics["confusion_matrix"]
            per_class = {k: metrics[k] for k in ("per_class_precision", "per_class_recall", "per_class_f1", "per_class_support")
                         if k in metrics}
            if len(per_class) < 4:  # a run evaluated before these were kept: the same figures from its confusion matrix
                per_class = per_class_scores(cm, labels)
            per_class["roc_auc"] = metrics.get("roc_auc", {})
        else:  # the out-of-fold scores' own figures (no AUC: the doctor keeps no curves)
            cm = [[0] * len(labels) for _ in labels]
            for r in rows:
                if r["label"] in labels and r["predicted"] in labels:
                    cm[labels.index(r["label"])][labels.index(r["predicted"])] += 1
            per_class = {**per_class_scores(cm, labels), "roc_auc": {}}
        return {"run": str(self.rd.root), "name": self.rd.root.name, "split": side, "labels": labels,
                "confusion_matrix": cm, "per_class": per_class,
                "metrics": {k: metrics[k] for k in _METRIC_KEYS if k in metrics}, "items": items,
                "files": {name: getattr(self.rd, attr).exists() for name, attr in RUN_FILES.items()},
                "train_scores": self.rd.oof_predictions.exists()}

    def file(self, name: str) -> Path:
        """report.html or one of the plots of the run (by its name in :data:`RUN_FILES`); NotFound when missing."""
        if name not in RUN_FILES:
            raise NotFound(f"no run file {name!r}; one of {', '.join(RUN_FILES)}")
        path = getattr(self.rd, RUN_FILES[name])
        if not path.exists():
            raise NotFound(f"{path} is missing: run `imgclf evaluate --run-dir {self.rd.root}`")
        return path


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "unknown"
