"""Web UI results benchmark: how long the results page's data takes, by how its images are found.

    python benchmarks/ui_results.py DIR --work W [--repeats 5] [--json out.json]

``DIR`` is an images folder (or ``demo``). The set is prepared and featurized once by imgclf
(features cached in ``W``); a copy of that run directory is trained (svm), evaluated and examined
by the doctor (which writes oof_predictions.csv). Then ``RunResults.payload`` (what
``GET /ui/api/results`` answers) is timed, median of ``--repeats``, for the test and the train
side, with the dataset opened:

- ``original``: the folder the run used (images found by absolute path: the baseline);
- ``copy``: a copy of it elsewhere (found by the path relative to the images folder);
- ``renamed``: a copy with every file renamed (found by content: the SHA-256 index is built on the
  first answer and reused after).

``cold`` is a fresh server's first answer (the folder scan and the CSV read included), ``warm`` the
median of the next ones.

It also times writing oof_predictions.csv (the doctor's added cost).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from datasets import prepared


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4)


def bench(images: str, work: Path, repeats: int) -> dict:
    from imgclf.data.split import SplitRow
    from imgclf.doctor.step import doctor
    from imgclf.pipeline.steps import evaluate, train
    from imgclf.rundir.layout import RunDir
    from imgclf.ui.catalog import Catalog
    from imgclf.ui.results import RunResults

    cfg, base_rd = prepared(images, work)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        tmp = Path(tmp)
        rd = tmp / "run"
        shutil.copytree(base_rd, rd, ignore=shutil.ignore_patterns("model", "*.png", "report.html"))
        train(cfg, rd)
        evaluate(cfg, rd)
        doctor(cfg, rd)
        folder = cfg.images_dir()
        copy = tmp / "copy"
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("annotations.csv", ".annotations.csv.lock"))
        renamed = tmp / "renamed"
        shutil.copytree(copy, renamed)
        for f in [p for p in renamed.rglob("*") if p.is_file()]:
            f.rename(f.with_name("r_" + f.name))

        out: dict = {"images": images, "n_test": 0, "n_train": 0}
        for name, root in (("original", folder), ("copy", copy), ("renamed", renamed)):
            for side in ("test", "train"):
                results = RunResults(rd, Catalog(root))  # a fresh server: the first answer scans the folder
                t0 = time.perf_counter()
                payload = results.payload(side)
                out[f"{name}_{side}_cold_s"] = round(time.perf_counter() - t0, 4)
                out[f"{name}_{side}_warm_s"] = _median_s(lambda: results.payload(side), repeats)
                found = sum(it["dataset_path"] is not None for it in payload["items"])
                out[f"{name}_{side}_found"] = f"{found}/{len(payload['items'])}"
                out[f"n_{side}"] = len(payload["items"])
        r = RunDir(rd)
        labels, rows = r.read_oof_predictions()
        split_rows = [SplitRow(x["path"], x["label"], x.get("split", "train"), x["rel"]) for x in rows]
        proba = np.array([[x["scores"][c] for c in labels] for x in rows])
        out["write_oof_predictions_s"] = _median_s(lambda: r.write_oof_predictions(split_rows, proba, labels), repeats)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--work", type=Path, required=True, help="folder for run directories and the caches (kept)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = [bench(images, args.work, args.repeats) for images in args.images]
    for r in results:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
