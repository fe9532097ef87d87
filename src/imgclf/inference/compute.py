"""What a loaded bundle computes, in the pieces a server batches: one image decoded (:meth:`Compute.prepare`,
on a decode thread), a batch of prepared images to rows of K probabilities and the OOD score
(:meth:`Compute.rows`, the micro-batcher's function), and the answer of one row (:meth:`Compute.answer`:
label, ``"unknown"``, ``"uncertain"``). :class:`imgclf.inference.predict.Predictor` and the service, the web
UI and the notebook API all answer through it, so they answer alike."""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..bundle.folder import Bundle
from ..config.settings import PredictConfig
from ..features.featurize import concat_features
from ..features.preprocess import load_and_crop


class Compute:
    """The bundle's engines, linear head and unknown-image detector, with the answer rules of ``predict_cfg``."""

    def __init__(self, bundle: Bundle, engines: list[Any], predict_cfg: PredictConfig):
        self.bundle, self.engines, self.predict_cfg = bundle, engines, predict_cfg
        self.labels = bundle.labels
        self.detector = bundle.ood()
        self.unknown_threshold = self.detector.threshold(predict_cfg.unknown_tpr) if self.detector is not None else None

    def prepare(self, source: bytes | str | os.PathLike, *, max_pixels: int | None = None) -> Any:
        """Decode (safely) one image → its crop (H, W, 3) uint8, what every engine takes (exactly as featurize
        reads it), or for a feature ensemble a tuple of one crop per featurizer; raises ImageError.
        ``max_pixels``: the decoder's pixel limit (default ``images.max_pixels``)."""
        if len(self.engines) == 1:
            return load_and_crop(source, self.engines[0].spec, max_pixels=max_pixels)
        return tuple(load_and_crop(source, e.spec, max_pixels=max_pixels) for e in self.engines)

    def features(self, inputs: Sequence[Any]) -> np.ndarray:
        """Features (N, D) of inputs from :meth:`prepare`, one call per engine."""
        if len(self.engines) == 1:
            return self.engines[0].run(np.stack(inputs))
        return concat_features([e.run(np.stack([x[i] for x in inputs])) for i, e in enumerate(self.engines)])

    def proba(self, features: np.ndarray) -> np.ndarray:
        return self.bundle.head.predict_proba(features)

    def ood(self, features: np.ndarray) -> np.ndarray:
        """(N,) OOD score of each image (NaN for a bundle without a detector)."""
        if self.detector is None:
            return np.full(len(features), np.nan)
        head = self.bundle.head
        return self.detector.score(features, head.temperature * head.decision_function(features))

    def rows_of(self, features: np.ndarray) -> np.ndarray:
        """(N, K + 1): the K probabilities of each image, then its OOD score (see :meth:`split`)."""
        return np.column_stack([self.proba(features), self.ood(features)])

    def rows(self, inputs: Sequence[Any]) -> np.ndarray:
        """Probabilities and OOD score (N, K + 1) of inputs from :meth:`prepare`."""
        if not len(inputs):
            return np.zeros((0, len(self.labels) + 1))
        return self.rows_of(self.features(inputs))

    def split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, K), OOD scores (N,)) of :meth:`rows` output."""
        rows = np.asarray(rows)
        return rows[:, : len(self.labels)], rows[:, len(self.labels)]

    def answer(self, proba_row: np.ndarray, ood_score: float | None = None, **extra: Any) -> dict[str, Any]:
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

    def answer_row(self, row: np.ndarray, **extra: Any) -> dict[str, Any]:
        """:meth:`answer` of one row of :meth:`rows` output."""
        proba, ood = self.split(np.asarray(row)[None])
        return self.answer(proba[0], float(ood[0]), **extra)
