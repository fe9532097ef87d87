"""Load a model bundle once and classify images: files, bytes or decoded images.

The same :class:`Predictor` serves ``imgclf predict``, the REST service and the web UI.

Trust is a post-step on (features, probabilities): the bundle's unknown-image detector scores the
features (``ood_score``, higher = less like the training images) and :meth:`Predictor.result` answers
``"unknown"`` above the threshold that accepts ``predict.unknown_tpr`` of the train images
(``predict.reject_unknown``), or ``"uncertain"`` when the top calibrated score is below
``predict.min_confidence``; ``nearest_label`` then keeps the best known class. A bundle without a
detector answers as before.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..bundle.folder import Bundle, load_bundle
from ..config.settings import EngineConfig, PredictConfig
from ..data.dataset import walk_images
from ..data.images import is_image_file
from ..features.featurize import concat_features, featurize_many
from ..features.preprocess import load_and_crop
from ..rundir.state import bundle_run_incomplete
from ..util.errors import ImageError
from .explain import Explainer, Explanation


class Predictor:
    """A verified bundle plus its inference engine, loaded once."""

    def __init__(self, bundle_dir: str | os.PathLike, engine_cfg: EngineConfig | None = None,
                 predict_cfg: PredictConfig | None = None, **engine_kw: Any):
        self.bundle: Bundle = load_bundle(bundle_dir)
        self.bundle_dir = Path(bundle_dir)
        self.engine_cfg = engine_cfg or EngineConfig(**self.bundle.meta.engine)
        self.engines = self.bundle.build_engines(self.engine_cfg, **engine_kw)  # several for a feature ensemble
        self.engine = self.engines[0]
        self.labels = self.bundle.labels
        self.spec = self.bundle.spec
        self.predict_cfg = predict_cfg or PredictConfig()
        self.ood = self.bundle.ood()
        self.unknown_threshold = self.ood.threshold(self.predict_cfg.unknown_tpr) if self.ood is not None else None
        self.explainer = Explainer(self.engine, self.bundle.head, self.labels, self.spec)

    @property
    def run_incomplete(self) -> dict[str, Any] | None:
        """When the bundle is the model/ of a run that is incomplete, what is wrong and how to fix it (read anew
        on each call, see :mod:`imgclf.rundir.state`); else None."""
        return bundle_run_incomplete(self.bundle_dir)

    def explain(self, source: bytes | str | os.PathLike, classes: Sequence[str] = ()) -> Explanation:
        """Class activation maps of one image for its top class and ``classes`` (see :mod:`imgclf.inference.explain`),
        with predict's answer for it (``"unknown"`` where predict says so)."""
        e = self.explainer.explain(source, classes)
        e.prediction = self.result(e.proba, float(self.ood_from_features(e.features[None])[0]))
        return e

    def proba_from_features(self, features: np.ndarray) -> np.ndarray:
        return self.bundle.head.predict_proba(features)

    def ood_from_features(self, features: np.ndarray) -> np.ndarray:
        """(N,) OOD score of each image (NaN for a bundle without a detector)."""
        if self.ood is None:
            return np.full(len(features), np.nan)
        head = self.bundle.head
        return self.ood.score(features, head.temperature * head.decision_function(features))

    def rows_from_features(self, features: np.ndarray) -> np.ndarray:
        """(N, K + 1): the K probabilities of each image, then its OOD score (see :meth:`split_rows`)."""
        return np.column_stack([self.proba_from_features(features), self.ood_from_features(features)])

    def split_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, K), OOD scores (N,)) of :meth:`predict_rows` output."""
        rows = np.asarray(rows)
        return rows[:, : len(self.labels)], rows[:, len(self.labels)]

    def prepare(self, source: bytes | str | os.PathLike) -> Any:
        """Decode (safely) one image → its crop (H, W, 3) uint8, what every engine takes (exactly as
        featurize reads it), or for a feature ensemble a tuple of one crop per featurizer; raises ImageError."""
        if len(self.engines) == 1:
            return load_and_crop(source, self.spec)
        return tuple(load_and_crop(source, e.spec) for e in self.engines)

    def features_of(self, inputs: Sequence[Any]) -> np.ndarray:
        """Features (N, D) of inputs from :meth:`prepare`, one call per engine."""
        if len(self.engines) == 1:
            return self.engine.run(np.stack(inputs))
        return concat_features([e.run(np.stack([x[i] for x in inputs])) for i, e in enumerate(self.engines)])

    def predict_rows(self, inputs: Sequence[Any]) -> np.ndarray:
        """Probabilities and OOD score (N, K + 1) of inputs from :meth:`prepare`."""
        if not len(inputs):
            return np.zeros((0, len(self.labels) + 1))
        return self.rows_from_features(self.features_of(inputs))

    def result(self, proba_row: np.ndarray, ood_score: float | None = None, **extra: Any) -> dict[str, Any]:
        """The JSON shape of one prediction: label, score and every class's score; with a detector also
        ``ood_score``, ``unknown`` and ``nearest_label`` (the best known class, whatever the label says)."""
        i = int(np.argmax(proba_row))
        out = {**extra, "label": self.labels[i], "score": round(float(proba_row[i]), 6),
               "scores": {n: round(float(p), 6) for n, p in zip(self.labels, proba_row)}}
        cfg = self.predict_cfg
        unknown = False
        if ood_score is not None and np.isfinite(ood_score) and self.unknown_threshold is not None:
            unknown = bool(ood_score > self.unknown_threshold)
            out.update(ood_score=round(float(ood_score), 6), unknown=unknown, nearest_label=self.labels[i])
        if unknown and cfg.reject_unknown:
            out["label"] = "unknown"
        elif float(proba_row[i]) < cfg.min_confidence:
            out.update(label="uncertain", nearest_label=self.labels[i])
        return out

    def result_row(self, row: np.ndarray, **extra: Any) -> dict[str, Any]:
        """:meth:`result` of one row of :meth:`predict_rows` output."""
        proba, ood = self.split_rows(np.asarray(row)[None])
        return self.result(proba[0], float(ood[0]), **extra)

    def predict_bytes(self, items: Sequence[bytes]) -> list[dict[str, Any] | ImageError]:
        """One result (or the ImageError) per image; bad images don't spoil the batch."""
        t0 = time.perf_counter()
        prepared: list[np.ndarray | ImageError] = []
        for data in items:
            try:
                prepared.append(self.prepare(data))
            except ImageError as e:
                prepared.append(e)
        good = [x for x in prepared if not isinstance(x, ImageError)]
        rows = iter(self.predict_rows(good))
        ms = round((time.perf_counter() - t0) * 1000, 3)
        return [x if isinstance(x, ImageError) else self.result_row(next(rows), executionTimeMs=ms) for x in prepared]

    def predict_paths(self, paths: Iterable[str | os.PathLike], batch_size: int = 32, progress: bool = False) -> list[dict[str, Any]]:
        """One dict per path: ``{"path", "label", "score", "scores"}`` or ``{"path", "error"}``."""
        paths = [str(p) for p in paths]
        res = featurize_many(paths, self.engines, batch_size=batch_size, progress=progress, desc="predict")
        rows = self.rows_from_features(res.features)
        errors = dict(res.errors)
        return [self.result_row(rows[i], path=p) if res.ok[i] else {"path": p, "error": errors.get(p, "unreadable")}
                for i, p in enumerate(paths)]


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Files as given, folders expanded to the images inside (sorted, recursive)."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(str(f) for f in walk_images(p))
        elif p.exists() or is_image_file(p):
            out.append(str(p))
        else:
            out.append(str(p))  # reported as unreadable by predict_paths
    return out
