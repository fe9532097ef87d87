"""Unknown images, third pass: the shipped score (kNN distance + max logit) on OTHER FEATURES.

    python benchmarks/trust_features.py [--variants NAME ...] [--json out.json]

The cases and protocol of benchmarks/trust.py (cross-dataset: the model of one set against every image
of the other three sets; held-out class: each class in turn removed from training, the SVM at the C
chosen on the whole set, its train and test images against the other classes' test images; AUROC, FPR
at 95% TPR, and at the 95% threshold the accuracy on answered minus on all test images). Only the
features change. A variant is ``knn`` parts (feature keys; each part is one kNN distance, k = 5,
leave-self-out on train) plus the max calibrated logit of the bundle's SVM (C by 5-fold CV, temperature
on out-of-fold decision values) trained on the ``clf`` feature key; each part standardised on its
out-of-fold train values and summed, as :func:`imgclf.trust.fit_ood` does (the shipped detector is
``knn=[lite0@224], clf=lite0@224``). A "kNN alone" figure drops the logit part.

Feature keys: ``NAME@RES`` (imgclf's cached OpenVINO features of that backbone, benchmarks/datasets.py),
``A+B`` (each part L2-normalised, side by side: what a run's ``model.featurizers`` concatenates),
``t:LAYER`` (benchmarks/trust_layers.py: pooled fp32 torch activations of lite0@224's stage ``b2``…``b6``
or ``head``), ``t:b5+t:b6+t:head`` likewise concatenated, ``react90:KEY`` (KEY's features clipped at
the 90th percentile of the train activations, ReAct, Sun et al. 2021), ``balanced`` (per set, the
featurizers the balanced preset chose in BENCHMARKS.md's presets run), and ``maha:t:...`` parts (Lee et
al. 2018: per layer, Mahalanobis distance to the nearest class mean with one shared covariance in the
first 64 principal axes, in place of the kNN distance).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from datasets import prepared
from trust import SETS, separation

WORK = Path("/work/bench-work")
BALANCED = {"hymenoptera": "lite2@320", "clothing10": "lite2@320+lite0@320", "cub_warblers": "lite0@224+lite1@256",
            "demo": "lite2@320+lite1@256"}  # what the balanced preset chose (BENCHMARKS.md, presets, cap 2)
NAMES = {"lite0": "efficientnet_lite0", "lite1": "efficientnet_lite1", "lite2": "efficientnet_lite2"}

VARIANTS = {  # name: (kNN parts, classifier features)
    "shipped (lite0@224)": (["lite0@224"], "lite0@224"),
    "lite2@320": (["lite2@320"], "lite2@320"),
    "lite0@224+lite2@320": (["lite0@224+lite2@320"], "lite0@224+lite2@320"),
    "balanced preset's features": (["balanced"], "balanced"),
    "kNN on lite0@224+lite2@320, SVM on lite0@224": (["lite0@224+lite2@320"], "lite0@224"),
    "torch head (check)": (["t:head"], "lite0@224"),
    "layers b6+head concat": (["t:b6+t:head"], "lite0@224"),
    "layers b5+b6+head concat": (["t:b5+t:b6+t:head"], "lite0@224"),
    "layers b4..head concat": (["t:b4+t:b5+t:b6+t:head"], "lite0@224"),
    "layers b3..head concat": (["t:b3+t:b4+t:b5+t:b6+t:head"], "lite0@224"),
    "per-layer kNN b5, b6, head summed": (["t:b5", "t:b6", "t:head"], "lite0@224"),
    "per-layer kNN b4, b5, b6, head summed": (["t:b4", "t:b5", "t:b6", "t:head"], "lite0@224"),
    "layer b6 alone": (["t:b6"], "lite0@224"),
    "layer b5 alone": (["t:b5"], "lite0@224"),
    "ReAct 90% clip, lite0@224": (["react90:lite0@224"], "lite0@224"),
    "Mahalanobis per layer b5, b6, head (Lee 2018)": (["maha:t:b5", "maha:t:b6", "maha:t:head"], "lite0@224"),
    "head max-pooled": (["t:head_max"], "lite0@224"),
    "head GeM-pooled (p = 3)": (["t:head_gem"], "lite0@224"),
    "head, mean of image and mirror image": (["t:head_flip"], "lite0@224"),
    "all four backbones concat": (["lite0@224+lite0@320+lite1@256+lite2@320"], "lite0@224+lite0@320+lite1@256+lite2@320"),
    "kNN lite0@224 and kNN lite2@320 summed, SVM on their concat": (["lite0@224", "lite2@320"], "lite0@224+lite2@320"),
    "ReAct 90% clip, lite0@224+lite2@320": (["react90:lite0@224+lite2@320"], "react90:lite0@224+lite2@320"),
}


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Store:
    """Every image's features of one set under any key, rows in the base run dir's train-then-test order."""

    def __init__(self, name: str):
        from imgclf.rundir.layout import RunDir

        self.name = name
        self.cfg, rd = prepared(SETS[name], WORK)
        rd = RunDir(rd)
        rows = {side: rd.split_rows(side) for side in ("train", "test")}
        index, _, ok, _ = rd.load_features()
        rows = {s: [r for r in rs if r.path in index and ok[index[r.path]]] for s, rs in rows.items()}
        self.paths = [r.path for r in rows["train"] + rows["test"]]
        self.labels = np.array([r.label for r in rows["train"] + rows["test"]])
        self.train = np.r_[np.ones(len(rows["train"]), bool), np.zeros(len(rows["test"]), bool)]
        self._cache: dict[str, np.ndarray] = {}

    def _backbone(self, key: str) -> np.ndarray:
        name, res = key.split("@")
        over = () if key == "lite0@224" else (f'model.backbone="{NAMES[name]}"', f"model.resolution={res}")
        _, rd = prepared(SETS[self.name], WORK, over)
        z = np.load(rd / "features.npz", allow_pickle=False)
        index = {str(p): i for i, p in enumerate(z["paths"])}
        rows = [index[p] for p in self.paths]
        assert z["ok"][rows].all(), f"{self.name}: {key} lacks features of some base images"
        return z["features"][rows].astype(np.float32)

    def _layer(self, layer: str) -> np.ndarray:
        z = np.load(WORK / "layers" / f"{self.name}{'-pool' if layer.startswith('head_') else ''}.npz", allow_pickle=False)
        index = {str(p): i for i, p in enumerate(z["paths"])}
        out = z[layer][[index[p] for p in self.paths]]
        assert np.isfinite(out).all(), f"{self.name}: layer {layer} has undecoded images"
        return out

    def get(self, key: str) -> np.ndarray:
        if key == "balanced":
            key = BALANCED[self.name]
        if key not in self._cache:
            if key.startswith("react90:"):
                x = self.get(key[8:])
                self._cache[key] = np.minimum(x, np.quantile(x[self.train], 0.90))  # train activations only
            elif "+" in key:
                self._cache[key] = np.hstack([_l2(self.get(k)) for k in key.split("+")])
            elif key.startswith("t:"):
                self._cache[key] = self._layer(key[2:])
            else:
                self._cache[key] = self._backbone(key)
        return self._cache[key]


def _knn(q: np.ndarray, ref: np.ndarray, k: int = 5, self_rows: bool = False) -> np.ndarray:
    out = np.zeros(len(q))
    for s in range(0, len(q), 1024):
        sim = q[s:s + 1024] @ ref.T
        if self_rows:
            sim[np.arange(len(sim)), np.arange(s, s + len(sim))] = -np.inf  # never its own neighbour
        out[s:s + len(sim)] = 1.0 - (-np.partition(-sim, k - 1, axis=1)[:, :k]).mean(axis=1)
    return out


def _maha(x_train: np.ndarray, y: np.ndarray, components: int = 64, ridge: float = 1e-3):
    """Min over classes of the shared-covariance Mahalanobis distance in the first principal axes (train features)."""
    r = _l2(x_train).astype(np.float64)
    mean = r.mean(axis=0)
    axes = np.linalg.svd(r - mean, full_matrices=False)[2][:components]
    z = (r - mean) @ axes.T
    centers = np.stack([z[y == c].mean(axis=0) for c in np.unique(y)])
    within = z - centers[np.searchsorted(np.unique(y), y)]
    cov = within.T @ within / len(z)
    precision = np.linalg.inv(cov + ridge * np.trace(cov) / len(cov) * np.eye(len(cov)))

    def score(x: np.ndarray) -> np.ndarray:
        q = (_l2(x).astype(np.float64) - mean) @ axes.T
        return np.min([np.einsum("nd,de,ne->n", q - c, precision, q - c) for c in centers], axis=0)

    return score


class Detector:
    """kNN (or Mahalanobis) parts on train features + the SVM's max calibrated logit, each standardised on train."""

    def __init__(self, knn_train: list[np.ndarray], y: np.ndarray, kinds: list[str], oof_logits: np.ndarray):
        self.refs, self.kinds, self.mahas = [], kinds, []
        parts = []
        for x, kind in zip(knn_train, kinds):
            if kind == "maha":
                m = _maha(x, y)
                self.mahas.append(m)
                self.refs.append(None)
                parts.append(m(x))  # in-sample (no leave-one-out for a class mean)
            else:
                r = _l2(x)
                self.mahas.append(None)
                self.refs.append(r)
                parts.append(_knn(r, r, self_rows=True))
        parts.append(-oof_logits.max(axis=1))
        p = np.stack(parts, 1)
        self.center, self.scale = p.mean(0), np.maximum(p.std(0), 1e-9)
        self.train_scores = ((p - self.center) / self.scale).sum(1)
        self.train_knn = ((p[:, :-1] - self.center[:-1]) / self.scale[:-1]).sum(1)

    def score(self, knn_x: list[np.ndarray], logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [m(x) if m is not None else _knn(_l2(x), r) for x, m, r in zip(knn_x, self.mahas, self.refs)]
        z = (np.stack(parts + [-logits.max(axis=1)], 1) - self.center) / self.scale
        return z.sum(1), z[:, :-1].sum(1)


def _svm(cfg, x: np.ndarray, labels: np.ndarray, c: float | None):
    import dataclasses

    from imgclf.classifier.svm import SvmClassifier

    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels])
    svm = cfg.svm if c is None else dataclasses.replace(cfg.svm, c_values=[c])
    return classes, y, SvmClassifier.from_config(svm, cfg.data.seed).fit(x, y)


