"""A run killed or changed half way is reported incomplete by every command until it is rerun, and no command
reports figures from a model and a split that do not belong together."""
from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
from datagen import make_dataset, tiny_config
from cliutil import cli
from rundir_helpers import start, tiny_sets, wait_for

from imgclf.inference.predict import Predictor
from imgclf.pipeline.steps import evaluate, featurize, prepare, train
from imgclf.rundir.layout import RunDir
from imgclf.rundir.state import INCOMPLETE, RunIncomplete, read_incomplete
from imgclf.util.files import read_json


@pytest.fixture
def run_copy(trained_run, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(trained_run, rd)
    return rd


def _images(rd):
    return read_json(rd / "config.json")["data"]["images"]


@pytest.mark.slow
def test_a_rerun_killed_after_its_new_split_leaves_a_run_that_evaluate_refuses_and_predict_flags(run_copy, tmp_path, capsys):
    old_split, old_metrics = (run_copy / "split.csv").read_bytes(), (run_copy / "metrics.json").read_bytes()
    rerun = start("run", "-q", "--images", _images(run_copy), "--run-dir", run_copy, *tiny_sets(tmp_path / "data"),
                  "--set", "data.seed=5")
    wait_for(lambda: (run_copy / "split.csv").read_bytes() != old_split, rerun, "the rerun wrote its new split")
    rerun.send_signal(signal.SIGKILL)
    rerun.wait()

    ev = cli(capsys, "evaluate", "--run-dir", run_copy)
    assert ev.returncode == 2 and "Traceback" not in ev.stderr
    error, hint = ev.stderr.strip().splitlines()
    assert error.startswith(f"error: run {run_copy} is incomplete: `imgclf run` started at ") and "did not finish" in error
    assert hint == f"hint: rerun it: `imgclf run --run-dir {run_copy}`, or `imgclf prepare --run-dir {run_copy}` and the steps after it"
    assert (run_copy / "metrics.json").read_bytes() == old_metrics  # no figures from the old model on the new split

    image = next(iter(sorted(Path(_images(run_copy)).rglob("*.jpg"))))
    pr = cli(capsys, "predict", run_copy / "model", image)
    assert pr.returncode == 0 and len(pr.stdout.splitlines()) == 1 and json.loads(pr.stdout)["path"] == str(image)
    assert pr.stderr.startswith(f"warning: run {run_copy} is incomplete: `imgclf run` started at ")
    assert Predictor(run_copy / "model").run_incomplete["command"] == "run"

    cfg = tiny_config(tmp_path / "data", _images(run_copy))
    with pytest.raises(RunIncomplete):
        featurize(cfg, run_copy)  # it would build on the unfinished split
    ev = cli(capsys, "run", "-q", "--images", _images(run_copy), "--run-dir", run_copy, *tiny_sets(tmp_path / "data"))
    assert ev.returncode == 0, ev.stderr
    assert read_incomplete(run_copy) is None and Predictor(run_copy / "model").run_incomplete is None


@pytest.mark.slow
def test_ctrl_c_leaves_the_run_incomplete(tmp_path, capsys):
    images = make_dataset(tmp_path / "images", n_per_class=8)
    rd = tmp_path / "run"
    # an engine cache of its own: featurize exports (seconds), so the Ctrl-C a second after the split lands in it,
    # not in a later step (the session's engines would make featurize too quick to hit)
    (tmp_path / "data" / "engines").mkdir(parents=True)
    proc = start("run", "-q", "--images", images, "--run-dir", rd, *tiny_sets(tmp_path / "data"))
    wait_for(lambda: (rd / "split.csv").exists(), proc, "the run wrote its split")
    time.sleep(1)  # into featurize
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    marker = read_incomplete(rd)
    assert (marker.command, marker.next, marker.finished, marker.pid) == ("run", "prepare", None, proc.pid)
    ev = cli(capsys, "evaluate", "--run-dir", rd)
    assert ev.returncode == 2 and "`imgclf run` started at" in ev.stderr and "did not finish" in ev.stderr


@pytest.mark.slow
def test_a_new_split_alone_makes_evaluate_refuse_until_the_model_is_trained_on_it(run_copy, tmp_path):
    cfg = tiny_config(tmp_path / "data", _images(run_copy), "data.seed=9")
    prepare(cfg, run_copy)
    marker = read_incomplete(run_copy)
    assert (marker.command, marker.next) == ("prepare", "featurize") and marker.finished
    with pytest.raises(RunIncomplete, match="its features, model and metrics do not match that yet") as e:
        evaluate(cfg, run_copy)
    assert "`imgclf featurize --run-dir" in e.value.hint
    featurize(cfg, run_copy)
    assert read_incomplete(run_copy).next == "train"
    train(cfg, run_copy)
    assert read_incomplete(run_copy).next == "evaluate"
    m = evaluate(cfg, run_copy)
    assert not (run_copy / INCOMPLETE).exists()
    assert m.n_test == len(RunDir(run_copy).split_rows("test"))


def test_a_step_that_raises_leaves_the_run_incomplete(run_copy, tmp_path):
    cfg = tiny_config(tmp_path / "data", _images(run_copy))
    (run_copy / "features.npz").write_bytes(b"not an npz")
    with pytest.raises(Exception):
        train(cfg, run_copy)
    marker = read_incomplete(run_copy)
    assert (marker.command, marker.next, marker.finished) == ("train", "train", None)
    with pytest.raises(RunIncomplete, match="`imgclf train` started at .* did not finish"):
        evaluate(cfg, run_copy)
