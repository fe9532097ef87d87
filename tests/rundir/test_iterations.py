"""A runs folder's iterations: listed newest first with what changed, published and rolled back atomically."""
from __future__ import annotations

import os

import pytest

from imgclf.data.split import SplitRow, save_split
from imgclf.rundir.iterations import (
    PUBLISHED,
    check_iteration,
    label_changes,
    list_iterations,
    publish,
    published_run,
    read_published,
    rollback,
    rollback_target,
)
from imgclf.rundir.layout import RunDir
from imgclf.rundir.state import MADE_BY
from imgclf.util.errors import NotFound
from imgclf.util.files import write_json


def _iteration(runs, name, labels: dict[str, tuple[str, str]], when: float, metrics=None, model=True):
    root = runs / name
    root.mkdir(parents=True)
    (root / MADE_BY).write_text("{}")
    os.utime(root / MADE_BY, (when, when))
    save_split(str(RunDir(root).split), [SplitRow(f"/d/{k}", lab, split, k) for k, (split, lab) in labels.items()])
    if metrics is not None:
        write_json(RunDir(root).metrics, metrics)
    if model:
        (root / "model").mkdir()
        (root / "model" / "bundle.json").write_text("{}")
    return root


def test_listed_newest_first_with_labels_changed_and_test_changes(tmp_path):
    runs = tmp_path / "runs"
    base = {"a.jpg": ("train", "cat"), "b.jpg": ("test", "dog"), "c.jpg": ("train", "dog")}
    _iteration(runs, "one", base, 1000, {"accuracy": 0.5, "class_avg_accuracy": 0.4,
                                         "calibration": {"after": {"ece": 0.07}}, "wall_seconds": 12.5})
    _iteration(runs, "two", {**base, "a.jpg": ("train", "dog")}, 2000, {"accuracy": 0.75})
    _iteration(runs, "three", {**base, "a.jpg": ("train", "dog"), "b.jpg": ("test", "cat")}, 3000,
               {"draft": True, "cv_accuracy": 0.8, "parent": {"name": "two", "run": "/x/two"}})
    (runs / "not-a-run").mkdir()
    (runs / "notes.txt").write_text("x")
    its = list_iterations(runs)
    assert [it.name for it in its] == ["three", "two", "one"]
    three, two, one = its
    assert one.labels_changed is None and one.accuracy == 0.5 and one.ece == 0.07 and one.wall_s == 12.5
    assert two.labels_changed == 1 and two.test_changed == []
    assert three.state == "draft" and three.cv_accuracy == 0.8 and three.accuracy is None and three.parent == "two"
    assert three.labels_changed == 1 and three.test_changed == ["b.jpg"]


def test_label_changes_count_added_and_removed_images():
    n, test = label_changes({"a": ("train", "x"), "t": ("test", "x")}, {"a": ("train", "x"), "new": ("test", "y")})
    assert n == 2 and test == ["new", "t"]


def test_publish_and_rollback_walk_back_through_the_publications(tmp_path):
    runs = tmp_path / "runs"
    for i, name in enumerate(("a", "b", "c")):
        _iteration(runs, name, {"x.jpg": ("train", "cat")}, 1000 + i)
    assert published_run(runs) is None
    with pytest.raises(NotFound):
        rollback(runs)
    for name in ("a", "b", "c"):
        publish(runs, name)
    assert read_published(runs)["current"] == "c" and published_run(runs) == runs.resolve() / "c"
    assert rollback_target(runs) == "b"
    assert rollback(runs)["current"] == "b"
    assert rollback(runs)["current"] == "a"
    with pytest.raises(NotFound):
        rollback(runs)
    assert [h["action"] for h in read_published(runs)["history"]] == ["publish"] * 3 + ["rollback"] * 2
    assert [it.name for it in list_iterations(runs) if it.published] == ["a"]


def test_only_iterations_with_a_model_inside_the_folder_are_published(tmp_path):
    runs = tmp_path / "runs"
    _iteration(runs, "ok", {"x.jpg": ("train", "cat")}, 1000)
    _iteration(runs, "nomodel", {"x.jpg": ("train", "cat")}, 1001, model=False)
    for bad in ("nomodel", "../ok", "", "missing", str(runs / "ok")):
        with pytest.raises(NotFound):
            publish(runs, bad)
    assert not (runs / PUBLISHED).exists()
    assert check_iteration(runs, "nomodel", need_model=False).root == (runs / "nomodel").resolve()
