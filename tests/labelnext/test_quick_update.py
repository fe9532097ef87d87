"""The quick update on a real run: the current labels (every correction, pool labels, exclusions) in a draft
iteration scored by cross-validation on train, with the parent's split kept and no test figure."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datagen import CLASSES, make_image

from imgclf.data.annotations import annotations_path, record
from imgclf.data.split import load_split
from imgclf.rundir.layout import RunDir
from imgclf.util.files import read_json

TEST_FIGURES = {"accuracy", "class_avg_accuracy", "per_class_accuracy", "n_test", "roc_auc", "macro_auc", "confusion_matrix",
                "roc_curves", "calibration", "coverage", "unknown"}


@pytest.fixture(scope="module")
def parent(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A copy of the shared run and its images, with a pool of 4 unlabelled images (one of them not an image)."""
    base = tmp_path_factory.mktemp("quick")
    images = Path(shutil.copytree(trained_run.parent / "images", base / "images"))
    (images / "_unlabeled").mkdir()
    rng = np.random.default_rng(5)
    for i, cls in enumerate(CLASSES):
        make_image(cls, rng).save(images / "_unlabeled" / f"p{i}_{cls}.jpg", quality=90)
    (images / "_unlabeled" / "broken.jpg").write_bytes(b"not a jpeg")
    shutil.copytree(trained_run, base / "runs" / "parent")
    return {"images": images, "run": base / "runs" / "parent"}


@pytest.fixture
def images(parent):
    """The parent's dataset folder; its annotations are wiped after each test."""
    yield parent["images"]
    annotations_path(parent["images"]).unlink(missing_ok=True)


def _rows(run: Path) -> dict[str, tuple[str, str]]:
    return {r.rel: (r.label, r.split) for r in load_split(str(Path(run) / "split.csv"))}


def test_relabelling_a_whole_class_shows_in_the_drafts_labels_and_cross_validated_scores(parent, images):
    from imgclf.labelnext.quick import quick_update

    before = _rows(parent["run"])
    stripes = sorted(rel for rel, (label, _) in before.items() if label == "stripes")
    record(images, [(rel, "stripes", "relabel", "squares") for rel in stripes])
    draft = quick_update(parent["run"], images)

    run = Path(draft["run"])
    assert run.parent == parent["run"].parent and run.name.endswith("-quick") and draft["draft"] is True
    assert draft["labels"] == ["circles", "squares"] and draft["changes"] == {"relabelled": len(stripes), "added": 0,
                                                                               "removed": 0, "total": len(stripes)}
    rows = _rows(run)
    assert {rel: rows[rel][0] for rel in stripes} == dict.fromkeys(stripes, "squares")
    assert {rel: side for rel, (_, side) in rows.items()} == {rel: side for rel, (_, side) in before.items()}, "no image changed side"
    n_train = sum(side != "test" for _, side in before.values())
    assert draft["n_train"] == n_train and draft["n_test_unscored"] == len(before) - n_train
    assert set(draft["cv_per_class_recall"]) == {"circles", "squares"}
    train_of = Counter(label for label, side in before.values() if side != "test")
    assert draft["cv_per_class_support"] == {"circles": train_of["circles"], "squares": train_of["squares"] + train_of["stripes"]}
    assert draft["cv_accuracy"] >= 0.75 and draft["cv_class_avg_accuracy"] >= 0.75
    cm = np.array(draft["cv_confusion_matrix"])
    assert cm.sum() == n_train and np.trace(cm) / n_train == pytest.approx(draft["cv_accuracy"], abs=1e-6)
    assert draft["parent"]["name"] == "parent" and draft["parent"]["cv_accuracy"] is None
    assert 0.5 < draft["parent"]["cv_class_avg_accuracy"] <= 1.0  # the parent's C search at its C
    assert _rows(parent["run"]) == before, "the parent run is left as it was"


@pytest.mark.slow
def test_a_draft_holds_no_test_figure_and_its_bundle_predicts_as_its_head(parent, images):
    from imgclf.bundle.folder import load_bundle
    from imgclf.inference.predict import Predictor
    from imgclf.labelnext.quick import is_draft, quick_update

    draft = quick_update(parent["run"], images)
    run = RunDir(Path(draft["run"]))
    metrics = read_json(run.metrics)
    assert metrics["draft"] is True and is_draft(run.root) and not is_draft(parent["run"])
    assert not TEST_FIGURES & set(metrics) and not run.predictions.exists()
    bundle = load_bundle(run.model)
    assert not TEST_FIGURES & set(bundle.metrics) and bundle.metrics["cv_accuracy"] == metrics["cv_accuracy"]
    assert bundle.labels == list(CLASSES) and bundle.meta.classifier["C"] == load_bundle(parent["run"] / "model").meta.classifier["C"]
    assert bundle.ood() is not None and bundle.meta.trust["train_images"] == metrics["n_train"]
    onnx = bundle.meta.featurizer["onnx"]
    assert (run.model / onnx).stat().st_ino == (parent["run"] / "model" / onnx).stat().st_ino, "the featurizer is hard-linked"
    assert (run.root / ".imgclf-run.json").is_file() and not (run.root / "INCOMPLETE").exists()

    rows, x = run.split_features("test")
    paths = [r.path for r in rows[:4]]
    proba = Predictor(run.model).predict_proba(paths)
    assert np.allclose(proba, bundle.head.predict_proba(x[:4]), atol=2e-3)
    oof = run.read_oof_predictions()[1]
    assert len(oof) == metrics["n_train"] and {r["split"] for r in oof} <= {"train", "val"}
    assert np.mean([r["predicted"] == r["label"] for r in oof]) == pytest.approx(metrics["cv_accuracy"], abs=1e-6)


