"""Trust benchmark: calibration (ECE before/after) and unknown-image detection, baseline in the same run.

    python benchmarks/trust.py DIR [DIR ...] --work W [--json out.json]

``DIR`` is an images folder, or ``demo`` for the embedded generated set; a set is named by its folder.
Every set is prepared and featurized once by imgclf (efficientnet_lite0 at 224 px, cached in ``W``).
The classifier is the bundle's: the SVM (C by 5-fold CV on train) with its temperature fit on
out-of-fold decision values of train; the OOD detector is :func:`imgclf.trust.fit_ood` on the same
train split (threshold: 95% of out-of-fold train scores). Nothing is fit on test.

- calibration: test ECE / NLL / Brier with T = 1 (before), the fitted temperature (after), and the
  alternatives Platt and isotonic (one-vs-rest on the same out-of-fold decision values, renormalised);
- cross-dataset: the model of one set against every image of the other sets;
- held-out class (sets with >= 3 classes): each class in turn removed from training (the SVM keeps
  the C chosen on the whole set); its images (train and test) against the other classes' test images;
- per case: AUROC and FPR at 95% TPR (on the in-distribution test images) of the detector, of the
  baseline (mean cosine distance to the 5 nearest train features) and of the max logit alone; at the
  default threshold, the share of in-distribution test images accepted and the accuracy on all of
  them against the accuracy on those answered.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from datasets import prepared

def load(images: str, work: Path) -> dict:
    from imgclf.rundir.layout import RunDir

    cfg, rd = prepared(images, work)
    rd = RunDir(rd)
    out = {"cfg": cfg}
    for side in ("train", "test"):
        rows, x = rd.split_features(side)
        out[side] = (x, np.array([r.label for r in rows]))
    return out


def fit(cfg, x: np.ndarray, labels: np.ndarray, c: float | None = None):
    """(classes, SVM, detector) of train features and labels: what a bundle holds (``c``: C fixed, no grid search)."""
    import dataclasses

    from imgclf.classifier.svm import SvmClassifier
    from imgclf.trust import fit_ood

    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels])
    svm = cfg.svm if c is None else dataclasses.replace(cfg.svm, c_values=[c])
    clf = SvmClassifier.from_config(svm, cfg.data.seed).fit(x, y)
    det = fit_ood(x, clf.head_.temperature * clf.oof_decision_)
    return classes, clf, (det, mahalanobis(det.reference, y))


def mahalanobis(reference: np.ndarray, y: np.ndarray, components: int = 64, ridge: float = 1e-3):
    """Min over classes of the Mahalanobis distance with one shared covariance, in the first ``components``
    principal axes of the L2-normalised train features (a full 1280-d covariance of a few hundred images is singular)."""
    mean = reference.mean(axis=0)
    axes = np.linalg.svd(reference - mean, full_matrices=False)[2][:components]
    z = (reference - mean) @ axes.T
    centers = np.stack([z[y == c].mean(axis=0) for c in np.unique(y)])
    within = z - centers[np.searchsorted(np.unique(y), y)]
    cov = within.T @ within / len(z)
    precision = np.linalg.inv(cov + ridge * np.trace(cov) / len(cov) * np.eye(len(cov)))

    def score(x: np.ndarray) -> np.ndarray:
        from imgclf.trust import l2_rows

        q = (l2_rows(x) - mean) @ axes.T
        return np.min([np.einsum("nd,de,ne->n", q - c, precision, q - c) for c in centers], axis=0)

    return score


def ood_scores(clf, det, maha, x: np.ndarray) -> dict[str, np.ndarray]:
    from scipy.special import logsumexp

    from imgclf.trust import knn_to

    logits = clf.head_.temperature * clf.head_.decision_function(x)
    return {"detector": det.score(x, logits), "knn5 (baseline)": knn_to(x, det.reference, 5), "maxlogit": -logits.max(axis=1),
            "energy": -logsumexp(logits, axis=1), "mahalanobis": maha(x)}


def separation(s_in: np.ndarray, s_out: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    auroc = roc_auc_score(np.r_[np.zeros(len(s_in)), np.ones(len(s_out))], np.r_[s_in, s_out])
    return {"auroc": round(float(auroc), 4), "fpr95": round(float((s_out <= np.quantile(s_in, 0.95)).mean()), 4)}


def case(clf, dets, x_in: np.ndarray, y_in: np.ndarray, x_out: np.ndarray) -> dict:
    """Separation of in-distribution test images from unknowns, and the default threshold's cost."""
    det = dets[0]
    s_in, s_out = ood_scores(clf, *dets, x_in), ood_scores(clf, *dets, x_out)
    out = {name: separation(s_in[name], s_out[name]) for name in s_in}
    thr = det.threshold(0.95)
    ok = s_in["detector"] <= thr
    correct = clf.predict(x_in) == y_in
    out["threshold"] = {"accepted_in": round(float(ok.mean()), 4), "rejected_out": round(float((s_out["detector"] > thr).mean()), 4),
                        "accuracy_all": round(float(correct.mean()), 4),
                        "accuracy_answered": round(float(correct[ok].mean()) if ok.any() else float("nan"), 4)}
    return out


