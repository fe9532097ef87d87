"""Linear SVM on CNN features, C chosen by cross-validation on the train split only.

Probabilities are calibrated by temperature scaling: ``p = softmax(T * d)`` over the one-vs-rest
decision values ``d``, with the single temperature ``T`` fit by minimising log-loss on
out-of-fold decision values of the train split. One scalar keeps argmax(p) == predict, and a
held-out fit keeps the scores honest (an SVM's in-sample margins are overconfident).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..config.settings import SvmConfig
from ..trust.calibration import fit_temperature, softmax
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


class SvmClassifier:
    """LinearSVC with C by stratified k-fold CV (class-averaged accuracy) and calibrated scores.

    Follows the scikit-learn contract: ``__init__`` stores arguments, ``fit`` returns self,
    learned state ends in ``_`` (``head_``, ``C_``, ``cv_scores_``, ``classes_``, ``oof_decision_``).
    """

    def __init__(
        self,
        c_values: Sequence[float] = (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0),
        cv_folds: int = 5,
        l2_normalize: bool = True,
        class_weight: str | None = "balanced",
        max_iter: int = 10000,
        seed: int = 0,
        max_s: float = 0.0,
    ):
        self.c_values = c_values
        self.cv_folds = cv_folds
        self.l2_normalize = l2_normalize
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.seed = seed
        self.max_s = max_s

    @classmethod
    def from_config(cls, svm: SvmConfig, seed: int, max_s: float | None = None) -> "SvmClassifier":
        """The classifier the ``[svm]`` config section describes (``seed``: ``data.seed``; ``max_s``: the C search's
        seconds instead of ``svm.max_s``)."""
        return cls(svm.c_values, svm.cv_folds, svm.l2_normalize, svm.class_weight, svm.max_iter, seed,
                   svm.max_s if max_s is None else max_s)

    def info(self) -> dict[str, Any]:
        """What bundle.json's classifier section records of a fitted SVM."""
        out = {"C": self.C_, "cv_folds": self.cv_folds_, "cv_class_avg_accuracy": self.cv_scores_,
               "temperature": self.head_.temperature}
        return {**out, "c_unscored": self.c_unscored_} if self.c_unscored_ else out

    def _svc(self, c: float) -> Any:
        from sklearn.svm import LinearSVC

        cw = None if self.class_weight in (None, "none") else self.class_weight
        return LinearSVC(C=c, class_weight=cw, max_iter=self.max_iter, random_state=self.seed, dual="auto")

    def fit(self, features: np.ndarray, y: np.ndarray) -> "SvmClassifier":
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(y)
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(f"features must be (N, D) with N = len(y); got {x.shape} and {len(y)} labels")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to train; got {len(self.classes_)}")
        if self.l2_normalize:
            x = l2_normalize(x)
        min_count = int(np.bincount(np.searchsorted(self.classes_, y)).min())
        folds = max(2, min(self.cv_folds, min_count))
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.cv_scores_, self.c_unscored_ = self._search_c(x, y, cv)
            # ties go to the smaller C (the simpler model)
            self.C_ = max(self.cv_scores_, key=lambda c: (round(self.cv_scores_[c], 10), -c))
            oof = cross_val_predict(self._svc(self.C_), x, y, cv=cv, method="decision_function")
            svc = self._svc(self.C_).fit(x, y)
        w, b = _rows_per_class(svc)
        if len(self.classes_) == 2:
            oof = np.stack([-oof, oof], axis=1)
        t = fit_temperature(oof, np.searchsorted(self.classes_, y))
        self.head_ = LinearHead(w.astype(np.float32), b.astype(np.float32), t, self.l2_normalize)
        self.cv_folds_ = folds
        self.oof_decision_ = oof  # (N, K) cross-validated decision values: the OOD score's train reference
        return self

    def _search_c(self, x: np.ndarray, y: np.ndarray, cv: Any) -> tuple[dict[float, float], list[float]]:
        """CV score of each C, smallest first: liblinear's iterations grow with C, so each costs more than the last.
        With ``max_s``, a C whose projected cost (the last one's × its growth so far, at least ×2) would not
        leave time for it and the final fits (out-of-fold + whole, ~1.2 cross-validations) is left unscored, with
        every larger one. The smallest C is always scored."""
        from sklearn.model_selection import cross_val_score

        scores: dict[float, float] = {}
        order = sorted(float(c) for c in self.c_values)
        t0, last, growth = time.perf_counter(), 0.0, 2.0
        for i, c in enumerate(order):
            if self.max_s and scores and time.perf_counter() - t0 + 2.2 * last * growth > self.max_s:
                return scores, order[i:]  # the next C's CV and, should it win, the final fits at it would not fit
            t = time.perf_counter()
            scores[c] = float(np.mean(cross_val_score(self._svc(c), x, y, cv=cv, scoring="balanced_accuracy")))
            spent = time.perf_counter() - t
            growth = max(2.0, spent / last) if last > 0 else growth
            last = spent
        return scores, []

    def nested_score(self, features: np.ndarray, y: np.ndarray, outer_folds: int = 3, inner_folds: int = 3) -> float:
        """Class-averaged accuracy on held-out outer folds of the whole fit, C chosen by CV inside each outer
        training part (nested CV): a fair score to compare feature sets by, which the max over C of
        ``cv_scores_`` is not (it flatters whichever set the grid happens to fit). Does not fit ``self``."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

        x = np.asarray(features, dtype=np.float64)
        x = l2_normalize(x) if self.l2_normalize else x
        y = np.asarray(y)
        min_count = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
        outer = max(2, min(outer_folds, min_count))
        inner = max(2, min(inner_folds, min_count - (min_count + outer - 1) // outer))
        search = GridSearchCV(self._svc(1.0), {"C": [float(c) for c in self.c_values]}, scoring="balanced_accuracy",
                              cv=StratifiedKFold(n_splits=inner, shuffle=True, random_state=self.seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_val_score(search, x, y, scoring="balanced_accuracy",
                                     cv=StratifiedKFold(n_splits=outer, shuffle=True, random_state=self.seed))
        return float(np.mean(scores))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.head_.predict_proba(features)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.classes_[self.head_.predict(features)]


def _rows_per_class(svc: Any) -> tuple[np.ndarray, np.ndarray]:
    """(weight (K, D), bias (K,)) of a fitted LinearSVC; sklearn's one binary row made symmetric two-class."""
    w, b = svc.coef_, svc.intercept_
    if len(svc.classes_) == 2:
        w, b = np.vstack([-w[0], w[0]]), np.array([-b[0], b[0]])
    return w, b


def fit_head(features: np.ndarray, y: np.ndarray, c: float, *, temperature: float = 1.0, normalize: bool = True,
             class_weight: str | None = "balanced", max_iter: int = 10000, seed: int = 0) -> LinearHead:
    """One LinearSVC at a given ``C`` and ``temperature`` (no cross-validation) → LinearHead over classes 0..K-1.

    The quick refit of Label next: a run chose C and T by CV (dozens of fits); one fit of the dual problem
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
    w, b = _rows_per_class(svc)
    return LinearHead(w.astype(np.float32), b.astype(np.float32), float(temperature), normalize)
