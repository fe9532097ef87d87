"""Two iterations compared on their test images: deltas, fixed and broken images, a changed yardstick named."""
from __future__ import annotations

import numpy as np

from imgclf.data.split import SplitRow
from imgclf.evaluation.compare import compare_runs
from imgclf.rundir.layout import RunDir
from imgclf.util.files import write_json

LABELS = ["cat", "dog"]


def _run(root, truth: dict[str, str], predicted: dict[str, str]):
    rd = RunDir(root)
    root.mkdir(parents=True)
    rows = [SplitRow(f"/data/{k}", truth[k], "test", k) for k in truth]
    proba = np.array([[0.9, 0.1] if predicted[k] == "cat" else [0.2, 0.8] for k in truth])
    rd.write_predictions(rows, proba, LABELS)
    write_json(rd.metrics, {"labels": LABELS})
    return root


def test_fixed_and_broken_images_and_per_class_deltas(tmp_path):
    truth = {"a.jpg": "cat", "b.jpg": "cat", "c.jpg": "dog", "d.jpg": "dog"}
    a = _run(tmp_path / "a", truth, {"a.jpg": "dog", "b.jpg": "cat", "c.jpg": "dog", "d.jpg": "cat"})
    b = _run(tmp_path / "b", truth, {"a.jpg": "cat", "b.jpg": "cat", "c.jpg": "cat", "d.jpg": "dog"})
    c = compare_runs(a, b)
    assert c["comparable"] and c["n_shared"] == 4
    assert [it["image"] for it in c["fixed"]] == ["a.jpg", "d.jpg"]
    assert [it["image"] for it in c["broken"]] == ["c.jpg"]
    assert c["accuracy_before"] == 0.5 and c["accuracy_after"] == 0.75 and c["accuracy_delta"] == 0.25
    cat = next(r for r in c["per_class"] if r["class"] == "cat")
    assert cat["recall_before"] == 0.5 and cat["recall_after"] == 1.0 and cat["recall_delta"] == 0.5
    assert cat["precision_after"] == 2 / 3 and cat["support"] == 2


def test_a_changed_test_split_is_named_and_both_are_scored_on_the_later_labels(tmp_path):
    a = _run(tmp_path / "a", {"a.jpg": "cat", "b.jpg": "dog", "gone.jpg": "dog"},
             {"a.jpg": "cat", "b.jpg": "cat", "gone.jpg": "dog"})
    # b.jpg was relabelled to the prediction of the first model: a "gain" that only the yardstick made
    b = _run(tmp_path / "b", {"a.jpg": "cat", "b.jpg": "cat", "new.jpg": "dog"},
             {"a.jpg": "cat", "b.jpg": "cat", "new.jpg": "dog"})
    c = compare_runs(a, b)
    assert not c["comparable"] and not c["same_images"] and not c["same_labels"]
    assert c["only_before"] == ["gone.jpg"] and c["only_after"] == ["new.jpg"]
    assert c["relabelled"] == [{"image": "b.jpg", "before": "dog", "after": "cat"}]
    # on the shared images with the later labels both models are right on both: no gain at all
    assert c["n_shared"] == 2 and c["accuracy_before"] == c["accuracy_after"] == 1.0 and c["accuracy_delta"] == 0.0
    assert c["fixed"] == [] and c["broken"] == []
