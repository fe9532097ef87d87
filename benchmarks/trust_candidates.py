"""Candidate unknown-image scores against the shipped detector, on the cases of benchmarks/trust.py.

    python benchmarks/trust_candidates.py [--search] [--loo]

Same features, classifier (SVM, C by CV on train; held-out cases at the C of the whole set) and cases
as benchmarks/trust.py. Every part is standardised by the mean and spread of its train values, the
way :func:`imgclf.trust.fit_ood` does (kNN parts leave each train image out of its own neighbours;
logit parts use the SVM's out-of-fold decision values), and a candidate is the sum of its parts.
Printed: held-out-class mean AUROC per set and over sets, cross-dataset AUROC per set, and the
smallest change of accuracy on answered images at the 95% threshold over all cases.

- ``knnK``: mean cosine distance to the K nearest train images (the shipped ``knn5``);
- ``cent_knn5``: the same after subtracting the train mean (cosine about the train centre);
- ``pcawD_knn5``: the same in the first D principal axes, whitened;
- ``cc_knnK_pred``: kNN distance to the train images of the predicted class only;
- ``cc_ratioK``: nearest-class kNN distance over second-nearest-class;
- ``centroid``: cosine distance to the nearest class mean;
- ``maxlogit``, ``margin``, ``energy``, ``msp``: of the calibrated logits (negated: higher = unknown);
- ``--loo``: a leave-one-class-out ensemble of heads (Vyas et al., ECCV 2018): for each known class
  a head without it (same C and T); part = minus the mean / min / max over heads of the max logit
  (standardised on in-sample train values; sets whose held-out case keeps >= 3 classes).
- ``--search``: every sum of 2 or 3 parts, best 20 by held-out mean (chosen on the evaluation
  cases themselves, so the winner's margin is an upper bound).
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from scipy.special import logsumexp, softmax
from trust import SETS, fit, load, separation

KNN = (1, 3, 5, 10, 20, 50)
FOCUS = [("knn5", "maxlogit"), ("knn1", "maxlogit"), ("knn3", "maxlogit"), ("knn10", "maxlogit"), ("knn5", "margin"),
         ("knn5", "energy"), ("knn5", "msp"), ("cc_knn5_pred", "maxlogit"), ("cc_knn1_pred", "maxlogit"),
         ("cent_knn5", "maxlogit"), ("pcaw64_knn5", "maxlogit"), ("centroid", "maxlogit"),
         ("knn5", "maxlogit", "centroid"), ("knn5", "cc_knn5_pred", "maxlogit"), ("cent_knn5", "maxlogit", "centroid"),
         ("cent_knn5", "margin", "centroid")]


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _knn(sim: np.ndarray, k: int) -> np.ndarray:
    k = max(1, min(k, sim.shape[1]))
    return 1.0 - (-np.partition(-sim, k - 1, axis=1)[:, :k]).mean(axis=1)


class Parts:
    """Every candidate part of one case's train set, for any query features and calibrated logits."""

    def __init__(self, x_train: np.ndarray, y: np.ndarray):
        self.r, self.y = _l2(x_train), y
        self.mu = self.r.mean(axis=0)
        self.rc = _l2(self.r - self.mu)
        self.centroids = _l2(np.stack([self.r[y == j].mean(axis=0) for j in range(y.max() + 1)]))
        _, s, vt = np.linalg.svd(self.r - self.mu, full_matrices=False)
        self.proj = {d: vt[:d].T / s[:d] * np.sqrt(len(self.r)) for d in (32, 64, 128)}
        self.white = {d: _l2((self.r - self.mu) @ p) for d, p in self.proj.items()}

    def __call__(self, x: np.ndarray, logits: np.ndarray, train: bool) -> dict[str, np.ndarray]:
        q = _l2(x)

        def sims(a, b):
            s = a @ b.T
            if train:
                np.fill_diagonal(s, -np.inf)  # never its own neighbour
            return s

        s = sims(q, self.r)
        out = {f"knn{k}": _knn(s, k) for k in KNN}
        out["cent_knn5"] = _knn(sims(_l2(q - self.mu), self.rc), 5)
        for d, p in self.proj.items():
            out[f"pcaw{d}_knn5"] = _knn(sims(_l2((q - self.mu) @ p), self.white[d]), 5)
        pred, rows = logits.argmax(axis=1), np.arange(len(q))
        for k in (1, 5):
            per = np.stack([_knn(np.where(self.y[None, :] == j, s, -np.inf), k) for j in range(self.y.max() + 1)], 1)
            out[f"cc_knn{k}_pred"] = per[rows, pred]
            two = np.sort(per, axis=1)[:, :2]
            out[f"cc_ratio{k}"] = two[:, 0] / np.maximum(two[:, 1], 1e-9)
        out["centroid"] = 1.0 - (q @ self.centroids.T).max(axis=1)
        top2 = np.sort(logits, axis=1)[:, -2:]
        out.update(maxlogit=-top2[:, 1], margin=top2[:, 0] - top2[:, 1], energy=-logsumexp(logits, axis=1),
                   msp=-softmax(logits, axis=1).max(axis=1))
        return out


