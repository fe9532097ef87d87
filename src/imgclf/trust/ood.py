"""Unknown inputs: an out-of-distribution score from the features and the classifier's logits.

``score = z(knn) + z(-maxlogit)``, where ``knn`` is the mean cosine distance of an image's
L2-normalised features to its ``neighbors`` nearest train images, ``maxlogit`` the largest
calibrated logit (``T * (W·f + b)``) of the bundle's classifier, and ``z`` standardises each by the
mean and spread of the out-of-fold scores of the train images (kNN: each image left out of its own
neighbours; logits: the SVM's cross-validated decision values). Higher = less like the training
images.

Why this score (benchmarks/trust.py; the figures are in BENCHMARKS.md): the kNN
distance alone separates other data sets' images almost perfectly but an unseen class of the same
domain worst; the max logit does better on unseen classes but is weak across data sets. Their sum
keeps the kNN's separation across data sets and beats either part on unseen classes; other sums,
other features and per-layer variants did not improve on it enough to replace it.

The threshold is a quantile of the train images' out-of-fold scores: at ``tpr`` = 0.95, 95% of
in-distribution train images are accepted, and a new image is unknown above it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..util.arrays import l2_normalize

_BLOCK = 512  # rows of a similarity matrix computed at once


def l2_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    return l2_normalize(np.asarray(x, dtype=np.float32))


def knn_distance(features: np.ndarray, train: np.ndarray, neighbors: int) -> np.ndarray:
    """(N,) mean cosine distance of every row to its ``neighbors`` nearest rows where ``train`` is True, itself excluded."""
    x = l2_rows(features)
    ref = np.flatnonzero(train)
    k = max(1, min(neighbors, len(ref) - 1))
    out = np.zeros(len(x))
    for s in range(0, len(x), _BLOCK):
        sim = x[s:s + _BLOCK] @ x[ref].T  # (block, n_train)
        rows, cols = np.nonzero(ref[None, :] == np.arange(s, s + len(sim))[:, None])
        sim[rows, cols] = -np.inf  # never its own neighbour
        top = -np.partition(-sim, k - 1, axis=1)[:, :k]
        out[s:s + len(sim)] = 1.0 - top.mean(axis=1)
    return out


def knn_to(features: np.ndarray, reference: np.ndarray, neighbors: int) -> np.ndarray:
    """(N,) mean cosine distance of every row of ``features`` to its ``neighbors`` nearest rows of
    ``reference`` (already L2-normalised)."""
    x = l2_rows(features)
    ref = np.asarray(reference, dtype=np.float32)
    k = max(1, min(neighbors, len(ref)))
    out = np.zeros(len(x))
    for s in range(0, len(x), _BLOCK):
        sim = x[s:s + _BLOCK] @ ref.T  # (block, n_ref)
        out[s:s + len(sim)] = 1.0 - (-np.partition(-sim, k - 1, axis=1)[:, :k]).mean(axis=1)
    return out


@dataclass
class OodDetector:
    """What a bundle keeps to score new images: the train features, the standardisation of both
    parts and the train images' out-of-fold scores (the threshold of any TPR is a quantile of them)."""

    reference: np.ndarray  # (M, D) L2-normalised train features
    neighbors: int
    center: np.ndarray  # (2,) mean of the out-of-fold kNN distance and -maxlogit
    scale: np.ndarray  # (2,) their standard deviations
    train_scores: np.ndarray  # (M,) out-of-fold scores of the train images, sorted

    def score(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """(N,) OOD score of images from their features (N, D) and calibrated logits (N, K)."""
        if not len(features):
            return np.zeros(0)
        parts = np.stack([knn_to(features, self.reference, self.neighbors), -np.asarray(logits, np.float64).max(axis=1)], 1)
        return ((parts - self.center) / self.scale).sum(axis=1)

    def threshold(self, tpr: float) -> float:
        """The score below which a share ``tpr`` of the train images' out-of-fold scores lies."""
        return float(np.quantile(self.train_scores, tpr, method="higher"))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"reference": self.reference.astype(np.float32), "neighbors": np.int64(self.neighbors),
                "center": self.center.astype(np.float64), "scale": self.scale.astype(np.float64),
                "train_scores": self.train_scores.astype(np.float64)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "OodDetector":
        return cls(np.asarray(a["reference"], np.float32), int(a["neighbors"]), np.asarray(a["center"], np.float64),
                   np.asarray(a["scale"], np.float64), np.asarray(a["train_scores"], np.float64))


def fit_ood(features: np.ndarray, oof_logits: np.ndarray, *, neighbors: int = 5, reference: np.ndarray | None = None) -> OodDetector:
    """The detector of train ``features`` (N, D) given their out-of-fold calibrated logits (N, K); each
    image's kNN distance leaves itself out. With ``reference`` (train features the model saw), ``features``
    are held-out images instead (a validation part of train) scored against it."""
    x = np.asarray(features, dtype=np.float32)
    if len(x) < 2 or len(oof_logits) != len(x):
        raise ValueError(f"need >= 2 train images with one logit row each; got {len(x)} features and {len(oof_logits)} rows")
    ref = l2_rows(x if reference is None else reference)
    knn = knn_distance(x, np.ones(len(x), bool), neighbors) if reference is None else knn_to(x, ref, neighbors)
    parts = np.stack([knn, -np.asarray(oof_logits, np.float64).max(axis=1)], 1)
    center = parts.mean(axis=0)
    scale = np.maximum(parts.std(axis=0), 1e-9)
    scores = np.sort(((parts - center) / scale).sum(axis=1))
    return OodDetector(ref, int(neighbors), center, scale, scores)
