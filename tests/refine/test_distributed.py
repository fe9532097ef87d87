"""torchrun with 2 CPU processes (gloo) trains like one process and shares every sample exactly once."""
from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset
from refine_helpers import TINY, bundle_state, child_env, refine_cmd, run_ok

from imgclf.cli import main as cli_main
from imgclf.util.files import read_json

# dropout 0 and fp32: one process with batch 8 and two with batch 4 then do the same arithmetic
# (same steps, same augmented images, gradients averaged over the same 8 samples)
SETS = (*TINY, "refine.epochs=2", "refine.dropout=0", "refine.precision=fp32", "refine.log_samples=true",
        'train.classifier="svm_on_refined"')


@pytest.mark.slow
def test_two_gloo_processes_match_one_and_see_every_sample_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    images = make_dataset(tmp_path / "images", n_per_class=10, seed=8)
    one, two = tmp_path / "one", tmp_path / "two"
    monkeypatch.setenv("IMGCLF_DATA_DIR", child_env(tmp_path / "data")["IMGCLF_DATA_DIR"])
    # the one process is this one (cli_main): it refines with engine.threads (1), as each torchrun process does
    assert cli_main(refine_cmd("--run-dir", str(one), "--images", str(images), "--quiet", sets=(*SETS, "refine.batch_size=8"))[3:]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2", "-m", "imgclf"]
    cmd = torchrun + refine_cmd("--run-dir", str(two), "--images", str(images), "--quiet", sets=(*SETS, "refine.batch_size=4"))[3:]
    run_ok(cmd, child_env(tmp_path / "data"))

    log = read_json(two / "refine" / "samples_seen.json")
    assert log["world_size"] == 2 and len(log["epochs"]) == 2
    for ep in log["epochs"]:
        r0, r1 = ep["by_rank"]
        assert r0 and r1 and not set(r0) & set(r1), "a sample went to both processes"
        assert sorted(r0 + r1) == list(range(len(log["paths"]))), "a sample was missed or repeated"
    assert read_json(one / "refine" / "samples_seen.json")["paths"] == log["paths"]

    _, w1, b1, h1 = bundle_state(one / "model")
    _, w2, b2, h2 = bundle_state(two / "model")
    for e1, e2 in zip(h1, h2):
        assert e1["train_images"] == e2["train_images"] and e1["val_images"] == e2["val_images"]
        assert abs(e1["train_loss"] - e2["train_loss"]) < 1e-3 and abs(e1["val_loss"] - e2["val_loss"]) < 1e-3
    f1, f2 = (np.load(d / "features.npz", allow_pickle=False) for d in (one, two))
    assert list(f1["paths"]) == list(f2["paths"]) and f2["ok"].all()
    assert np.abs(f1["features"] - f2["features"]).max() < 1e-2 * np.abs(f1["features"]).max()
    m1, m2 = read_json(one / "metrics.json"), read_json(two / "metrics.json")
    assert m2["classifier"]["refine"]["world_size"] == 2
    assert abs(m1["accuracy"] - m2["accuracy"]) <= 1 / m1["n_test"] + 1e-9


def _limit_memory() -> None:
    limit = 6 * 1024**3  # importing torch maps ~4 GB of address space; a training step at 512 px needs more than the rest
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["training", "probe"])
def test_out_of_memory_stops_with_a_smaller_batch_size_hint(tmp_path: Path, where: str):
    """Out of memory in a training step, or already in the linear probe's forward passes (at 896 px), is the same
    two-line error naming a smaller batch size."""
    images = make_dataset(tmp_path / "images", n_per_class=12, seed=9)
    sets = ("model.resolution=512", 'refine.head_init="random"') if where == "training" else ("model.resolution=896",)
    cmd = refine_cmd("--run-dir", str(tmp_path / "run"), "--images", str(images), "--quiet", "--no-evaluate",
                     sets=(*TINY, "refine.batch_size=32", "refine.freeze_stages=0", "refine.epochs=1", *sets))
    p = subprocess.run(cmd, env=child_env(tmp_path / "data"), capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "out of memory" in p.stderr and "refine.batch_size=16" in p.stderr and "Traceback" not in p.stderr
