"""Every entry point that opens a bundle recovers one whose swap was killed between its two renames:
evaluate, suggest and the UI as predict and train do (one function, bundle.folder.locate_bundle)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from datagen import CLASSES, make_image, tiny_config

from imgclf.cli import main
from imgclf.util.files import read_json


@pytest.fixture
def killed_mid_swap(trained_run: Path, tmp_path: Path) -> dict:
    """A copy of the shared run (with a pool of unlabelled images) as a writer killed between the renames of
    its model's swap leaves it: no ``model``, the old folder moved aside under the dead writer's pid."""
    images = tmp_path / "images"
    shutil.copytree(trained_run.parent / "images", images)
    rng = np.random.default_rng(3)
    (images / "_unlabeled").mkdir()
    for i in range(6):
        make_image(CLASSES[i % 3], rng).save(images / "_unlabeled" / f"p{i}.jpg", quality=90)
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "model").rename(run / f".model.old-{dead.pid}-{time.time_ns()}")
    return {"run": run, "images": images, "labels": read_json(trained_run / "model" / "bundle.json")["labels"]}


def _restored(run: Path) -> bool:
    return (run / "model" / "manifest.json").is_file() and not list(run.glob(".model.*"))


def _images(images: Path) -> list[str]:
    return ["--set", f'data.images="{images}"', "--set", "doctor.enabled=false"]


@pytest.mark.slow
def test_evaluate_recovers_the_bundle(killed_mid_swap, capsys):
    run = killed_mid_swap["run"]
    assert main(["evaluate", "--run-dir", str(run), *_images(killed_mid_swap["images"])]) == 0, capsys.readouterr().err
    assert _restored(run) and read_json(run / "metrics.json")["n_test"] > 0


def test_suggest_recovers_the_bundle(killed_mid_swap, capsys):
    run = killed_mid_swap["run"]
    code = main(["suggest", "--run-dir", str(run), "-n", "2", "--json", "--quiet", *_images(killed_mid_swap["images"])])
    assert code == 0, capsys.readouterr().err
    assert _restored(run)


def test_the_ui_on_the_run_recovers_the_bundle(killed_mid_swap):
    from imgclf.ui.server import ui_settings

    run = killed_mid_swap["run"]
    cfg = tiny_config(run.parent / "data", killed_mid_swap["images"])
    ui = ui_settings(cfg, killed_mid_swap["images"], run)
    assert ui["run_dir"] == str(run.resolve()) and _restored(run)


def test_a_missing_bundle_is_still_refused_with_the_step_that_makes_it(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["evaluate", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "is missing" in err and "imgclf train" in err and "Traceback" not in err
