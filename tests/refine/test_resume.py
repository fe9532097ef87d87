"""A refinement killed with SIGKILL in mid-epoch resumes to exactly the result of an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset
from refine_helpers import TINY, bundle_state, child_env, refine_cmd

from imgclf.cli import main as cli_main
from imgclf.config.settings import load_config
from imgclf.pipeline.steps import evaluate
from imgclf.util.files import read_json

SETS = (*TINY, "refine.epochs=3", "refine.batch_size=2", 'train.classifier="dnn"')


def _refine_here(*args: str, sets: tuple[str, ...] = ()) -> list[str]:
    """The arguments of ``imgclf refine ARGS`` for ``cli_main`` in this process: the same arithmetic as in a
    child, since refinement computes with ``engine.threads`` (1 here) wherever it runs."""
    return refine_cmd(*args, sets=sets)[3:]


@pytest.mark.slow
def test_sigkill_in_mid_epoch_then_resume_gives_the_uninterrupted_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture):
    images = make_dataset(tmp_path / "images", n_per_class=12, seed=6)
    env = child_env(tmp_path / "data")
    monkeypatch.setenv("IMGCLF_DATA_DIR", env["IMGCLF_DATA_DIR"])
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert cli_main(_refine_here("--run-dir", str(ref), "--images", str(images), "--quiet", "--no-evaluate", sets=SETS)) == 0

    p = subprocess.Popen(refine_cmd("--run-dir", str(cut), "--images", str(images), "--quiet", "--no-evaluate", sets=SETS),
                         env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    index = cut / "refine" / "checkpoint.json"
    try:
        deadline = time.monotonic() + 240
        while not (index.is_file() and read_json(index)["epoch"] >= 1):  # written atomically after epoch 1
            assert p.poll() is None and time.monotonic() < deadline, "the run ended or stalled before its first checkpoint"
            time.sleep(0.05)
        time.sleep(0.3 * read_json(index)["history"][0]["seconds"])  # about a third into epoch 2
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    ck = read_json(cut / "refine" / "checkpoint.json")
    assert ck["epoch"] == 1 and not (cut / "model").exists(), "the kill should land inside epoch 2"

    capsys.readouterr()
    assert cli_main(_refine_here("--resume", str(cut), "--no-evaluate")) == 0
    err = capsys.readouterr().err
    assert "resuming" in err and "after epoch 1/3" in err  # logged: the CLI shows imgclf's INFO lines
    a, b = bundle_state(ref / "model"), bundle_state(cut / "model")
    assert a[0] == b[0], "the refined weights differ (their SHA-256 is in the weights id)"
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    assert a[3] == b[3] and len(a[3]) == 3

    cfg = load_config(None, ['data.root="%s"' % (tmp_path / "data"), *SETS])
    m_ref, m_cut = evaluate(cfg, ref), evaluate(cfg, cut)
    assert m_ref.accuracy == m_cut.accuracy and m_ref.confusion_matrix == m_cut.confusion_matrix
    assert (ref / "predictions.csv").read_text().replace(str(ref), "") == (cut / "predictions.csv").read_text().replace(str(cut), "")


def test_resume_without_a_checkpoint_or_with_two_run_dirs_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert cli_main(["refine", "--resume", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "no refinement to resume" in err and "hint:" in err
    assert cli_main(["refine", "--resume", str(tmp_path / "a"), "--run-dir", str(tmp_path / "b")]) == 2
    assert "name different runs" in capsys.readouterr().err
    assert cli_main(["refine"]) == 2
    assert "--run-dir" in capsys.readouterr().err


def test_refine_help_lists_its_options(capsys: pytest.CaptureFixture):
    assert cli_main(["refine", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--run-dir", "--resume", "--set", "--config", "--no-evaluate", "torchrun"):
        assert opt in out