def test_excluded_images_are_left_out_pool_labels_and_new_classes_are_in(parent, images):
    from imgclf.labelnext.quick import label_changes, quick_update

    before = _rows(parent["run"])
    test_img = next(rel for rel, (_, side) in before.items() if side == "test")
    train = [rel for rel, (label, side) in before.items() if side == "train" and label == "circles"]
    record(images, [(test_img, "", "exclude", ""), (train[0], "", "exclude", "")]
           + [(rel, "circles", "relabel", "ovals") for rel in train[1:4]]  # 3 train images: one per fold (svm.cv_folds = 3)
           + [(train[4], "circles", "relabel", "dots")]  # 1 image: too few for a class
           + [(f"_unlabeled/p{i}_{cls}.jpg", "", "label", cls) for i, cls in enumerate(CLASSES[:2])]
           + [("_unlabeled/broken.jpg", "", "label", "stripes")])
    assert label_changes(parent["run"], images).to_dict() == {"relabelled": 4, "added": 3, "removed": 2, "total": 9}
    draft = quick_update(parent["run"], images)

    rows = _rows(draft["run"])
    assert test_img not in rows and train[0] not in rows
    assert draft["labels"] == ["circles", "ovals", "squares", "stripes"] and draft["cv_per_class_support"]["ovals"] == 3
    assert draft["left_out"] == {"classes_with_too_few_images": {"dots": 1}, "unreadable": 1, "unusable_in_parent": 0}
    assert train[4] not in rows
    assert {rel: rows[rel] for rel in rows if rel.startswith("_unlabeled/")} == {
        "_unlabeled/p0_circles.jpg": ("circles", "train"), "_unlabeled/p1_squares.jpg": ("squares", "train")}
    assert {rel for rel, (_, side) in rows.items() if side == "test"} == {rel for rel, (_, s) in before.items() if s == "test"} - {test_img}
    assert draft["n_train"] == sum(side != "test" for _, side in rows.values())
    index = RunDir(Path(draft["run"])).load_features()[0]
    assert all(r.path in index for r in load_split(str(Path(draft["run"]) / "split.csv"))), "the new rows' features are kept"
    assert any("broken.jpg" in p for p in RunDir(Path(draft["run"])).skipped_paths())


def test_a_draft_of_a_draft_compares_with_its_parents_cross_validated_accuracy(parent, images):
    from imgclf.labelnext.quick import cv_figures, quick_update
    from imgclf.util.errors import RunDirError

    first = quick_update(parent["run"], images)
    record(images, [(next(rel for rel, (_, s) in _rows(parent["run"]).items() if s == "train"), "", "exclude", "")])
    second = quick_update(first["run"], images)
    assert second["parent"] == {"run": first["run"], "name": first["name"],
                                "cv_accuracy": first["cv_accuracy"], "cv_class_avg_accuracy": first["cv_class_avg_accuracy"]}
    assert second["changes"]["removed"] == 1 and second["n_train"] == first["n_train"] - 1
    assert cv_figures(second["run"]) == {k: second[k] for k in ("cv_accuracy", "cv_class_avg_accuracy")}
    with pytest.raises(RunDirError, match="not a run directory"):
        quick_update(images, images)
    (Path(first["run"]) / "INCOMPLETE").write_text("{}")  # a draft whose writer was killed: unreadable marker
    with pytest.raises(RunDirError, match="is incomplete"):
        quick_update(first["run"], images)
    (Path(first["run"]) / "INCOMPLETE").unlink()
    taken = Path(first["run"])
    with pytest.raises(RunDirError, match="exists already"):
        quick_update(parent["run"], images, out_dir=taken)
    assert not [p for p in taken.parent.iterdir() if p.name.startswith(".")], "no half-written draft is left"
    assert read_json(taken / "metrics.json")["cv_accuracy"] == first["cv_accuracy"], "the folder there is left as it was"


@pytest.mark.slow
def test_a_draft_is_an_iteration_predict_and_the_run_history_accept(parent, images, tmp_path, capsys):
    import json

    from imgclf.cli import main
    from imgclf.labelnext.quick import quick_update
    from imgclf.tracking.store import log_run

    draft = quick_update(parent["run"], images)
    image = next(r.path for r in load_split(str(Path(draft["run"]) / "split.csv")) if r.split == "test")
    assert main(["predict", str(Path(draft["run"]) / "model"), image]) == 0
    answer = json.loads(capsys.readouterr().out.splitlines()[0])
    assert sorted(answer["scores"]) == draft["labels"] and sum(answer["scores"].values()) == pytest.approx(1.0, abs=1e-3)

    cfg = RunDir(Path(draft["run"])).saved_config()
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    cfg.tracking.enabled, cfg.tracking.uri = True, uri
    assert log_run(cfg, draft["run"], "quick-update")
    assert main(["runs", "list", "--json", "--set", f"tracking.uri={json.dumps(uri)}"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["name"] == draft["name"] and row["tags"]["command"] == "quick-update"
    assert row["metrics"]["cv_accuracy"] == pytest.approx(draft["cv_accuracy"]) and "accuracy" not in row["metrics"]
