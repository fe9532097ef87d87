"""Unknown and uncertain answers on every route, with and without rejection; a bundle without a detector answers as before."""
from __future__ import annotations

import base64
import copy
import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from datagen import make_image
from PIL import Image
from serve_helpers import running


def _far() -> bytes:
    """A smooth colour gradient: nothing like the generated circles, squares and stripes."""
    ramp = np.linspace(0, 255, 224, dtype=np.float32)
    img = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (224, 1)), np.full((224, 224), 90.0)], -1)
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _known(seed: int = 5) -> bytes:
    buf = io.BytesIO()
    make_image("circles", np.random.default_rng(seed)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _with(predictor, **predict):
    """The same loaded model answering under other ``[predict]`` settings."""
    p, c = copy.copy(predictor), copy.copy(predictor.compute)
    p.predict_cfg = c.predict_cfg = dataclasses.replace(predictor.predict_cfg, **predict)
    c.unknown_threshold = c.detector.threshold(c.predict_cfg.unknown_tpr)
    p.compute = c
    return p


def test_predictor_marks_a_far_image_unknown_and_keeps_the_scores(predictor):
    assert predictor.compute.detector is not None and predictor.compute.unknown_threshold is not None
    (far, known) = predictor.predict([_far(), _known()])
    assert far["label"] == "unknown" and far["unknown"] is True and far["nearest_label"] in predictor.labels
    assert far["ood_score"] > predictor.compute.unknown_threshold > known["ood_score"]
    assert sum(far["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert known["label"] == known["nearest_label"] in predictor.labels and known["unknown"] is False
    kept = _with(predictor, reject_unknown=False).predict([_far()])[0]
    assert kept["label"] == far["nearest_label"] and kept["unknown"] is True and kept["ood_score"] == pytest.approx(far["ood_score"], abs=1e-3)
    unsure = _with(predictor, reject_unknown=False, min_confidence=1.0).predict([_known()])[0]
    assert unsure["label"] == "uncertain" and unsure["nearest_label"] == known["nearest_label"]


def test_the_threshold_accepts_the_train_tpr_of_the_train_images(predictor):
    det = predictor.compute.detector
    for tpr in (0.8, 0.95):
        assert (det.train_scores <= det.threshold(tpr)).mean() == pytest.approx(tpr, abs=1.5 / len(det.train_scores))


@pytest.mark.parametrize("reject", [True, False])
def test_every_route_answers_unknown_only_with_rejection(predictor, client, reject):
    pred = _with(predictor, reject_unknown=reject)
    far_b64 = base64.b64encode(_far()).decode()
    with running(pred) as (url, _):
        r = client.post(url + "/predict", content=_far(), headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
        (p,) = r.json()["predictions"]
        assert p["unknown"] is True and p["ood_score"] > pred.compute.unknown_threshold
        assert p["label"] == ("unknown" if reject else p["nearest_label"])
        s = client.post(url + "/score", json={"input_df": [{"image base64 string": far_b64}]}).json()
        assert s["unknown"] is True and s["oodScore"] == pytest.approx(p["ood_score"], abs=1e-4)
        assert s["label"] == p["label"] and len(s["allScores"]) == len(pred.labels)
        req = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [far_b64]}]}
        out = {o["name"]: o for o in client.post(url + "/v2/models/imgclf/infer", json=req).json()["outputs"]}
        assert out["label"]["data"] == [p["label"]] and out["ood_score"]["data"][0] == pytest.approx(p["ood_score"], abs=1e-4)
        meta = client.get(url + "/v2/models/imgclf").json()
        assert {"name": "ood_score", "datatype": "FP32", "shape": [-1]} in meta["outputs"]


def test_a_bundle_without_a_detector_answers_as_before(bundle_dir: Path, tmp_path: Path, client):
    from imgclf.bundle.folder import load_bundle, write_bundle
    from imgclf.inference.predict import Predictor

    b = load_bundle(bundle_dir)
    files = {n: b.dir / n for n in ("featurizer.onnx",) if (b.dir / n).exists()}
    old = write_bundle(tmp_path / "model", dataclasses.replace(b.meta, trust=None), b.head, files, b.metrics)
    shutil.rmtree(tmp_path / "model" / "trust.npz", ignore_errors=True)
    assert not (old / "trust.npz").exists() and "trust" not in (old / "bundle.json").read_text()
    pred = Predictor(old)
    assert pred.compute.detector is None
    r = pred.predict([_far()])[0]
    assert set(r) == {"label", "score", "scores", "executionTimeMs"} and r["label"] in pred.labels
    assert r["label"] == max(r["scores"], key=r["scores"].get)
    with running(pred) as (url, _):
        s = client.post(url + "/score", json={"input_df": [{"image base64 string": base64.b64encode(_far()).decode()}]}).json()
        assert s["unknown"] is False and s["oodScore"] is None and s["label"] == r["label"]
        req = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(_far()).decode()]}]}
        names = [o["name"] for o in client.post(url + "/v2/models/imgclf/infer", json=req).json()["outputs"]]
        assert names == ["probabilities", "label"]
