"""POST /explain: the bodies of /predict, one image; a PNG overlay or the map as numbers; 4xx JSON refusals."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from serve_helpers import jpeg, metric, running, server_errors
import web


def test_png_overlay_of_a_raw_body(server, client):
    r = client.post(server + "/explain", content=jpeg(3, size=300), headers={"Content-Type": "image/jpeg"}, params={"size": 200})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG" and img.size == (200, 200)


def test_json_map_decomposes_the_decision_and_agrees_with_predict(server, client, predictor):
    data = jpeg(4)
    other = predictor.labels[0]
    r = client.post(server + "/explain", files=[("files", ("a.jpg", data, "image/jpeg"))], params={"format": "json", "class": other})
    assert r.status_code == 200, r.text
    body = r.json()
    pred = client.post(server + "/predict", content=data, headers={"Content-Type": "image/jpeg"}).json()["predictions"][0]
    best = pred.get("nearest_label", pred["label"])  # the map is of the best class even when predict answers "unknown"
    assert body["filename"] == "a.jpg" and body["label"] == pred["label"] and body.get("unknown") == pred.get("unknown")
    np.testing.assert_allclose([body["scores"][k] for k in predictor.labels], [pred["scores"][k] for k in predictor.labels], atol=2e-2)
    assert set(body["maps"]) == {best, other}
    for m in body["maps"].values():
        values = np.array(m["values"])
        assert values.ndim == 2 and values.shape[0] == values.shape[1] > 1
        assert values.mean() + m["bias"] == pytest.approx(m["decision"], abs=1e-4)
    x0, y0, x1, y1 = body["crop_box"]
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


@pytest.mark.parametrize("kwargs, status, reason", [
    ({"content": b"not an image", "headers": {"Content-Type": "image/jpeg"}}, 400, None),
    ({"content": b"", "headers": {"Content-Type": "image/jpeg"}}, 400, None),
    ({"files": [("files", ("a.jpg", jpeg(1), "image/jpeg")), ("files", ("b.jpg", jpeg(2), "image/jpeg"))]}, 400, "one_image"),
    ({"content": jpeg(1), "headers": {"Content-Type": "image/jpeg"}, "params": {"class": "no_such_class"}}, 400, "unknown_class"),
    ({"content": jpeg(1), "headers": {"Content-Type": "image/jpeg"}, "params": {"format": "gif"}}, 422, "invalid_request"),
    ({"content": jpeg(1), "headers": {"Content-Type": "image/jpeg"}, "params": {"size": 0}}, 422, "invalid_request"),
    ({"json": {"image": "x"}}, 415, "unsupported_media_type"),
])
def test_bad_requests_get_a_4xx_json_reason(server, client, kwargs, status, reason):
    r = client.post(server + "/explain", **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json" and r.json()["error"]
    if reason:
        assert r.json()["reason"] == reason
    assert server_errors(client.get(server + "/metrics").text) == 0


def test_the_limits_of_predict_apply(predictor):
    with running(predictor, token="s3cret", max_request_pixels=5000) as (url, _):
        assert web.post(url + "/explain", content=jpeg(1)).status_code == 401
        r = web.post(url + "/explain", content=jpeg(1), headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 413 and r.json()["reason"] == "pixel_budget"
        assert metric(web.get(url + "/metrics", headers={"Authorization": "Bearer s3cret"}).text,
                      "imgclf_rejected_total", reason="pixel_budget") == 1


def _two_featurizer_bundle(tmp_path):
    """A real bundle whose featurizer concatenates two pooled maps (what several featurizers give)."""
    import onnx
    from onnx import TensorProto, helper

    from imgclf.bundle.folder import BundleMeta, write_bundle
    from imgclf.classifier.linear import LinearHead
    from imgclf.config.settings import EngineConfig, ModelConfig
    from imgclf.features.backbones import DataSpec

    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["p1"]), helper.make_node("Flatten", ["p1"], ["f1"]),
             helper.make_node("GlobalMaxPool", ["input"], ["p2"]), helper.make_node("Flatten", ["p2"], ["f2"]),
             helper.make_node("Concat", ["f1", "f2"], ["features"], axis=1)]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 6])])
    onnx_path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(onnx_path))
    spec = DataSpec(32, 0.875, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    labels = ["a", "b", "c"]
    meta = BundleMeta.create(ModelConfig(resolution=32), EngineConfig(backend="onnxruntime", precision="fp32"), "two", labels,
                             spec, {"weights": "imagenet", "feature_id": "efficientnet_lite0-r32-imagenet-fp32", "dim": 6,
                                    "onnx": "featurizer.onnx", "precision": "fp32"}, {"type": "svm", "temperature": 1.0})
    head = LinearHead(np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32), np.zeros(3, np.float32))
    return write_bundle(tmp_path / "model", meta, head, files={"featurizer.onnx": onnx_path})


def test_a_model_maps_cannot_explain_gets_422(tmp_path):
    from imgclf.config.settings import EngineConfig
    from imgclf.inference.predict import Predictor

    predictor = Predictor(_two_featurizer_bundle(tmp_path), EngineConfig(backend="onnxruntime", precision="fp32"))
    with running(predictor) as (url, _):
        assert web.post(url + "/predict", content=jpeg(1)).status_code == 200
        for fmt in ("png", "json"):
            r = web.post(url + "/explain", content=jpeg(1), params={"format": fmt})
            assert r.status_code == 422 and r.json()["reason"] == "not_explainable"
            assert "single CNN featurizer" in r.json()["error"] and "Concat" in r.json()["error"]
        assert server_errors(web.get(url + "/metrics").text) == 0
