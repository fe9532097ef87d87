"""Calibration: how far scores are from frequencies (ECE, NLL, Brier), and the one-temperature fix.

Temperature scaling (Guo et al., ICML 2017) divides nothing and adds nothing: ``softmax(T * z)``
with one scalar ``T`` fit by minimising the log-loss of held-out logits ``z``. One positive scalar
keeps the argmax, so calibrating never changes a prediction. Every function takes arrays:
``proba`` (N, K) rows summing to 1, ``y`` (N,) class indices.
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-12


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits (N, K), computed without overflow."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature ``T`` minimising the log-loss of ``softmax(T * logits)`` (1-D bounded search).

    The search runs on the logits divided by their standard deviation, so that its bounds (10^-2..10^3
    of that spread) hold whatever the scale: a linear SVM whose CV picks C = 1e-4 has decision values of
    ~0.004, and a search over T itself stopped at its upper bound there (T = 991 for a wanted 1,000+)."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    if not len(y):
        return 1.0
    spread = float(z.std()) or 1.0
    z = z / spread

    def loss(log_t: float) -> float:
        return nll(softmax(np.exp(log_t) * z), y)

    res = minimize_scalar(loss, bounds=(np.log(1e-2), np.log(1e3)), method="bounded")
    return float(np.exp(res.x)) / spread


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    p = np.asarray(proba, dtype=np.float64)[np.arange(len(y)), np.asarray(y, dtype=int)]
    return float(-np.mean(np.log(np.clip(p, _EPS, None))))


def brier(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean squared distance between the probability row and the one-hot truth (summed over classes)."""
    p = np.asarray(proba, dtype=np.float64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), np.asarray(y, dtype=int)] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def reliability(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """Per confidence bin (equal width on [0, 1]): mean confidence, accuracy and image count (empty bins left out)."""
    p = np.asarray(proba, dtype=np.float64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(y, dtype=int)).astype(float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    out: dict[str, list[float]] = {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        m = which == b
        if m.any():
            out["confidence"].append(round(float(conf[m].mean()), 5))
            out["accuracy"].append(round(float(correct[m].mean()), 5))
            out["count"].append(int(m.sum()))
    return out


def ece(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over confidence bins."""
    r = reliability(proba, y, bins)
    n = sum(r["count"])
    if not n:
        return 0.0
    return float(sum(c * abs(a - f) for c, a, f in zip(r["count"], r["accuracy"], r["confidence"])) / n)


def calibration_metrics(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``{"ece", "nll", "brier"}`` of probabilities against the true classes."""
    return {"ece": round(ece(proba, y), 6), "nll": round(nll(proba, y), 6), "brier": round(brier(proba, y), 6)}


def coverage_curve(proba: np.ndarray, y: np.ndarray, points: int = 21) -> dict[str, list[float]]:
    """Selective prediction: answering only when the top score reaches a threshold, the share of images
    answered (coverage) and the accuracy on them, for ``points`` thresholds spread over the confidences seen."""
    p = np.asarray(proba, dtype=np.float64)
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == np.asarray(y, dtype=int)
    thresholds = np.unique(np.quantile(conf, np.linspace(0.0, 1.0, points), method="lower")) if len(conf) else np.zeros(0)
    out: dict[str, list[float]] = {"threshold": [], "coverage": [], "accuracy": []}
    for t in thresholds:
        m = conf >= t
        out["threshold"].append(round(float(t), 5))
        out["coverage"].append(round(float(m.mean()), 5))
        out["accuracy"].append(round(float(correct[m].mean()), 5))
    return out