class Bench:
    def __init__(self, sets: list[str]):
        self.stores = {n: Store(n) for n in sets}
        self.svms: dict = {}  # (set, clf key, held-out class) -> (classes, y, clf)
        self.C: dict = {}

    def known(self, n: str, held: str | None) -> np.ndarray:
        st = self.stores[n]
        return np.ones(len(st.labels), bool) if held is None else st.labels != held

    def svm(self, n: str, key: str, held: str | None):
        st = self.stores[n]
        if (n, key, held) not in self.svms:
            tr = st.train & self.known(n, held)
            if held is not None and (n, key, None) not in self.svms:
                self.svm(n, key, None)
            c = None if held is None else self.svms[(n, key, None)][2].C_
            self.svms[(n, key, held)] = _svm(st.cfg, st.get(key)[tr], st.labels[tr], c)
        return self.svms[(n, key, held)]

    def case(self, n: str, knn_keys: list[str], clf_key: str, held: str | None, out_feats: tuple[list, np.ndarray] | None) -> dict:
        st = self.stores[n]
        classes, y, clf = self.svm(n, clf_key, held)
        tr = st.train & self.known(n, held)
        te = ~st.train & self.known(n, held)
        kinds = ["maha" if k.startswith("maha:") else "knn" for k in knn_keys]
        keys = [k[5:] if k.startswith("maha:") else k for k in knn_keys]
        det = Detector([st.get(k)[tr] for k in keys], y, kinds, clf.head_.temperature * clf.oof_decision_)

        def scores(mask_or_feats):
            if isinstance(mask_or_feats, np.ndarray):
                kx, cx = [st.get(k)[mask_or_feats] for k in keys], st.get(clf_key)[mask_or_feats]
            else:
                kx, cx = mask_or_feats
            return det.score(kx, clf.head_.temperature * clf.head_.decision_function(cx))

        s_in, k_in = scores(te)
        s_out, k_out = scores(st.labels == held) if held is not None else scores(out_feats)
        thr = float(np.quantile(det.train_scores, 0.95, method="higher"))
        ok = s_in <= thr
        correct = clf.predict(st.get(clf_key)[te]) == np.array([classes.index(v) for v in st.labels[te]])
        return {"detector": separation(s_in, s_out), "knn_alone": separation(k_in, k_out),
                "accepted_in": round(float(ok.mean()), 4), "rejected_out": round(float((s_out > thr).mean()), 4),
                "acc_change": round(float(100 * (correct[ok].mean() - correct.mean())), 2)}

    def variant(self, knn_keys: list[str], clf_key: str) -> dict:
        res: dict = {"cross": {}, "held_out": {}}
        for n, st in self.stores.items():
            others = [o for o in self.stores.values() if o is not st]

            def feats_of(key: str, o: "Store") -> np.ndarray:
                # the model of set n featurizes the other sets with ITS featurizers (balanced: n's winner)
                k = BALANCED[n] if key == "balanced" else key
                if k.startswith("react90:"):  # clipped where the model's own train activations are
                    x = st.get(k[8:])
                    return np.minimum(o.get(k[8:]), np.quantile(x[st.train], 0.90))
                return o.get(k)

            keys = [k[5:] if k.startswith("maha:") else k for k in knn_keys]
            out = ([np.concatenate([feats_of(k, o) for o in others]) for k in keys],
                   np.concatenate([feats_of(clf_key, o) for o in others]))
            res["cross"][n] = self.case(n, knn_keys, clf_key, None, out)
        for n, st in self.stores.items():
            classes = sorted(set(st.labels[st.train]))
            if len(classes) < 3:
                continue
            per = {c: self.case(n, knn_keys, clf_key, c, None) for c in classes}
            res["held_out"][n] = {"per_class": per, **{m: round(float(np.mean([p[m]["auroc"] for p in per.values()])), 4)
                                                      for m in ("detector", "knn_alone")},
                                  "fpr95": round(float(np.mean([p["detector"]["fpr95"] for p in per.values()])), 3),
                                  "worst_acc_change": min(p["acc_change"] for p in per.values())}
        h = res["held_out"]
        res["held_out_mean"] = round(float(np.mean([v["detector"] for v in h.values()])), 4)
        res["held_out_mean_knn_alone"] = round(float(np.mean([v["knn_alone"] for v in h.values()])), 4)
        res["cross_min"] = min(v["detector"]["auroc"] for v in res["cross"].values())
        return res


