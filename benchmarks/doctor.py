"""Data-doctor benchmark: planted label flips found, against the plain baseline in the same run.

    python benchmarks/doctor.py DIR [DIR ...] [--rates 0.05 0.1] [--seeds 0 1 2] [--work W] [--json out.json]
        [--rank self_confidence|margin|alternative] [--flip] [--also NAME@RES ...] [--detection-only]

``DIR`` is an images folder, or ``demo`` for the embedded generated set. Each set is prepared and
featurized once by imgclf (efficientnet_lite0 at 224 px, features cached in ``W``); then, for each
noise mode (``uniform``: a flipped label is any other class; ``classcond``: class i always becomes
the class after it in a random cyclic order), rate and seed, that share of ALL images (train and
test) get a wrong label, and:

- the doctor (``imgclf.doctor.examine``, the default ``[doctor]`` settings) and the baseline
  (5-fold logistic regression, C = 10, on L2-normalised features; images ranked by the out-of-fold
  probability of their given label) rank every image; precision@k (k = flips) and AUROC of flip
  detection for both; recall and precision of the doctor's own cut-off (its label_issues.csv);
- at the largest rate: test accuracy of the run's classifier (the SVM, C by CV on train) trained
  on the noisy train labels, after accepting the doctor's suggestions for the train images it
  flagged, and on the clean labels; always judged against the clean test labels;
- the doctor step's wall time on a run directory of ``--timing-images`` cached images (median of 3).

The variants of ``doctor_precision.py`` (its docstring) can be measured on the same flips: ``--rank``
orders every image by its normalised margin or by the probability of the alternative class instead of
its self-confidence; ``--flip`` averages every image's features with its mirror image's; ``--also
NAME@RES`` averages the out-of-fold probabilities of separately featurized models, listed by the
doctor's cut on the mean. A variant's runs, and ``--detection-only`` ones, report the doctor's detection
only (no baseline, no accuracy after accepting: those are the default run's).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from datasets import prepared


def flip_labels(y: np.ndarray, k: int, rate: float, seed: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, bool mask of the flipped images)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(y), int(round(rate * len(y))), replace=False)
    order = rng.permutation(k)
    nxt = {int(order[i]): int(order[(i + 1) % k]) for i in range(k)}
    noisy = y.copy()
    for i in idx:
        noisy[i] = nxt[int(y[i])] if mode == "classcond" else rng.choice([c for c in range(k) if c != y[i]])
    mask = np.zeros(len(y), bool)
    mask[idx] = True
    return noisy, mask


def baseline_scores(x: np.ndarray, y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Out-of-fold probability of the given label: 5-fold logistic regression (C = 10) on L2-normalised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    p = np.zeros(len(y))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
        clf = LogisticRegression(C=10, max_iter=2000).fit(x[tr], y[tr])
        proba = np.zeros((len(te), k))
        proba[:, clf.classes_] = clf.predict_proba(x[te])
        p[te] = proba[np.arange(len(te)), y[te]]
    return p


def detection(score: np.ndarray, flipped: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    k = int(flipped.sum())
    order = np.argsort(score, kind="stable")
    return {"p_at_k": float(flipped[order[:k]].mean()), "auroc": float(roc_auc_score(flipped, -score))}


def svm_accuracy(cfg, x, y_train, train, y_test_true) -> float:
    from imgclf.classifier.svm import SvmClassifier

    clf = SvmClassifier.from_config(cfg.svm, cfg.data.seed).fit(x[train], y_train)
    return float((clf.predict(x[~train]) == y_test_true).mean())


def one_set(images: str, work: Path, rates: list[float], seeds: list[int], modes: list[str], rank: str = "self_confidence",
            flip: bool = False, also: Sequence[str] = (), detection_only: bool = False) -> dict:
    from doctor_precision import doctor_cut, featurizer_overrides, loaded, rank_key

    from imgclf.doctor.examine import examine

    cfg, base = loaded(images, work, [], flip)
    others = [loaded(images, work, featurizer_overrides(spec), flip)[1] for spec in also]
    if any(o.paths != base.paths for o in others):
        raise SystemExit(f"{images}: the featurizers {also} did not read the same images")
    variant = detection_only or rank != "self_confidence" or flip or bool(also)
    classes = sorted(set(base.labels))
    k = len(classes)
    y = np.array([classes.index(lb) for lb in base.labels])
    train = np.array([s == "train" for s in base.splits])
    out = {"set": Path(images).name, "images": len(y), "classes": k, "runs": [], "accuracy": []}
    clean_acc = svm_accuracy(cfg, base.features, y[train], train, y[~train])
    examine_kw = {"input_size": cfg.model.resolution, "max_distance": cfg.data.duplicate_distance}
    for mode in (modes if k > 2 else ["uniform"]):  # with 2 classes both modes are the same flips
        for rate in rates:
            for seed in seeds:
                noisy, flipped = flip_labels(y, k, rate, seed, mode)
                for data in (base, *others):
                    data.labels = [classes[i] for i in noisy]
                t0 = time.perf_counter()
                found = examine(base, classes, cfg.doctor, seed=seed, **examine_kw)
                seconds = time.perf_counter() - t0
                flagged = np.isin(np.array(base.paths), [r["path"] for r in found.label_issues])
                proba = found.proba
                if others:  # the models' mean out-of-fold probabilities, listed by the doctor's cut
                    proba = np.mean([proba, *(examine(o, classes, cfg.doctor, seed=seed, **examine_kw).proba for o in others)], axis=0)
                    flagged = np.isin(np.arange(len(y)), doctor_cut(proba, noisy))
                hits = int((flagged & flipped).sum())
                row = {"mode": mode, "rate": rate, "seed": seed, "flips": int(flipped.sum()),
                       "baseline": None if variant else detection(baseline_scores(base.features, noisy, k, seed), flipped),
                       "doctor": {**detection(rank_key(proba, noisy, rank), flipped), "flagged": int(flagged.sum()),
                                  "recall": hits / max(1, int(flipped.sum())), "precision": hits / max(1, int(flagged.sum())),
                                  "estimated_errors": found.health["estimated_label_errors"], "seconds": round(seconds, 3)}}
                out["runs"].append(row)
                if rate == max(rates) and not variant:
                    fixed = noisy.copy()
                    suggested = {r["path"]: classes.index(r["suggested_label"]) for r in found.label_issues}
                    for i, p in enumerate(base.paths):
                        if train[i] and p in suggested:
                            fixed[i] = suggested[p]
                    noisy_acc = svm_accuracy(cfg, base.features, noisy[train], train, y[~train])
                    fixed_acc = svm_accuracy(cfg, base.features, fixed[train], train, y[~train])
                    out["accuracy"].append({"mode": mode, "rate": rate, "seed": seed, "noisy": noisy_acc, "accepted": fixed_acc,
                                            "clean": clean_acc})
                print(json.dumps({"set": out["set"], **row}), flush=True)
    return out


def timing(images: str, work: Path, n: int) -> dict:
    """Median wall time of the doctor step on a run directory of ``n`` images with cached features and hashes."""
    from imgclf.doctor.step import doctor
    from imgclf.util.files import read_csv, write_csv

    cfg, rd = prepared(images, work)
    sub = work / "runs" / f"timing-{n}"
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir(parents=True)
    for name in ("features.npz", "hashes.npz", "config.json"):
        if (rd / name).exists():
            shutil.copy(rd / name, sub / name)
    rows = read_csv(rd / "split.csv")
    keep = sorted(np.random.default_rng(0).permutation(len(rows))[:n])
    write_csv(sub / "split.csv", list(rows[0]), ([rows[i][c] for c in rows[0]] for i in keep))
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        doctor(cfg, sub)
        walls.append(time.perf_counter() - t0)
    return {"images": len(keep), "median_s": round(statistics.median(walls), 3), "runs_s": [round(w, 3) for w in walls],
            "load_average": os.getloadavg()}


def summarise(results: list[dict], rates: list[float]) -> None:
    print("\n| set | noise | rate | baseline p@k | doctor p@k | doctor recall / precision at its cut-off | flagged / flips | AUROC base / doctor |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for mode in ("uniform", "classcond"):
            for rate in rates:
                rs = [x for x in r["runs"] if x["mode"] == mode and x["rate"] == rate]
                if not rs:
                    continue
                m = lambda f: statistics.mean(f(x) for x in rs)  # noqa: E731
                base = lambda key: "—" if rs[0]["baseline"] is None else f"{m(lambda x: x['baseline'][key]):.3f}"  # noqa: E731
                print(f"| {r['set']} | {mode} | {rate:.0%} | {base('p_at_k')} | "
                      f"**{m(lambda x: x['doctor']['p_at_k']):.3f}** | {m(lambda x: x['doctor']['recall']):.3f} / "
                      f"{m(lambda x: x['doctor']['precision']):.3f} | {m(lambda x: x['doctor']['flagged']):.1f} / "
                      f"{m(lambda x: x['flips']):.1f} | {base('auroc')} / {m(lambda x: x['doctor']['auroc']):.3f} |")
    print("\n| set | noise | accuracy clean | with noise | after accepting | recovered |")
    print("|---|---|---|---|---|---|")
    for r in results:
        for mode in ("uniform", "classcond"):
            rs = [x for x in r["accuracy"] if x["mode"] == mode]
            if not rs:
                continue
            clean, noisy, fixed = (statistics.mean(x[k] for x in rs) for k in ("clean", "noisy", "accepted"))
            rec = (fixed - noisy) / (clean - noisy) if clean > noisy else float("nan")
            print(f"| {r['set']} | {mode} {rs[0]['rate']:.0%} | {clean:.2%} | {noisy:.2%} | {fixed:.2%} | {rec:.0%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", help="images folders, or 'demo'")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--modes", nargs="+", default=["uniform", "classcond"], choices=["uniform", "classcond"])
    ap.add_argument("--work", type=Path, default=None, help="folder for run directories and the feature cache (kept)")
    ap.add_argument("--timing-images", type=int, default=1000, help="images of the timing run (0: no timing)")
    ap.add_argument("--timing-set", default=None, help="images folder of the timing run (default: the largest set)")
    ap.add_argument("--rank", choices=["self_confidence", "margin", "alternative"], default="self_confidence",
                    help="the doctor's order of the images for p@k and AUROC")
    ap.add_argument("--flip", action="store_true", help="features averaged with the mirror image's")
    ap.add_argument("--also", action="append", default=[], metavar="NAME@RES",
                    help="another featurizer whose own out-of-fold probabilities are averaged in (repeatable)")
    ap.add_argument("--detection-only", action="store_true", help="the doctor's detection only: no baseline, no accuracy runs")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="doctor-bench-"))
    results = [one_set(images, work, args.rates, args.seeds, args.modes, args.rank, args.flip, args.also, args.detection_only)
               for images in args.images]
    summarise(results, args.rates)
    out = {"results": results}
    if args.timing_images:
        biggest = args.timing_set or max(args.images, key=lambda s: next(r["images"] for r in results if r["set"] == Path(s).name))
        out["timing"] = timing(biggest, work, args.timing_images)
        print(f"\ndoctor step on {out['timing']['images']} cached images: median {out['timing']['median_s']} s "
              f"(runs {out['timing']['runs_s']}, load average {out['timing']['load_average']})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
