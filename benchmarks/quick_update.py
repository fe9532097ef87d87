"""Quick update benchmark: the wall time of a draft iteration made on the current labels of a featurized dataset.

    python benchmarks/quick_update.py DATA_DIR WORK_DIR [--repeats 7] [--relabel 5] [--json out.json]

``WORK_DIR/images`` holds DATA_DIR's images hard-linked (copied where links are not possible): corrections go
to its annotations.csv, never to DATA_DIR. ``WORK_DIR/data`` is the data root; the parent iteration
(``imgclf run --preset fast``, tracking off) runs there once, when ``WORK_DIR/data/runs/<name>/parent`` has
no model. Then, in this process: one untimed quick update (it loads scikit-learn and joblib, as the UI
server's first one does), and ``--repeats`` times: ``--relabel`` more train images relabelled to another
class (annotations.csv), the label changes counted (what the UI's bar asks), and one quick update timed
(:func:`imgclf.labelnext.quick.quick_update`: what POST /ui/api/quick-update and Label next's Refit run),
with its CPU time (every thread of the process: what other jobs on a shared machine do not change much).
Prints the median, min and max of each, the first call's time and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def linked_copy(src: Path, dst: Path) -> Path:
    """``src``'s tree at ``dst``, files hard-linked (copied across file systems); annotations.csv left out."""
    if not dst.exists():
        def link(s: str, d: str) -> None:
            try:
                os.link(s, d)
            except OSError:
                shutil.copy2(s, d)

        shutil.copytree(src, dst, copy_function=link, ignore=shutil.ignore_patterns("annotations.csv"))
    (dst / "annotations.csv").unlink(missing_ok=True)
    return dst


def parent_run(images: Path, data: Path) -> Path:
    run = data / "runs" / images.name / "parent"
    if not (run / "model" / "manifest.json").is_file():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "imgclf", "run", "--images", str(images), "--run-dir", str(run), "--preset", "fast",
                        "--quiet", "--set", f"data.root={json.dumps(str(data))}", "--set", "tracking.enabled=false"], check=True)
        print(f"parent run: {time.perf_counter() - t0:.1f} s", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("work_dir", type=Path)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--relabel", type=int, default=5, help="train images relabelled before each quick update")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from imgclf.data.annotations import record
    from imgclf.data.split import load_split
    from imgclf.labelnext.quick import label_changes, quick_update

    images = linked_copy(args.data_dir.resolve(), args.work_dir.resolve() / args.data_dir.name)
    run = parent_run(images, args.work_dir.resolve() / "data")
    rows = [r for r in load_split(str(run / "split.csv")) if r.split != "test"]
    labels = sorted({r.label for r in rows})
    rng = np.random.default_rng(0)
    picks = [rows[i] for i in rng.choice(len(rows), args.relabel * args.repeats, replace=False)]

    t0 = time.perf_counter()
    first = quick_update(run, images)
    first_s = time.perf_counter() - t0
    shutil.rmtree(first["run"])
    times, cpu, status, drafts = [], [], [], []
    for k in range(args.repeats):
        batch = picks[k * args.relabel:(k + 1) * args.relabel]
        record(images, [(r.rel, r.label, "relabel", labels[(labels.index(r.label) + 1) % len(labels)]) for r in batch])
        t0 = time.perf_counter()
        changes = label_changes(run, images)
        status.append(time.perf_counter() - t0)
        t0, c0 = time.perf_counter(), time.process_time()
        draft = quick_update(run, images)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        drafts.append(draft)
        print(f"quick update {k + 1}: {times[-1]:.3f} s ({cpu[-1]:.2f} CPU s) · {changes.relabelled} relabelled · {draft['n_train']} train images · "
              f"cv accuracy {draft['cv_accuracy']:.4f} (class-averaged {draft['cv_class_avg_accuracy']:.4f})", flush=True)
        shutil.rmtree(draft["run"])
    (images / "annotations.csv").unlink(missing_ok=True)
    out = {"dataset": args.data_dir.name, "images": len(load_split(str(run / "split.csv"))), "train_images": drafts[-1]["n_train"],
           "classes": len(labels), "cv_folds": drafts[-1]["cv_folds"], "cpus": os.cpu_count(), "first_s": round(first_s, 3),
           "quick_update_s": {"median": round(statistics.median(times), 3), "min": round(min(times), 3), "max": round(max(times), 3),
                              "each": [round(t, 3) for t in times]},
           "quick_update_cpu_s": {"median": round(statistics.median(cpu), 3), "min": round(min(cpu), 3)},
           "label_changes_s": {"median": round(statistics.median(status), 3), "max": round(max(status), 3)},
           "parent_cv_class_avg_accuracy": drafts[-1]["parent"]["cv_class_avg_accuracy"], "load_average": os.getloadavg()}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
