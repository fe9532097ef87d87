"""The linear head every bundle's classifier reduces to, and the one-C fit of the quick update.

Probabilities are calibrated by temperature scaling: ``p = softmax(T * d)`` over the one-vs-rest
decision values ``d``, with the single temperature ``T`` fit by minimising log-loss on
out-of-fold decision values of the train split (:class:`imgclf.classifier.svm.SvmClassifier`). One
scalar keeps argmax(p) == predict, and a held-out fit keeps the scores honest (an SVM's in-sample
margins are overconfident).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..trust.calibration import softmax
from ..util.arrays import l2_normalize


@dataclass
class LinearHead:
    """What every classifier in a bundle reduces to: ``softmax(T * (W·f + b))``.

    ``weight`` (K, D), ``bias`` (K,), ``temperature`` T, and whether features are
    L2-normalised first. Saved as plain arrays, loaded without pickle.
    """

    weight: np.ndarray
    bias: np.ndarray
    temperature: float = 1.0
    l2_normalize: bool = True

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float32)
        if self.l2_normalize:
            x = l2_normalize(x)
        return x @ self.weight.T + self.bias  # (N, K)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.temperature * self.decision_function(features).astype(np.float64))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.decision_function(features).argmax(axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "weight": self.weight.astype(np.float32),
            "bias": self.bias.astype(np.float32),
            "temperature": np.float64(self.temperature),
            "l2_normalize": np.bool_(self.l2_normalize),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "LinearHead":
        return cls(a["weight"].astype(np.float32), a["bias"].astype(np.float32), float(a["temperature"]), bool(a["l2_normalize"]))


def head_rows(svc: Any) -> tuple[np.ndarray, np.ndarray]:
    """(weight (K, D), bias (K,)) of a fitted LinearSVC; sklearn's one binary row made symmetric two-class."""
    w, b = svc.coef_, svc.intercept_
    if len(svc.classes_) == 2:
        w, b = np.vstack([-w[0], w[0]]), np.array([-b[0], b[0]])
    return w, b


def fit_head(features: np.ndarray, y: np.ndarray, c: float, *, temperature: float = 1.0, normalize: bool = True,
             class_weight: str | None = "balanced", max_iter: int = 10000, seed: int = 0) -> LinearHead:
    """One LinearSVC at a given ``C`` and ``temperature`` (no cross-validation) → LinearHead over classes 0..K-1.

    The quick update's fit (:mod:`imgclf.labelnext.quick`): a run chose C and T by CV (dozens of fits); one fit of the dual problem
    costs a small share of that. Every class 0..max(y) must have an image.
    """
    from sklearn.svm import LinearSVC

    x = np.asarray(features, dtype=np.float64)
    if normalize:
        x = l2_normalize(x)
    y = np.asarray(y)
    if len(np.unique(y)) != int(y.max()) + 1:
        raise ValueError(f"every class 0..{int(y.max())} needs an image; got classes {sorted(set(y.tolist()))}")
    cw = None if class_weight in (None, "none") else class_weight
    svc = LinearSVC(C=c, class_weight=cw, max_iter=max_iter, random_state=seed, dual=True).fit(x, y)
    w, b = head_rows(svc)
    return LinearHead(w.astype(np.float32), b.astype(np.float32), float(temperature), normalize)