def loo_parts(cfg_c: float, t: float, x_train: np.ndarray, y: np.ndarray, xs: dict[str, np.ndarray]) -> dict[str, dict]:
    """Leave-one-class-out ensemble parts of every query set in ``xs`` (name → features)."""
    from imgclf.classifier.linear import fit_head

    maxl = {n: [] for n in xs}
    for drop in range(y.max() + 1):
        keep = y != drop
        head = fit_head(x_train[keep], np.where(y[keep] > drop, y[keep] - 1, y[keep]), cfg_c, temperature=t)
        for n, x in xs.items():
            maxl[n].append((t * head.decision_function(x)).max(axis=1))
    return {n: {f"loo_{a}": -getattr(np, a)(np.stack(v), axis=0) for a in ("mean", "min", "max")} for n, v in maxl.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/work/bench-work"))
    ap.add_argument("--search", action="store_true")
    ap.add_argument("--loo", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    data = {n: load(n, args.work) for n in SETS}
    cases = []  # (kind, set, train parts, in parts, out parts, correct, train logits)

    def add(kind, name, cfg, xtr, ltr, xin, lin, xout, c=None):
        classes, clf, _ = fit(cfg, xtr, ltr, c)
        y = np.array([classes.index(v) for v in ltr])
        t = clf.head_.temperature
        parts = Parts(xtr, y)
        logit = {"in": t * clf.head_.decision_function(xin), "out": t * clf.head_.decision_function(xout)}
        p = (parts(xtr, t * clf.oof_decision_, True), parts(xin, logit["in"], False), parts(xout, logit["out"], False))
        if args.loo and kind == "held" and y.max() >= 2:
            lp = loo_parts(clf.C_, t, xtr, y, {"tr": xtr, "in": xin, "out": xout})
            for d, n in zip(p, ("tr", "in", "out")):
                d.update(lp[n])
        correct = clf.predict(xin) == np.array([classes.index(v) for v in lin])
        cases.append((kind, name, *p, correct))
        return clf.C_

    for n, d in data.items():
        (xtr, ltr), (xte, lte) = d["train"], d["test"]
        others = np.concatenate([np.r_[data[o]["train"][0], data[o]["test"][0]] for o in data if o != n])
        d["C"] = add("cross", n, d["cfg"], xtr, ltr, xte, lte, others)
    for n, d in data.items():
        (xtr, ltr), (xte, lte) = d["train"], d["test"]
        if len(set(ltr)) < 3:
            continue
        for c in sorted(set(ltr)):
            keep = lte != c
            add("held", n, d["cfg"], xtr[ltr != c], ltr[ltr != c], xte[keep], lte[keep], np.r_[xtr[ltr == c], xte[~keep]], d["C"])
    print(f"fitted {len(cases)} cases in {time.time() - t0:.0f}s", flush=True)

    def evaluate(names):
        held, cross, gain = {}, {}, []
        for kind, name, tr, pin, pout, correct in cases:
            if not all(k in tr for k in names):
                return None
            std = {k: (tr[k].mean(), max(tr[k].std(), 1e-9)) for k in names}
            score = {s: sum((p[k] - std[k][0]) / std[k][1] for k in names) for s, p in (("tr", tr), ("in", pin), ("out", pout))}
            auroc = separation(score["in"], score["out"])["auroc"]
            (held.setdefault(name, []).append(auroc) if kind == "held" else cross.__setitem__(name, auroc))
            ok = score["in"] <= np.quantile(score["tr"], 0.95, method="higher")
            gain.append(correct[ok].mean() - correct.mean())
        per = {k: float(np.mean(v)) for k, v in held.items()}
        return float(np.mean(list(per.values()))), per, cross, min(gain)

    def show(names, r):
        mean, per, cross, gain = r
        print(f"{'+'.join(names):40s} held {mean:.4f} (" + " ".join(f"{k} {v:.3f}" for k, v in per.items()) + ") cross "
              + " ".join(f"{v:.4f}" for v in cross.values()) + f" | min acc gain {100 * gain:+.2f} pt", flush=True)

    singles = list(cases[0][2])
    loo = sorted({k for case in cases for k in case[2] if k.startswith("loo_")})
    for names in [(k,) for k in singles] + FOCUS:
        r = evaluate(names)
        if r is not None:
            show(names, r)
    if loo:  # only sets with >= 3 classes left: compare on those
        print("leave-one-class-out ensemble, held-out mean AUROC on the sets where it applies:")
        for names in [("maxlogit",), ("knn5", "maxlogit"), *[(k,) for k in loo], *[("knn5", "maxlogit", k) for k in loo]]:
            aurocs = {}
            for kind, name, tr, pin, pout, _ in cases:
                if kind == "held" and "loo_mean" in tr:
                    std = {k: (tr[k].mean(), max(tr[k].std(), 1e-9)) for k in names}
                    s_in, s_out = (sum((p[k] - std[k][0]) / std[k][1] for k in names) for p in (pin, pout))
                    aurocs.setdefault(name, []).append(separation(s_in, s_out)["auroc"])
            print(f"{'+'.join(names):40s} " + " ".join(f"{k} {np.mean(v):.4f}" for k, v in aurocs.items()), flush=True)
    if args.search:
        rows = [(names, evaluate(names)) for r in (2, 3) for names in itertools.combinations(singles, r)]
        rows = sorted([x for x in rows if x[1] is not None], key=lambda x: -x[1][0])
        print(f"search: {len(rows)} sums; best 10, then best 10 with cross-dataset >= 0.99 everywhere")
        for names, r in rows[:10] + [x for x in rows if min(x[1][2].values()) >= 0.99][:10]:
            show(names, r)
    print(f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
