"""The linear SVM of every ``svm`` run: LinearSVC on CNN features, C chosen by cross-validation on the train
split only, probabilities calibrated by one temperature fit on out-of-fold decision values (see
:mod:`imgclf.classifier.linear` for the head it reduces to). scikit-learn is imported here, not by the head,
so loading a bundle to predict does not import it."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from ..config.settings import SvmConfig
from ..trust.calibration import fit_temperature
from ..util.arrays import l2_normalize
from ..util.progress import progress_bar
from .linear import LinearHead, head_rows


class SvmClassifier(ClassifierMixin, BaseEstimator):
    """LinearSVC with C by stratified k-fold CV (class-averaged accuracy) and calibrated scores.

    A scikit-learn estimator: ``__init__`` stores arguments, ``fit`` returns self, learned state ends in ``_``
    (``head_``, ``C_``, ``cv_scores_``, ``classes_``, ``oof_decision_``); ``clone``, ``GridSearchCV`` and
    ``Pipeline`` take it, and ``score`` is accuracy.

    >>> SvmClassifier(c_values=[0.1, 1.0], cv_folds=3).fit(features, labels).predict_proba(features)   # doctest: +SKIP
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
        w, b = head_rows(svc)
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
        with progress_bar(len(order), "C search", unit="C", show=False) as bar:
            for i, c in enumerate(order):
                if self.max_s and scores and time.perf_counter() - t0 + 2.2 * last * growth > self.max_s:
                    return scores, order[i:]  # the next C's CV and, should it win, the final fits at it would not fit
                t = time.perf_counter()
                scores[c] = float(np.mean(cross_val_score(self._svc(c), x, y, cv=cv, scoring="balanced_accuracy")))
                spent = time.perf_counter() - t
                growth = max(2.0, spent / last) if last > 0 else growth
                last = spent
                bar.update()
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

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """(N, K) one-vs-rest decision values (the calibrated scores are ``softmax(T * d)``)."""
        return self.head_.decision_function(features)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.head_.predict_proba(features)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.classes_[self.head_.predict(features)]
