"""A dataset laid out as train/ validation/ test/ (the Kaggle and Hugging Face layout): the
validation images are used, not silently dropped, and `prepare` says what each folder became."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from datagen import make_dataset, tiny_config

from imgclf.config.settings import load_config
from imgclf.data.dataset import scan_dataset
from imgclf.data.split import make_split, save_split
from imgclf.rundir.layout import RunDir


def _layout(root: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    for i, (folder, n) in enumerate(sizes.items()):
        make_dataset(root / folder, n_per_class=n, seed=seed + i, size=64)
    return root


def test_validation_folder_images_are_used_not_ignored(tmp_path):
    root = _layout(tmp_path / "ds", {"train": 5, "validation": 2, "test": 3})
    ds = scan_dataset(root)
    assert ds.folders == {"train": "train", "validation": "val", "test": "test"}
    rows = make_split(ds, load_config().data)
    assert Counter(r.split for r in rows) == {"train": 15, "val": 6, "test": 9}, "all 30 images, none dropped"
    rd = RunDir(tmp_path / "run")
    rd.root.mkdir()
    save_split(str(rd.split), rows)
    assert len(rd.split_rows("train")) == 21, "the SVM trains on train + validation"
    assert len(rd.split_rows("test")) == 9 and len(rd.split_rows("val")) == 6


@pytest.mark.parametrize("name", ["val", "valid", "Validation"])
def test_validation_folder_names(tmp_path, name):
    root = _layout(tmp_path / "ds", {"train": 3, name: 1, "test": 2})
    assert scan_dataset(root).folders == {"train": "train", name: "val", "test": "test"}


def test_train_and_validation_without_test_is_a_train_test_split(tmp_path):
    root = _layout(tmp_path / "ds", {"train": 3, "validation": 2})
    ds = scan_dataset(root)
    assert ds.folders == {"train": "train", "validation": "test"}
    assert Counter(r.split for r in make_split(ds, load_config().data)) == {"train": 9, "test": 6}


def test_refinement_validates_on_the_validation_folder(tmp_path):
    from imgclf.refine.loop import _train_data

    root = _layout(tmp_path / "ds", {"train": 4, "validation": 2, "test": 2})
    cfg = load_config(None, [f'data.images="{root}"'])
    rd = RunDir(tmp_path / "run")
    rd.root.mkdir()
    save_split(str(rd.split), make_split(scan_dataset(root), cfg.data))
    labels, data = _train_data(cfg, rd)
    assert sorted(Path(p).parent.parent.name for p in data.val_paths) == ["validation"] * 6
    assert len(data.paths) == 12 and all("/train/" in p for p in data.paths), "no train image held out"
    assert sorted(Counter(data.val_labels.tolist()).values()) == [2, 2, 2]


@pytest.mark.slow
def test_prepare_and_run_say_what_each_folder_became(tmp_path, capsys):
    from imgclf.cli import main
    from imgclf.util.files import read_json

    root = _layout(tmp_path / "ds", {"train": 8, "validation": 3, "test": 4}, seed=3)
    cfg = tiny_config(tmp_path / "data", root)
    run = tmp_path / "run"
    argv = ["run", "--run-dir", str(run), "--quiet", "--set", f'data.root="{cfg.data.root}"', "--set", f'data.images="{root}"',
            "--set", "svm.cv_folds=3", "--set", "svm.c_values=[0.01, 1.0, 100.0]", "--set", "tracking.enabled=false"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "validation/" in out and "merged into train for the SVM" in out and "(9 images)" in out
    metrics = read_json(run / "metrics.json")
    assert metrics["n_train"] == 24 + 9 and metrics["n_test"] == 12
    assert main(["prepare", "--run-dir", str(tmp_path / "run2"), "--images", str(root), "--set", "data.check_leakage=false"]) == 0
    out = capsys.readouterr().out
    assert "train 24, validation 9, test 12" in out and "test/" in out
