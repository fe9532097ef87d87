"""Suspected label errors by confident learning (Northcutt, Jiang & Chuang, JAIR 2021) on cached features.

1. Out-of-fold probabilities: features are L2-normalised and projected on their first principal
   components (unsupervised, all images), then every image is scored by a multinomial logistic
   regression trained on the other folds only — never by a model that saw its own label. Several
   fold partitions are averaged.
2. Confident learning: the per-class threshold ``t_j`` is the mean probability of class j over the
   images labelled j; the confident joint counts each image under (given label, the most probable
   class whose probability reaches its threshold); calibrated so each row sums to that label's count,
   its off-diagonal sum estimates the number of label errors.
3. Rounds: the images flagged in one round are left out of the next round's training folds (they
   are still scored), so flipped labels stop pulling the models towards themselves.

Issues are ranked by self-confidence, the out-of-fold probability of the given label, and the cut-off
flags as many of the lowest-ranked images as the confident joint estimates errors (the paper's count,
applied to the whole ranking): on planted label flips, this ranking and cut-off found more of them,
and more precisely, than the normalised margin and the paper's per-cell pruning (BENCHMARKS.md).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..util.arrays import l2_normalize


@dataclass
class LabelIssues:
    """What confident learning found; arrays are per image (N,) or per class pair (K, K)."""

    proba: np.ndarray  # (N, K) out-of-fold probabilities of the last round
    thresholds: np.ndarray  # (K,) per-class thresholds t_j
    joint: np.ndarray  # (K, K) calibrated confident joint: rows given label, columns estimated true label
    flagged: np.ndarray  # (N,) bool: suspected label error
    suggested: np.ndarray  # (N,) int: the most probable class other than the given one
    self_confidence: np.ndarray  # (N,) out-of-fold probability of the given label: low is suspicious

    @property
    def estimated_errors(self) -> float:
        """Label errors estimated by the calibrated confident joint (its off-diagonal sum)."""
        return float(self.joint.sum() - np.trace(self.joint))


def reduce_features(features: np.ndarray, components: int) -> np.ndarray:
    """L2-normalised features projected on their first ``components`` principal axes, re-normalised (N, r)."""
    from scipy.linalg import eigh

    x = np.asarray(features, dtype=np.float64)
    x = l2_normalize(x)
    x = x - x.mean(axis=0)
    n, d = x.shape
    r = max(1, min(components, n - 1, d))
    if n <= d:  # principal axes from the smaller of the two Gram matrices: (N, N) here
        w, u = eigh(x @ x.T, subset_by_index=[n - r, n - 1])
        z = u * np.sqrt(np.maximum(w, 0.0))  # = x @ axes, the axes being x.T @ u / sqrt(w)
    else:
        _, v = eigh(x.T @ x, subset_by_index=[d - r, d - 1])
        z = x @ v
    return l2_normalize(z)


def out_of_fold_proba(z: np.ndarray, y: np.ndarray, k: int, *, folds: int, c: float, seed: int,
                      partitions: int = 1, train_mask: np.ndarray | None = None) -> np.ndarray:
    """(N, K) probabilities of every image from logistic regressions fit on the other folds only.

    ``train_mask`` leaves images out of the training folds (they are still scored); the result is
    the mean over ``partitions`` different stratified fold partitions.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    n = len(y)
    use = np.ones(n, bool) if train_mask is None else np.asarray(train_mask, bool)
    folds = max(2, min(folds, int(np.bincount(y, minlength=k)[np.bincount(y, minlength=k) > 0].min())))
    out = np.zeros((n, k))
    for part in range(partitions):
        split = StratifiedKFold(folds, shuffle=True, random_state=seed + 7919 * part).split(z, y)
        for train, test in split:
            train = train[use[train]]
            if len(np.unique(y[train])) < 2:
                out[test] += 1.0 / k
                continue
            # a fresh model per fold: starting from another fold's weights would carry the test images' labels in
            clf = LogisticRegression(C=c, max_iter=1000, tol=1e-3)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(z[train], y[train])
            p = np.zeros((len(test), k))
            p[:, clf.classes_] = clf.predict_proba(z[test])
            out[test] += p
    return out / partitions


def confident_joint(proba: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds (K,), the column each image is counted in or -1 (N,), calibrated joint (K, K))."""
    counts = np.bincount(y, minlength=k)
    thresholds = np.array([proba[y == j, j].mean() if counts[j] else 1.0 for j in range(k)])
    above = proba >= thresholds - 1e-12
    column = np.where(above.any(axis=1), np.where(above, proba, -1.0).argmax(axis=1), -1)
    raw = np.zeros((k, k))
    np.add.at(raw, (y[column >= 0], column[column >= 0]), 1.0)
    rows = raw.sum(axis=1, keepdims=True)
    joint = np.divide(raw, rows, out=np.zeros_like(raw), where=rows > 0) * counts[:, None]
    return thresholds, column, joint


def find_label_issues(features: np.ndarray, y: np.ndarray, k: int, *, folds: int = 5, c: float = 10.0,
                      components: int = 128, partitions: int = 2, rounds: int = 2, seed: int = 0) -> LabelIssues:
    """Confident learning on ``features`` (N, D) with given class indices ``y`` (N,) of ``k`` classes."""
    y = np.asarray(y, dtype=int)
    if len(y) != len(features):
        raise ValueError(f"features has {len(features)} rows but {len(y)} labels were given")
    z = reduce_features(features, components)
    train_mask = np.ones(len(y), bool)
    for _ in range(max(1, rounds)):
        proba = out_of_fold_proba(z, y, k, folds=folds, c=c, seed=seed, partitions=partitions, train_mask=train_mask)
        thresholds, column, joint = confident_joint(proba, y, k)
        self_confidence = proba[np.arange(len(y)), y]
        flagged = least_confident(self_confidence, joint.sum() - np.trace(joint))
        train_mask = _keep_most_of_each_class(~flagged, proba, y, k)
    others = proba.copy()
    others[np.arange(len(y)), y] = -1.0
    return LabelIssues(proba, thresholds, joint, flagged, others.argmax(axis=1), self_confidence)


def least_confident(self_confidence: np.ndarray, estimated_errors: float) -> np.ndarray:
    """(N,) bool: the ``round(estimated_errors)`` images of lowest self-confidence (ties by index)."""
    flagged = np.zeros(len(self_confidence), bool)
    flagged[np.argsort(self_confidence, kind="stable")[: int(round(estimated_errors))]] = True
    return flagged


def _keep_most_of_each_class(keep: np.ndarray, proba: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """``keep``, except that every class keeps at least half its images (its most confident ones) for training."""
    keep = keep.copy()
    for j in range(k):
        members = np.flatnonzero(y == j)
        need = (len(members) + 1) // 2 - int(keep[members].sum())
        if need > 0:
            dropped = members[~keep[members]]
            keep[dropped[np.argsort(-proba[dropped, j], kind="stable")[:need]]] = True
    return keep
