"""Two iterations side by side on their test images: per-class deltas and the images whose answer changed.

Two runs are comparable only on the same test images with the same test labels. When the test
split or a test label differs, the comparison says so (which images were added, removed or
relabelled) and scores both runs on the images they share, with the LATER run's labels: the
later labels are the ones the user corrected, so both models are held to the same yardstick.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..rundir.layout import RunDir
from ..util.errors import NotFound
from ..util.files import read_json
from .metrics import per_class_scores


def _test_rows(rd: RunDir) -> tuple[dict[str, dict[str, Any]], list[str]]:
    if not rd.predictions.exists() or not rd.metrics.exists():
        raise NotFound(f"{rd.root.name} has no test results (no predictions.csv): a draft or a run never evaluated "
                       "cannot be compared on the test split", reason="no_test_results")
    labels = list(read_json(rd.metrics)["labels"])
    rows = rd.read_predictions(labels)
    return {(r["rel"] or r["path"]): {**r, "i": i} for i, r in enumerate(rows)}, labels


def _scores(truth: list[str], predicted: list[str], labels: list[str]) -> dict[str, Any]:
    index = {c: i for i, c in enumerate(labels)}
    cm = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, predicted):
        if t in index and p in index:
            cm[index[t]][index[p]] += 1
    per = per_class_scores(cm, labels)
    n = len(truth)
    correct = sum(t == p for t, p in zip(truth, predicted))
    recalls = [v for v in per["per_class_recall"].values() if v is not None]
    return {"accuracy": correct / n if n else None,
            "class_avg_accuracy": sum(recalls) / len(recalls) if recalls else None,
            "precision": per["per_class_precision"], "recall": per["per_class_recall"], "f1": per["per_class_f1"],
            "support": per["per_class_support"]}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 6)


def compare_runs(before: str | Path, after: str | Path) -> dict[str, Any]:
    """``after`` against ``before`` on their shared test images, scored with ``after``'s labels."""
    rd_a, rd_b = RunDir(Path(before).resolve()), RunDir(Path(after).resolve())
    rows_a, labels_a = _test_rows(rd_a)
    rows_b, labels_b = _test_rows(rd_b)
    shared = [k for k in rows_b if k in rows_a]
    only_before = sorted(k for k in rows_a if k not in rows_b)
    only_after = sorted(k for k in rows_b if k not in rows_a)
    relabelled = [{"image": k, "before": rows_a[k]["label"], "after": rows_b[k]["label"]}
                  for k in shared if rows_a[k]["label"] != rows_b[k]["label"]]
    labels = labels_b + [c for c in labels_a if c not in labels_b]
    truth = [rows_b[k]["label"] for k in shared]
    score_a = _scores(truth, [rows_a[k]["predicted"] for k in shared], labels)
    score_b = _scores(truth, [rows_b[k]["predicted"] for k in shared], labels)
    per_class = [{"class": c, **{f"{m}_before": score_a[m][c] for m in ("precision", "recall", "f1")},
                  **{f"{m}_after": score_b[m][c] for m in ("precision", "recall", "f1")},
                  **{f"{m}_delta": _delta(score_a[m][c], score_b[m][c]) for m in ("precision", "recall", "f1")},
                  "support": score_b["support"][c]} for c in labels]
    fixed, broken, changed = [], [], []
    for k in shared:
        a, b = rows_a[k], rows_b[k]
        if a["predicted"] == b["predicted"]:
            continue
        t = b["label"]
        item = {"image": k, "path": b["path"], "label": t, "before": a["predicted"], "after": b["predicted"],
                "score_before": round(float(a["score"]), 6), "score_after": round(float(b["score"]), 6), "result": b["i"]}
        (fixed if b["predicted"] == t and a["predicted"] != t else
         broken if a["predicted"] == t and b["predicted"] != t else changed).append(item)
    comparable = not (only_before or only_after or relabelled)
    return {"before": rd_a.root.name, "after": rd_b.root.name, "comparable": comparable,
            "same_images": not (only_before or only_after), "same_labels": not relabelled,
            "only_before": only_before, "only_after": only_after, "relabelled": relabelled,
            "n_shared": len(shared), "scored_on": "the later iteration's labels, on the test images both share",
            "accuracy_before": score_a["accuracy"], "accuracy_after": score_b["accuracy"],
            "accuracy_delta": _delta(score_a["accuracy"], score_b["accuracy"]),
            "class_avg_accuracy_before": score_a["class_avg_accuracy"],
            "class_avg_accuracy_after": score_b["class_avg_accuracy"],
            "class_avg_accuracy_delta": _delta(score_a["class_avg_accuracy"], score_b["class_avg_accuracy"]),
            "per_class": per_class, "fixed": fixed, "broken": broken, "changed": changed}
