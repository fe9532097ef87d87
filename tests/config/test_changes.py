"""A command that changes a user's setting says so and records it: `imgclf refine` trains dnn where
train.classifier is svm (the default)."""
from __future__ import annotations

from pathlib import Path

import pytest
from datagen import make_dataset

from imgclf.cli import main
from imgclf.util.files import read_json

# lite0 at 64 px, one epoch, one thread: the smallest refinement
TINY = ("model.resolution=64", 'refine.backbone=""', "refine.resolution=0", "refine.batch_size=4", "refine.epochs=1",
        "refine.val_fraction=0.2", "engine.threads=1", "tracking.enabled=false", "doctor.enabled=false")


@pytest.mark.slow
def test_refine_says_and_records_that_it_trains_dnn(tmp_path: Path, data_root: Path, caplog):
    images = make_dataset(tmp_path / "images", n_per_class=6, seed=3)
    rd = tmp_path / "run"
    with caplog.at_level("INFO", logger="imgclf.config.settings"):
        assert main(["refine", "--run-dir", str(rd), "--images", str(images), "--no-evaluate", "-q",
                     *(a for s in TINY for a in ("--set", s))]) == 0
    saved = read_json(rd / "config.json")
    assert saved["train"]["classifier"] == "dnn"
    assert {"key": "train.classifier", "from": "svm", "to": "dnn", "by": "imgclf refine"} in saved["changed"]
    assert 'train.classifier = "dnn" (was "svm"): set by imgclf refine' in [r.getMessage() for r in caplog.records]
    assert read_json(rd / "model" / "bundle.json")["classifier"]["type"] == "dnn"
