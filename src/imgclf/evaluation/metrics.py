"""Honest evaluation on the test split: accuracies, ROC/AUC, confusion matrix, as plain numbers.

:func:`compute_metrics` gives the test figures of class indices against probabilities;
:class:`Metrics` is what metrics.json holds: those figures plus what the run was (classifier,
backbone, sizes) and optional sections (training history, int8 vs fp32, timings).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..util.arrays import class_averaged_accuracy


@dataclass
class Metrics:
    """metrics.json: the same keys as ever; optional ones are left out when unset."""

    accuracy: float | None
    class_avg_accuracy: float | None
    per_class_accuracy: dict[str, float | None]
    roc_auc: dict[str, float | None]
    macro_auc: float | None
    confusion_matrix: list[list[int]]
    labels: list[str]
    n_test: int
    roc_curves: dict[str, dict[str, list[float]]]
    # per class (see per_class_scores); None in metrics.json files written before they were kept
    per_class_precision: dict[str, float | None] | None = None
    per_class_recall: dict[str, float | None] | None = None
    per_class_f1: dict[str, float | None] | None = None
    per_class_support: dict[str, int] | None = None
    # what the run was (set by the evaluate step)
    n_train: int | None = None
    n_skipped: int | None = None
    leakage_pairs: int | None = None
    classifier: dict[str, Any] | None = None
    backbone: str | None = None
    resolution: int | None = None
    training_history: list[dict[str, Any]] | None = None
    int8: dict[str, Any] = field(default_factory=dict)  # int8 bundles: see imgclf.evaluation.int8 (flattened into the JSON)
    estimated_label_error_rate: float | None = None  # the data doctor: label errors estimated by confident learning / images
    dataset_health: dict[str, Any] | None = None  # the data doctor's summary (see imgclf.doctor.examine)
    calibration: dict[str, Any] | None = None  # {"before": {ece, nll, brier} at T = 1, "after": the bundle's, "temperature", "reliability"}
    coverage: dict[str, list[float]] | None = None  # answering only above a confidence: threshold, coverage, accuracy
    unknown: dict[str, Any] | None = None  # the unknown-image threshold on the test images: share accepted, accuracy on them
    preset: dict[str, Any] | None = None  # train.preset ("name") and, for balanced, the candidates and the winner
    wall_seconds: float | None = None  # `imgclf run`: the whole run
    steps: dict[str, Any] | None = None  # `imgclf run`: each step's summary

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "int8":
                out.update(v)
            elif v is not None or f.default is dataclasses.MISSING:
                out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Metrics":
        names = {f.name for f in dataclasses.fields(cls)} - {"int8"}
        return cls(**{k: v for k, v in d.items() if k in names}, int8={k: v for k, v in d.items() if k not in names})

    def summary(self) -> dict[str, Any]:
        """metrics.json without the ROC curves (what the bundle keeps)."""
        return {k: v for k, v in self.to_dict().items() if k != "roc_curves"}


def trust_metrics(m: Metrics, y_true: np.ndarray, logits: np.ndarray, temperature: float,
                  ood: np.ndarray | None = None, threshold: float | None = None) -> None:
    """Set ``m``'s calibration (ECE / NLL / Brier of ``softmax(logits)`` before and ``softmax(T * logits)``
    after, reliability bins of both), coverage curve and, given OOD scores and their threshold, the
    share of test images the threshold accepts and the accuracy on them."""
    from ..trust.calibration import calibration_metrics, coverage_curve, reliability, softmax

    z = np.asarray(logits, dtype=np.float64)
    before, after = softmax(z), softmax(temperature * z)
    m.calibration = {"before": calibration_metrics(before, y_true), "after": calibration_metrics(after, y_true),
                     "temperature": round(float(temperature), 6),
                     "reliability": {"before": reliability(before, y_true), "after": reliability(after, y_true)}}
    m.coverage = coverage_curve(after, y_true)
    if ood is not None and threshold is not None and len(ood) and np.isfinite(ood).all():
        ok = ood <= threshold
        correct = after.argmax(axis=1) == y_true
        m.unknown = {"threshold": round(float(threshold), 6), "accepted": round(float(ok.mean()), 6),
                     "accuracy_all": round(float(correct.mean()), 6),
                     "accuracy_answered": round(float(correct[ok].mean()), 6) if ok.any() else None}


def per_class_scores(confusion: Sequence[Sequence[int]], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and support of each class from a confusion matrix (rows true, columns predicted).

    A figure without a denominator (no image of the class, or none predicted as it) is None, not 0:
    metrics.json then says "undefined" instead of a misleading zero."""
    cm = np.asarray(confusion, dtype=np.int64).reshape(len(labels), len(labels))
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    out: dict[str, dict[str, Any]] = {"per_class_precision": {}, "per_class_recall": {}, "per_class_f1": {}, "per_class_support": {}}
    for i, name in enumerate(labels):
        p = float(tp[i] / predicted[i]) if predicted[i] else None
        r = float(tp[i] / support[i]) if support[i] else None
        f1 = (2 * p * r / (p + r) if p + r else 0.0) if p is not None and r is not None else None
        out["per_class_precision"][name], out["per_class_recall"][name], out["per_class_f1"][name] = p, r, f1
        out["per_class_support"][name] = int(support[i])
    return out


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, labels: Sequence[str]) -> Metrics:
    """Metrics of class-index ``y_true`` against probabilities ``proba`` (N, K)."""
    from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

    labels = list(labels)
    k = len(labels)
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(proba).argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(k)))
    support = cm.sum(axis=1)
    per_class = {labels[i]: (float(cm[i, i] / support[i]) if support[i] else None) for i in range(k)}
    roc_auc: dict[str, float | None] = {}
    roc: dict[str, dict[str, list[float]]] = {}
    for i, name in enumerate(labels):
        pos = y_true == i
        if pos.all() or not pos.any():
            roc_auc[name] = None  # AUC is undefined without both positives and negatives
            continue
        fpr, tpr, _ = roc_curve(pos, proba[:, i])
        roc_auc[name] = float(roc_auc_score(pos, proba[:, i]))
        roc[name] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
    aucs = [v for v in roc_auc.values() if v is not None]
    return Metrics(
        accuracy=float((y_pred == y_true).mean()) if len(y_true) else None,
        class_avg_accuracy=class_averaged_accuracy(y_true, y_pred) if len(y_true) else None,
        per_class_accuracy=per_class,
        roc_auc=roc_auc,
        macro_auc=float(np.mean(aucs)) if aucs else None,
        confusion_matrix=cm.tolist(),
        labels=labels,
        n_test=int(len(y_true)),
        roc_curves=roc,
        **per_class_scores(cm, labels),
    )
