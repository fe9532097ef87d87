"""Label-next benchmark: simulated labelling with every selection strategy against random selection.

    python benchmarks/label_next.py DIR [DIR ...] [--seeds 0 1 2 3 4] [--work W] [--json out.json] [--plot out.png]

``DIR`` is an images folder, or ``demo`` for the embedded generated set. Each set is prepared and
featurized once by imgclf (efficientnet_lite0 at 224 px, features cached in ``W``). The train split
is the pool whose labels are hidden, the test split measures. For each seed: ``--start`` images per
class labelled at random, then batches of ``--batch`` chosen by each strategy (the labels revealed),
``--rounds`` times; after every batch the classifier of a run (the SVM, C by CV on the labelled
images, calibrated temperature) is refit and its test accuracy recorded. All strategies of a seed
start from the same labelled images. Reported per set: the mean accuracy curves (and a PNG plot),
and the labels each strategy needs to reach random selection's final accuracy, as a share of
random's labels.

``--timing-pool N`` then times one Label next round (refit, i.e. the quick update, + suggest with the draft, as the
page makes them) on a run
of 40 images per class of the first ``--timing-sets`` folder whose pool holds N images with cached
features, taken from the rest of that folder and the other ``--timing-sets`` folders (median of 5).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from datasets import prepared

STRATEGIES = ("random", "density", "margin", "entropy", "kcenter", "hybrid")


def load_set(images: str, work: Path) -> dict:
    from imgclf.rundir.layout import RunDir

    cfg, rd = prepared(images, work)
    rd = RunDir(rd)
    train_rows, x_train = rd.split_features("train")
    test_rows, x_test = rd.split_features("test")
    classes = sorted({r.label for r in train_rows})
    return {"name": rd.root.name, "cfg": cfg, "classes": classes, "x_pool": x_train, "x_test": x_test,
            "y_pool": np.array([classes.index(r.label) for r in train_rows]),
            "y_test": np.array([classes.index(r.label) for r in test_rows])}


def fit(cfg, x: np.ndarray, y: np.ndarray, seed: int):
    from imgclf.classifier.svm import SvmClassifier

    return SvmClassifier.from_config(cfg.svm, seed).fit(x, y)


def simulate(s: dict, strategy: str, seed: int, start: int, batch: int, rounds: int, candidates: int) -> list[tuple[int, float]]:
    """(labels, test accuracy) after the start and after every batch."""
    from imgclf.labelnext import select

    rng = np.random.default_rng(seed)
    y = s["y_pool"]
    labelled = np.concatenate([rng.choice(np.flatnonzero(y == k), start, replace=False) for k in range(len(s["classes"]))])
    curve = []
    for r in range(rounds + 1):
        clf = fit(s["cfg"], s["x_pool"][labelled], y[labelled], seed)
        curve.append((len(labelled), float((clf.predict(s["x_test"]) == s["y_test"]).mean())))
        if r == rounds:
            break
        rest = np.setdiff1d(np.arange(len(y)), labelled)
        proba = np.zeros((len(rest), len(s["classes"])))
        proba[:, clf.classes_] = clf.predict_proba(s["x_pool"][rest])
        pick = select(strategy, proba, s["x_pool"][rest], s["x_pool"][labelled], batch, seed=seed * 1000 + r,
                      candidates=candidates)
        labelled = np.concatenate([labelled, rest[pick.indices]])
    return curve


def labels_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((n for n, acc in curve if acc >= target - 1e-9), None)


def one_set(images: str, work: Path, seeds: list[int], strategies: list[str], start: int, batch: int, rounds: int,
            candidates: int) -> dict:
    s = load_set(images, work)
    out = {"set": s["name"], "pool": len(s["y_pool"]), "test": len(s["y_test"]), "classes": len(s["classes"]), "curves": {}}
    for strategy in strategies:
        out["curves"][strategy] = []
        for seed in seeds:
            t0 = time.perf_counter()
            curve = simulate(s, strategy, seed, start, batch, rounds, candidates)
            out["curves"][strategy].append(curve)
            print(json.dumps({"set": s["name"], "strategy": strategy, "seed": seed, "final": curve[-1],
                              "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    return out


def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    return [(curves[0][i][0], statistics.mean(c[i][1] for c in curves)) for i in range(len(curves[0]))]


def needs(result: dict, strategy: str) -> dict:
    """Labels ``strategy`` needs to reach random's final accuracy, as a share of random's labels: on the
    mean curves, and the mean of per-seed shares (a seed that never reaches it counts 1.0, and is counted)."""
    rand = result["curves"]["random"]
    budget = rand[0][-1][0]
    target = mean_curve(rand)[-1][1]
    reached = labels_to_reach(mean_curve(result["curves"][strategy]), target)
    shares, missed = [], 0
    for c_rand, c in zip(rand, result["curves"][strategy]):
        n = labels_to_reach(c, c_rand[-1][1])
        missed += n is None
        shares.append((n if n is not None else budget) / budget)
    return {"labels": reached, "share_mean_curve": None if reached is None else reached / budget,
            "share_per_seed": statistics.mean(shares), "missed_seeds": missed, "random_labels": budget,
            "random_final": target, "final": mean_curve(result["curves"][strategy])[-1][1]}


def summarise(results: list[dict], strategies: list[str]) -> dict:
    print("\n| set (pool, test, classes) | strategy | accuracy at start | final accuracy | labels to reach random's final | "
          "share of random's labels (mean curve / per seed) |")
    print("|---|---|---|---|---|---|")
    overall: dict[str, list[float]] = {s: [] for s in strategies}
    for r in results:
        for strategy in strategies:
            n = needs(r, strategy)
            overall[strategy].append(n["share_per_seed"])
            mc = mean_curve(r["curves"][strategy])
            share = "not reached" if n["labels"] is None else f"{n['share_mean_curve']:.0%}"
            print(f"| {r['set']} ({r['pool']}, {r['test']}, {r['classes']}) | {strategy} | {mc[0][1]:.2%} | {mc[-1][1]:.2%} | "
                  f"{n['labels'] or '—'} of {n['random_labels']} | {share} / {n['share_per_seed']:.0%}"
                  f"{missed(n)} |")
    means = {s: statistics.mean(v) for s, v in overall.items()}
    print("\nmean share of random's labels over sets and seeds: " + ", ".join(f"{s} {v:.0%}" for s, v in means.items()))
    return means


def missed(n: dict) -> str:
    return f" ({n['missed_seeds']} seeds not reached)" if n["missed_seeds"] else ""


def plot(results: list[dict], strategies: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, r in zip(axes[0], results):
        for strategy in strategies:
            mc = mean_curve(r["curves"][strategy])
            ax.plot([n for n, _ in mc], [100 * a for _, a in mc], marker=".", label=strategy,
                    linestyle="--" if strategy == "random" else "-", color="black" if strategy == "random" else None)
        ax.set_title(f"{r['set']} ({r['classes']} classes)")
        ax.set_xlabel("labelled images")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=64)


def timing(work: Path, sets: list[str], pool_size: int, per_class: int = 40, repeats: int = 5) -> dict:
    """Median wall time of one Label next round (the quick update, then suggest 50 with the draft; the library calls
    the page makes) on a run of ``per_class`` images per class of ``sets[0]`` whose pool holds ``pool_size`` images
    with cached features (the rest of ``sets[0]``, then the other sets)."""
    import shutil

    from imgclf.api import run
    from imgclf.config.settings import load_config
    from imgclf.data.annotations import record
    from imgclf.labelnext.quick import quick_update
    from imgclf.labelnext.step import suggest
    from imgclf.rundir.layout import RunDir

    sources = []
    for name in sets:
        sources += RunDir(prepared(name, work)[1]).split_rows()
    labelled = str(Path(sets[0]).resolve()) + os.sep
    folder = work / "label-next-timing" / "images"
    shutil.rmtree(folder.parent, ignore_errors=True)
    taken: dict[str, int] = {}
    pool = []
    for r in sorted(sources, key=lambda r: r.path):
        if r.path.startswith(labelled) and taken.get(r.label, 0) < per_class:
            taken[r.label] = taken.get(r.label, 0) + 1
            (folder / r.label).mkdir(parents=True, exist_ok=True)
            (folder / r.label / Path(r.path).name).symlink_to(r.path)
        else:
            pool.append(r.path)
    (folder / "_unlabeled").mkdir(parents=True)
    for i, p in enumerate(pool[:pool_size]):
        (folder / "_unlabeled" / f"{i:05d}{Path(p).suffix}").symlink_to(p)
    cfg = load_config(None, [f'data.root="{work / "data"}"', f'data.images="{folder}"', "tracking.enabled=false",
                             "doctor.enabled=false"])
    rd = folder.parent / "run"
    run(cfg, rd, progress=False)
    t0 = time.perf_counter()
    first = suggest(cfg, rd, n=50)
    first_s = time.perf_counter() - t0
    walls, refits, suggests = [], [], []
    rows = first["rows"]
    for _ in range(repeats):
        record(folder, [(r["rel"], "", "label", r["predicted"]) for r in rows[:10]])
        t0 = time.perf_counter()
        rd = Path(quick_update(rd, folder)["run"])  # Label next goes on with the draft
        t1 = time.perf_counter()
        rows = suggest(cfg, rd, n=50)["rows"]
        t2 = time.perf_counter()
        walls.append(t2 - t0)
        refits.append(t1 - t0)
        suggests.append(t2 - t1)
    out = {"pool": min(pool_size, len(pool)), "labelled": sum(taken.values()), "train": len(RunDir(rd).split_rows("train")),
           "first_suggest_s": round(first_s, 2), "round_median_s": round(statistics.median(walls), 3),
           "refit_median_s": round(statistics.median(refits), 3), "suggest_median_s": round(statistics.median(suggests), 3),
           "rounds_s": [round(w, 3) for w in walls], "load_average": os.getloadavg()}
    print(f"\none Label next round (refit + suggest 50) with {out['pool']} pool images, {out['train']} train images: "
          f"median {out['round_median_s']} s (refit {out['refit_median_s']} s, suggest {out['suggest_median_s']} s; "
          f"first suggest, featurizing the pool from the cache: {out['first_suggest_s']} s; load average {out['load_average']})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", help="images folders, or 'demo'")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--start", type=int, default=4, help="images per class labelled at the start")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--candidates", type=int, default=None, help="hybrid's candidates factor (default: the library's)")
    ap.add_argument("--work", type=Path, default=None, help="folder for run directories and the feature cache (kept)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None, help="PNG of accuracy vs labels")
    ap.add_argument("--timing-pool", type=int, default=0, help="time one round with this many pool images (0: no timing)")
    ap.add_argument("--timing-only", action="store_true", help="only the timing (no simulation)")
    ap.add_argument("--timing-sets", nargs="+", default=None,
                    help="images folders of the timing run: 40 per class of the first are labelled, the pool comes from the rest (default: the DIRs)")
    args = ap.parse_args()
    timing_sets = args.timing_sets or args.images
    from imgclf.labelnext.strategies import CANDIDATES

    if "random" not in args.strategies:
        args.strategies.insert(0, "random")
    work = args.work or Path(tempfile.mkdtemp(prefix="label-next-bench-"))
    if args.timing_only:
        print(json.dumps(timing(work, timing_sets, args.timing_pool or 2000)))
        return
    results = [one_set(i, work, args.seeds, args.strategies, args.start, args.batch, args.rounds, args.candidates or CANDIDATES)
               for i in args.images]
    means = summarise(results, args.strategies)
    if args.plot:
        plot(results, args.strategies, args.plot)
    out = {"results": results, "mean_share": means}
    if args.timing_pool:
        out["timing"] = timing(work, timing_sets, args.timing_pool)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