def _one_vs_rest(method: str, d_train: np.ndarray, y_train: np.ndarray, d_test: np.ndarray) -> np.ndarray:
    """Per-class Platt (sigmoid) or isotonic maps of the decision values, fit on out-of-fold train values, renormalised."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    cols = []
    for j in range(d_test.shape[1]):
        if method == "platt":
            m = LogisticRegression(C=1e4).fit(d_train[:, [j]], y_train == j)
            cols.append(m.predict_proba(d_test[:, [j]])[:, 1])
        else:
            m = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(d_train[:, j], y_train == j)
            cols.append(m.predict(d_test[:, j]))
    p = np.clip(np.column_stack(cols), 1e-6, None)
    return p / p.sum(axis=1, keepdims=True)


def calibration(clf, x_test: np.ndarray, y_test: np.ndarray, y_train: np.ndarray) -> dict:
    from imgclf.trust import calibration_metrics, softmax

    d_tr, d_te = clf.oof_decision_, clf.head_.decision_function(x_test).astype(np.float64)
    after = softmax(clf.head_.temperature * d_te)
    out = {"before (T = 1)": calibration_metrics(softmax(d_te), y_test), "temperature": calibration_metrics(after, y_test),
           "T": round(clf.head_.temperature, 4), "argmax_changed": {"temperature": 0}}
    for method in ("platt", "isotonic"):
        p = _one_vs_rest(method, d_tr, y_train, d_te)
        out[method] = calibration_metrics(p, y_test)
        out["argmax_changed"][method] = int((p.argmax(1) != after.argmax(1)).sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", help="images folders, or 'demo'")
    ap.add_argument("--work", type=Path, required=True, help="folder for run directories and the caches (kept)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    t0 = time.time()
    data = {Path(n).name: load(n, args.work) for n in args.sets}
    res: dict = {"calibration": {}, "cross": {}, "held_out": {}}
    for n, d in data.items():
        (xtr, ltr), (xte, lte) = d["train"], d["test"]
        classes, clf, det = fit(d["cfg"], xtr, ltr)
        d["C"] = clf.C_
        y_te = np.array([classes.index(v) for v in lte])
        res["calibration"][n] = calibration(clf, xte, y_te, np.array([classes.index(v) for v in ltr]))
        others = np.concatenate([np.r_[data[o]["train"][0], data[o]["test"][0]] for o in data if o != n])
        res["cross"][n] = case(clf, det, xte, y_te, others)
        print(n, "calibration", json.dumps(res["calibration"][n]), "\n", n, "cross", json.dumps(res["cross"][n]),
              f"{time.time() - t0:.0f}s", flush=True)
    for n, d in data.items():
        (xtr, ltr), (xte, lte) = d["train"], d["test"]
        if len(set(ltr)) < 3:
            continue
        per = {}
        for c in sorted(set(ltr)):
            classes, clf, det = fit(d["cfg"], xtr[ltr != c], ltr[ltr != c], d["C"])  # C of the whole set: 7x fewer fits
            keep = lte != c
            per[c] = case(clf, det, xte[keep], np.array([classes.index(v) for v in lte[keep]]), np.r_[xtr[ltr == c], xte[~keep]])
        res["held_out"][n] = {"per_class": per, "mean": {m: round(float(np.mean([p[m]["auroc"] for p in per.values()])), 4)
                                                         for m in per[next(iter(per))] if m != "threshold"}}
        print(n, "held-out mean AUROC", res["held_out"][n]["mean"], f"{time.time() - t0:.0f}s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
