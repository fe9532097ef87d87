"""The model bundle against the hazards of artifacts on disk: files the manifest does not
cover, damaged model files, kill -9 during a save and between the two renames of a swap."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from imgclf.bundle.folder import BundleMeta, load_bundle, verify_bundle, write_bundle
from imgclf.classifier.linear import LinearHead
from imgclf.util.errors import BundleError
from imgclf.util.files import read_json, sha256_file, write_json

_DIM = 8


def _meta(labels: list[str]) -> BundleMeta:
    return BundleMeta(labels=labels, backbone="efficientnet_lite0", resolution=224,
                      preprocessing={"resolution": 224}, featurizer={"feature_id": "test", "dim": _DIM},
                      classifier={"type": "svm"})


def _head(k: int, seed: int) -> LinearHead:
    rng = np.random.default_rng(seed)
    return LinearHead(rng.normal(size=(k, _DIM)).astype(np.float32), rng.normal(size=k).astype(np.float32), 1.5)


def _save(target: Path, labels: list[str], seed: int = 0) -> None:
    write_bundle(target, _meta(labels), _head(len(labels), seed), metrics={"accuracy": 0.5})


def _rehash(bundle: Path, name: str) -> None:
    """Make manifest.json agree with ``name``'s current bytes (what a careless or hostile editor does)."""
    manifest = read_json(bundle / "manifest.json")
    manifest["files"][name] = sha256_file(bundle / name)
    write_json(bundle / "manifest.json", manifest)