def table(results: dict) -> str:
    sets = ["clothing10", "cub_warblers", "demo"]
    lines = ["| variant (kNN parts; SVM features) | held-out mean | " + " | ".join(sets)
             + " | kNN alone held-out mean | cross-dataset (hym / clo / cub / demo) | worst acc change |",
             "|---|---|" + "---|" * len(sets) + "---|---|---|"]
    for name, r in results.items():
        h = r["held_out"]
        cross = " / ".join(f"{r['cross'][n]['detector']['auroc']:.3f}" for n in r["cross"])
        worst = min([v["worst_acc_change"] for v in h.values()] + [v["acc_change"] for v in r["cross"].values()])
        lines.append(f"| {name} | {r['held_out_mean']:.3f} | " + " | ".join(f"{h[s]['detector']:.3f} ({h[s]['fpr95']:.2f})" for s in sets)
                     + f" | {r['held_out_mean_knn_alone']:.3f} | {cross} | {worst:+.2f} pt |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--json", type=Path, default=Path("trust_features.json"))
    args = ap.parse_args()
    t0 = time.time()
    bench = Bench(list(SETS))
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    for name in args.variants:
        results[name] = bench.variant(*VARIANTS[name])
        args.json.write_text(json.dumps(results, indent=1))
        per = ", ".join(f"{n} {v['detector']}" for n, v in results[name]["held_out"].items())
        print(f"{name}: held-out {results[name]['held_out_mean']} ({per}), "
              f"kNN alone {results[name]['held_out_mean_knn_alone']}, cross min {results[name]['cross_min']} "
              f"{time.time() - t0:.0f}s", flush=True)
    print(table({k: results[k] for k in args.variants}))


if __name__ == "__main__":
    main()
