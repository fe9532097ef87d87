"""Findings on images a person already decided on are returned apart (decided_findings.csv), not lost."""
from __future__ import annotations

import numpy as np

from imgclf.config.settings import DoctorConfig
from imgclf.doctor.examine import Images, examine


def _images(reviewed: dict[str, str]) -> Images:
    """Three tight clusters of 30 images; image 0 (cluster a) is labelled b, image 1 (a) is far from everything."""
    rng = np.random.default_rng(0)
    centres = np.eye(3, 16) * 10
    x = np.concatenate([centres[k] + rng.normal(0, 0.3, (30, 16)) for k in range(3)])
    x[1] = rng.normal(0, 0.3, 16) + 10 * np.eye(1, 16, 9)[0]  # another direction: an outlier
    labels = [c for c in "abc" for _ in range(30)]
    labels[0] = "b"
    rels = [f"{lb}/{i:03d}.jpg" for i, lb in enumerate(labels)]
    splits = ["test" if i % 5 == 0 else "train" for i in range(90)]
    return Images(paths=[f"/d/{r}" for r in rels], rels=rels, labels=labels, splits=splits, features=x, reviewed=reviewed)


def _examine(images: Images):
    return examine(images, ["a", "b", "c"], DoctorConfig(), input_size=224, max_distance=0)


def test_a_kept_or_relabelled_image_is_listed_as_decided_not_as_a_finding():
    open_ = _examine(_images({}))
    assert "b/000.jpg" in {r["rel"] for r in open_.label_issues}
    assert "a/001.jpg" in {r["rel"] for r in open_.outliers}
    assert open_.decided == []

    found = _examine(_images({"b/000.jpg": "relabel", "a/001.jpg": "keep"}))
    assert "b/000.jpg" not in {r["rel"] for r in found.label_issues}
    assert "a/001.jpg" not in {r["rel"] for r in found.outliers}
    decided = {(r["rel"], r["kind"]): r for r in found.decided}
    assert decided[("b/000.jpg", "label")]["suggested_label"] == "a"
    assert decided[("b/000.jpg", "label")]["decision"] == "relabel"
    assert decided[("a/001.jpg", "outlier")]["decision"] == "keep"
    assert found.health["dismissed"] == len(found.decided)
