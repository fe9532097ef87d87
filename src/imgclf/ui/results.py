"""A run's test results for the UI: predictions.csv with per-class scores, and metrics.json.

Result images are addressed by their row in predictions.csv, never by a path from the request,
so the results page cannot be used to read files: the paths come from the run's own artifact.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ..errors import NotFound
from ..fileio import read_json
from ..pipeline.rundir import RunDir
from .catalog import Catalog
from .thumbs import file_version

_METRIC_KEYS = ("accuracy", "class_avg_accuracy", "n_test", "n_train", "per_class_accuracy", "backbone", "resolution")


class RunResults:
    """The test predictions of one run directory, reloaded when predictions.csv changes."""

    def __init__(self, run_dir: str | os.PathLike):
        self.rd = RunDir(Path(run_dir).resolve())
        self._rows: list[dict[str, Any]] = []
        self._metrics: dict[str, Any] = {}
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        for p, step in ((self.rd.predictions, "evaluate"), (self.rd.metrics, "evaluate")):
            if not p.exists():
                raise NotFound(f"{p} is missing: the run has not been evaluated; "
                               f"run `imgclf {step} --run-dir {self.rd.root}`")
        stamp = (self.rd.predictions.stat().st_mtime_ns, self.rd.metrics.stat().st_mtime_ns)
        with self._lock:
            if stamp != self._stamp:
                metrics = read_json(self.rd.metrics)
                labels = list(metrics["labels"])
                rows = [{"i": i, **r} for i, r in enumerate(self.rd.read_predictions(labels))]
                self._rows, self._metrics, self._stamp = rows, metrics, stamp
            return self._rows, self._metrics

    def image_path(self, index: int) -> str:
        """The image file of result row ``index``; NotFound when there is no such row."""
        rows, _ = self._load()
        if not 0 <= index < len(rows):
            raise NotFound(f"no result {index}: the run has {len(rows)} test results (0 to {len(rows) - 1})")
        return rows[index]["path"]

    def label_of(self, index: int) -> str:
        """The true label of result row ``index`` (call :meth:`image_path` first: it checks the index)."""
        return self._load()[0][index]["label"]

    def payload(self, catalog: Catalog | None) -> dict[str, Any]:
        """Everything the results page shows; each item says whether and how it can be relabelled."""
        rows, metrics = self._load()
        rels = [catalog.rel_of(r["path"]) if catalog is not None else None for r in rows]
        views = catalog.views([rel for rel in rels if rel]) if catalog is not None else {}
        items = [{**{k: v for k, v in r.items() if k != "path"}, "name": Path(r["path"]).name, "v": file_version(r["path"]),
                  "correct": r["label"] == r["predicted"], "dataset_path": rel, "dataset": views.get(rel)}
                 for r, rel in zip(rows, rels)]
        return {"run": str(self.rd.root), "name": self.rd.root.name, "labels": list(metrics["labels"]),
                "confusion_matrix": metrics["confusion_matrix"],
                "metrics": {k: metrics[k] for k in _METRIC_KEYS if k in metrics}, "items": items}
