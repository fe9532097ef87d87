"""The data doctor on one dataset's cached features: label issues, outliers, duplicates, health.

:func:`examine` takes plain arrays (the images, their labels and split, features, dhash codes,
sizes, and what a person has already reviewed) and returns :class:`Findings`: the rows of
label_issues.csv, outliers.csv and duplicates.csv, and the "dataset health" summary. Reading and
writing the run directory is :mod:`imgclf.doctor.step`'s job.

A person's review is final: an image whose label a person set or confirmed (``relabel`` or
``keep`` in annotations.csv) is not listed again as a label issue, and one marked ``keep`` is not
listed for anything. Such findings are counted as ``dismissed`` and returned apart, as ``decided``
rows (kind ``label``, ``outlier``, ``duplicate`` or ``leakage``, the image, the suggestion and the
decision), so that the Review view can show them as decided instead of losing them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from ..config.settings import DoctorConfig
from .labels import find_label_issues
from .outliers import find_outliers
from .pairs import find_duplicates

REVIEWED_LABEL = ("relabel", "keep")  # annotation actions that settle an image's label


@dataclass
class Images:
    """The usable images of a run, in one order: every array has one row per image."""

    paths: list[str]
    rels: list[str]
    labels: list[str]  # given (current) label
    splits: list[str]  # "train" | "test"
    features: np.ndarray  # (N, D)
    codes: np.ndarray | None = None  # (N, 32) packed dhash codes, or None
    sizes: np.ndarray | None = None  # (N, 2) width, height in pixels; 0 where unknown
    reviewed: dict[str, str] = field(default_factory=dict)  # rel path -> current annotation action


@dataclass
class Findings:
    label_issues: list[dict[str, Any]]
    outliers: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]
    health: dict[str, Any]
    self_confidence: np.ndarray  # (N,) out-of-fold probability of every image's given label
    proba: np.ndarray | None = None  # (N, K) the out-of-fold probabilities of every image (classes in examine's order)
    decided: list[dict[str, Any]] = field(default_factory=list)  # findings a person already settled (decided_findings.csv)


def examine(images: Images, classes: Sequence[str], cfg: DoctorConfig, *, input_size: int, max_distance: int,
            seed: int = 0) -> Findings:
    """Every finding of the doctor on ``images`` (see the module docstring)."""
    t0 = time.perf_counter()
    n = len(images.paths)
    classes = list(classes)
    y = np.array([classes.index(lb) for lb in images.labels], dtype=int)
    train = np.array([s == "train" for s in images.splits])
    # The matrices are small (N x 128 to N x N): one BLAS thread is as fast on an idle machine, and
    # several times faster than two spinning threads on a busy 2-core one.
    with threadpool_limits(limits=1, user_api="blas"):
        issues = find_label_issues(images.features, y, len(classes), folds=cfg.folds, c=cfg.c, components=cfg.components,
                                   partitions=cfg.partitions, rounds=cfg.rounds, seed=seed)
        far = find_outliers(images.features, train, neighbors=cfg.outlier_neighbors, iqr=cfg.outlier_iqr)
        pairs = find_duplicates(images.features, images.labels, images.splits, cosine=cfg.duplicate_cosine,
                                codes=images.codes, max_distance=max_distance)

    keep = {rel for rel, action in images.reviewed.items() if action == "keep"}
    settled = {rel for rel, action in images.reviewed.items() if action in REVIEWED_LABEL}
    reason = {int(i): "confident_learning" for i in np.flatnonzero(issues.flagged)}
    suggested = {i: classes[int(issues.suggested[i])] for i in reason}
    for p in pairs:  # the same picture with two labels: the less likely label is the issue
        if p.kind == "cross_class":
            worse, other = (p.a, p.b) if issues.self_confidence[p.a] <= issues.self_confidence[p.b] else (p.b, p.a)
            if worse not in reason:
                reason[worse] = "cross_class_duplicate"
                suggested[worse] = images.labels[other]
    listed = sorted((i for i in reason if images.rels[i] not in settled), key=lambda i: (issues.self_confidence[i], i))
    label_rows = [{"path": images.paths[i], "rel": images.rels[i], "split": images.splits[i],
                   "given_label": images.labels[i], "suggested_label": suggested[i],
                   "score": round(float(issues.self_confidence[i]), 6), "rank": r, "reason": reason[i]}
                  for r, i in enumerate(listed, 1)]
    far_idx = sorted((int(i) for i in np.flatnonzero(far.flagged) if images.rels[i] not in keep),
                     key=lambda i: (-far.distance[i], i))
    outlier_rows = [{"path": images.paths[i], "rel": images.rels[i], "split": images.splits[i], "label": images.labels[i],
                     "distance": round(float(far.distance[i]), 6), "threshold": round(far.threshold, 6), "rank": r}
                    for r, i in enumerate(far_idx, 1)]
    shown_pairs = [p for p in pairs if images.rels[p.a] not in keep and images.rels[p.b] not in keep]
    dup_rows = [{"path_a": images.paths[p.a], "path_b": images.paths[p.b], "rel_a": images.rels[p.a],
                 "rel_b": images.rels[p.b], "label_a": images.labels[p.a], "label_b": images.labels[p.b],
                 "split_a": images.splits[p.a], "split_b": images.splits[p.b], "kind": p.kind, "leak": int(p.leak),
                 "cosine": "" if p.cosine is None else round(p.cosine, 6),
                 "dhash_distance": "" if p.dhash_distance is None else p.dhash_distance} for p in shown_pairs]

    counts = {c: int((y == j).sum()) for j, c in enumerate(classes)}
    nonzero = [v for v in counts.values() if v]
    small = None
    if images.sizes is not None:
        known = images.sizes.min(axis=1) > 0
        small = int((known & (images.sizes.min(axis=1) < input_size)).sum())
    health = {
        "images": n, "train": int(train.sum()), "test": int(n - train.sum()),
        "estimated_label_error_rate": round(issues.estimated_errors / n, 6) if n else None,
        "estimated_label_errors": round(issues.estimated_errors, 2),
        "label_issues": len(label_rows), "label_issues_test": sum(r["split"] == "test" for r in label_rows),
        "outliers": len(outlier_rows), "outlier_threshold": round(far.threshold, 6),
        "duplicate_pairs": len(dup_rows), "within_class_pairs": sum(r["kind"] == "within_class" for r in dup_rows),
        "cross_class_pairs": sum(r["kind"] == "cross_class" for r in dup_rows),
        "leak_pairs": sum(r["leak"] for r in dup_rows),
        "dismissed": (len(reason) - len(label_rows)) + (int(far.flagged.sum()) - len(outlier_rows)) + (len(pairs) - len(shown_pairs)),
        "class_counts": counts, "class_imbalance": round(max(nonzero) / min(nonzero), 3) if nonzero else None,
        "images_below_input_size": small, "input_size": input_size,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    decided = _decided(images, reason, suggested, settled, [int(i) for i in np.flatnonzero(far.flagged)],
                       [p for p in pairs if p not in shown_pairs])
    return Findings(label_rows, outlier_rows, dup_rows, health, issues.self_confidence, issues.proba, decided)


def _decided(images: Images, reason: dict[int, str], suggested: dict[int, str], settled: set[str], far: list[int],
             kept_pairs: list) -> list[dict[str, Any]]:
    """The findings left out because a person already decided on the image: one row per (image, kind)."""
    rows = []

    def add(i: int, kind: str, suggestion: str) -> None:
        rows.append({"kind": kind, "path": images.paths[i], "rel": images.rels[i], "split": images.splits[i],
                     "given_label": images.labels[i], "suggested_label": suggestion,
                     "decision": images.reviewed[images.rels[i]]})

    for i in sorted(reason):
        if images.rels[i] in settled:
            add(i, "label", suggested[i])
    for i in far:
        if images.reviewed.get(images.rels[i]) == "keep":
            add(i, "outlier", "exclude")
    for p in kept_pairs:
        i = p.a if images.reviewed.get(images.rels[p.a]) == "keep" else p.b
        add(i, "leakage" if p.leak else "duplicate", "exclude")
    return rows
