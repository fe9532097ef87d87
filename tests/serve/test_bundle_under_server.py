"""A loaded bundle is what a server answers with, /explain included: every file is read and checked at
load, so replacing or moving the folder later changes nothing; ONNX external data is refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import jpeg, running, server_errors
import web

from imgclf.bundle.folder import load_bundle, write_bundle
from imgclf.util.errors import BundleError
from imgclf.util.files import read_json, sha256_file, write_json


def _other_network_bundle(src: Path, target: Path) -> None:
    """A valid bundle at ``target`` with ``src``'s head and a different network (every weight scaled)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src / "featurizer.onnx"))
    for i, t in enumerate(model.graph.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.ndim >= 2:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(a * 1.7, t.name))
    target.parent.mkdir(parents=True, exist_ok=True)
    changed = target.parent / "changed.onnx"
    onnx.save(model, str(changed))
    b = load_bundle(src)
    write_bundle(target, b.meta, b.head, files={"featurizer.onnx": changed}, metrics=b.metrics)


def _scores(r: httpx.Response, labels: list[str]) -> np.ndarray:
    assert r.status_code == 200, r.text
    body = r.json()
    scores = body["scores"] if "scores" in body else body["predictions"][0]["scores"]
    return np.array([scores[k] for k in labels])


@pytest.fixture
def model(bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle_dir, tmp_path / "model"))


@pytest.mark.slow
def test_explain_keeps_answering_with_the_loaded_bundle_after_the_folder_is_replaced(model, tmp_path):
    from imgclf.inference.predict import Predictor

    predictor = Predictor(model)  # its maps are first asked for after the swap below
    data = jpeg(7)
    other = tmp_path / "other" / "model"
    _other_network_bundle(model, other)
    new, old = (list(p.predict([data])[0]["scores"].values()) for p in (Predictor(other), predictor))
    assert not np.allclose(new, old, atol=2e-2), "the new network answers otherwise"
    with running(predictor) as (url, _), web.client(timeout=120) as c:
        shutil.rmtree(model)
        shutil.copytree(other, model)  # the folder replaced under the running server
        predicted = _scores(c.post(url + "/predict", content=data), predictor.labels)
        explained = _scores(c.post(url + "/explain", content=data, params={"format": "json"}), predictor.labels)
        np.testing.assert_allclose(explained, predicted, atol=2e-2)
        assert server_errors(c.get(url + "/metrics").text) == 0


@pytest.mark.slow
def test_explain_answers_after_the_folder_is_moved_away(model, tmp_path):
    from imgclf.inference.predict import Predictor

    predictor = Predictor(model)
    data = jpeg(8)
    with running(predictor) as (url, _), web.client(timeout=120) as c:
        model.rename(tmp_path / "elsewhere")
        predicted = _scores(c.post(url + "/predict", content=data), predictor.labels)
        r = c.post(url + "/explain", content=data, params={"format": "png", "size": 64})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        explained = _scores(c.post(url + "/explain", content=data, params={"format": "json"}), predictor.labels)
        np.testing.assert_allclose(explained, predicted, atol=2e-2)
        assert server_errors(c.get(url + "/metrics").text) == 0


def test_a_bundle_reads_nothing_from_its_folder_after_load(model):
    bundle = load_bundle(model)
    listed = read_json(model / "manifest.json")["files"]
    assert set(bundle.contents) == set(listed)
    metrics, ood = bundle.metrics, bundle.ood()
    shutil.rmtree(model)
    assert bundle.metrics == metrics and bundle.ood() is not None and ood is not None


@pytest.mark.parametrize("listed", [False, True])
def test_onnx_weights_in_external_data_are_refused_at_load(model, listed):
    import onnx

    path = model / "featurizer.onnx"
    onnx.save_model(onnx.load(str(path)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    manifest = read_json(model / "manifest.json")
    manifest["files"]["featurizer.onnx"] = sha256_file(path)
    if listed:  # even a manifest that hashes the weights file does not let it in
        manifest["files"]["weights.bin"] = sha256_file(model / "weights.bin")
    write_json(model / "manifest.json", manifest)
    with pytest.raises(BundleError) as e:
        load_bundle(model)
    assert "external data" in e.value.message and "weights.bin" in e.value.message
    assert "save_as_external_data=False" in e.value.hint