def _flip_byte(path: Path, at: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def model(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of the shared run's real bundle (svm on lite0, with featurizer.onnx)."""
    return Path(shutil.copytree(trained_run / "model", tmp_path / "model"))


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    from imgclf.cli import main

    code = main(argv)
    return code, capsys.readouterr().err


# ---------------------------------------------------------------- the manifest covers what a load reads


def test_bundle_file_not_in_the_manifest_is_refused(model, capsys):
    manifest = read_json(model / "manifest.json")
    del manifest["files"]["featurizer.onnx"]
    write_json(model / "manifest.json", manifest)
    _flip_byte(model / "featurizer.onnx")
    with pytest.raises(BundleError) as e:
        load_bundle(model)
    assert "featurizer.onnx" in e.value.message and "not listed in manifest.json" in e.value.message
    code, err = _cli(["predict", str(model), str(model / "bundle.json")], capsys)
    assert code == 2 and "featurizer.onnx" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["metrics.json", "head.npz"])
def test_every_file_a_load_reads_must_be_listed(model, name):
    manifest = read_json(model / "manifest.json")
    del manifest["files"][name]
    write_json(model / "manifest.json", manifest)
    with pytest.raises(BundleError, match=name):
        verify_bundle(model)


def test_bundle_json_naming_a_file_outside_the_bundle_is_refused(model):
    meta = read_json(model / "bundle.json")
    meta["featurizer"]["onnx"] = "../elsewhere.onnx"
    write_json(model / "bundle.json", meta)
    _rehash(model, "bundle.json")
    with pytest.raises(BundleError, match="must be a file name inside the bundle"):
        load_bundle(model)


def test_damaged_onnx_gives_a_one_line_error(model, capsys):
    from imgclf.inference.predict import Predictor

    onnx = model / "featurizer.onnx"
    onnx.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 3])  # cut short, and the manifest updated to match
    _rehash(model, "featurizer.onnx")
    with pytest.raises(BundleError) as e:
        Predictor(model)
    assert "featurizer.onnx cannot be loaded by " in e.value.message and "\n" not in e.value.message, e.value.message
    assert "Exception from" not in e.value.message  # the runtime's reason, not the place in its source that raised
    code, err = _cli(["predict", str(model), str(model / "bundle.json")], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2 and lines[0].startswith("error:") and lines[1].startswith("hint: ")


def test_pickled_head_is_refused_with_a_hint_about_it(model, capsys):
    import pickle

    (model / "head.npz").write_bytes(pickle.dumps({"weight": [1.0]}))
    _rehash(model, "head.npz")
    with pytest.raises(BundleError) as e:
        load_bundle(model)
    assert "head.npz is not a plain NumPy archive" in e.value.message and "never unpickles" in e.value.hint
    code, err = _cli(["predict", str(model), str(model / "bundle.json")], capsys)
    assert code == 2 and "never unpickles" in err and "--help" not in err


def test_model_folder_has_the_mode_of_an_ordinary_folder(tmp_path):
    _save(tmp_path / "model", ["a", "b"])
    mask = os.umask(0)
    os.umask(mask)
    mode = stat.S_IMODE((tmp_path / "model").stat().st_mode)
    assert mode == 0o777 & ~mask, f"model/ is {oct(mode)}; its files are {oct(stat.S_IMODE((tmp_path / 'model' / 'head.npz').stat().st_mode))}"


# ---------------------------------------------------------------- kill -9 during a save and between the renames

# The child saves a bundle with labels [c, d] over one with [a, b]; os.replace in dirswap.py (the swap) is
# wrapped to SIGKILL the child right after its KILL_AFTER-th rename of a folder (0: never; a timer
# in the test kills it instead). File writes (fileio's os.replace) are not counted.
_CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    import imgclf.bundle.folder as b
    import imgclf.bundle.swap as swap
    from imgclf.classifier.linear import LinearHead

    target, kill_after, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    real_replace, calls = os.replace, [0]

    def replace(src, dst):
        folder = os.path.isdir(src)
        real_replace(src, dst)
        calls[0] += folder
        if folder and calls[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    swap.os = type("os_with_faults", (), {n: getattr(os, n) for n in dir(os) if not n.startswith("__")})
    swap.os.replace = staticmethod(replace)
    print("ready", flush=True)
    for i in range(rounds):
        labels = ["c", "d"] if i % 2 == 0 else ["a", "b"]
        meta = b.BundleMeta(labels=labels, backbone="efficientnet_lite0", resolution=224, preprocessing={"resolution": 224},
                            featurizer={"feature_id": "test", "dim": 8}, classifier={"type": "svm"})
        rng = np.random.default_rng(i)
        head = LinearHead(rng.normal(size=(2, 8)).astype(np.float32), rng.normal(size=2).astype(np.float32), 1.0)
        b.write_bundle(target, meta, head, metrics={"accuracy": 0.5})
""")


def _child(target: Path, kill_after: int, rounds: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(target), str(kill_after), str(rounds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_between_the_renames_of_a_bundle_swap_leaves_the_old_bundle_loadable(tmp_path):
    target = tmp_path / "model"
    _save(target, ["a", "b"])
    proc = _child(target, kill_after=1)  # killed right after `model` was moved aside, before the new one moved in
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert not target.exists(), "the fault was not injected between the two renames"
    assert load_bundle(target).labels == ["a", "b"]  # the old bundle, read where the swap left it
    assert target.is_dir() and (target / "manifest.json").is_file(), "and put back in place for every later reader"
    _save(target, ["e", "f"])  # the next save works and sweeps what the killed writer left
    assert load_bundle(target).labels == ["e", "f"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_kill_after_the_second_rename_leaves_the_new_bundle_and_no_debris_after_the_next_save(tmp_path):
    target = tmp_path / "model"
    _save(target, ["a", "b"])
    proc = _child(target, kill_after=2)  # both renames done, the old folder not yet removed
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert load_bundle(target).labels == ["c", "d"]
    _save(target, ["e", "f"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.slow
def test_kill_9_during_repeated_bundle_saves_always_leaves_a_loadable_bundle(tmp_path):
    target = tmp_path / "model"
    _save(target, ["a", "b"])
    rng = np.random.default_rng(0)
    for attempt in range(4):
        proc = _child(target, kill_after=0, rounds=10_000)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.6)))  # somewhere inside a save: writing, hashing or swapping
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        bundle = load_bundle(target)
        assert bundle.labels in (["a", "b"], ["c", "d"]), f"attempt {attempt}: {bundle.labels}"
        verify_bundle(target)
    _save(target, ["e", "f"])
    assert load_bundle(target).labels == ["e", "f"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_reader_during_a_live_swap_reads_the_old_bundle_without_moving_it(tmp_path, monkeypatch):
    import imgclf.bundle.folder as b

    target = tmp_path / "model"
    _save(target, ["a", "b"])
    seen: list[list[str]] = []
    real_replace = os.replace
    calls = [0]

    def replace(src, dst):
        folder = os.path.isdir(src)
        real_replace(src, dst)
        calls[0] += folder
        if folder and calls[0] == 1:  # between the renames, in the writing process itself (alive): read, don't move
            seen.append(load_bundle(target).labels)
            assert not target.exists()

    monkeypatch.setattr(b.os, "replace", replace)
    _save(target, ["c", "d"])
    assert seen == [["a", "b"]] and load_bundle(target).labels == ["c", "d"]


def test_manifest_that_is_not_a_table_of_digests_is_refused(tmp_path):
    _save(tmp_path / "model", ["a", "b"])
    (tmp_path / "model" / "manifest.json").write_text(json.dumps({"files": ["bundle.json"]}))
    with pytest.raises(BundleError, match="not a valid manifest"):
        load_bundle(tmp_path / "model")
