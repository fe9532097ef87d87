"""Every endpoint on a real server answers what its contract says, with the offline predictions."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageOps
from serve_helpers import encode, jpeg, metric, picture


def _offline(predictor, data: bytes) -> np.ndarray:
    """Scores the Predictor gives the same bytes without the server, in label order."""
    r = predictor.predict([data])[0]
    return np.array([r["scores"][k] for k in predictor.labels])


def _scores(pred: dict, labels: list[str]) -> np.ndarray:
    return np.array([pred["scores"][k] for k in labels])


def test_health_and_server_metadata(server, client):
    assert client.get(server + "/v2/health/live").json() == {"live": True}
    assert client.get(server + "/v2/health/ready").json() == {"ready": True}
    meta = client.get(server + "/v2").json()
    assert meta["name"] == "imgclf" and meta["extensions"] == []


def test_predict_raw_body_matches_offline(server, client, predictor):
    data = jpeg(3)
    r = client.post(server + "/predict", content=data, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    body = r.json()
    (pred,) = body["predictions"]
    assert pred["filename"] is None
    assert set(pred["scores"]) == set(predictor.labels)
    scores = _scores(pred, predictor.labels)
    assert scores.sum() == pytest.approx(1.0, abs=1e-4)
    assert pred["score"] == pytest.approx(scores.max()) and pred["nearest_label"] == predictor.labels[int(scores.argmax())]
    assert pred["label"] == ("unknown" if pred["unknown"] else pred["nearest_label"])
    np.testing.assert_allclose(scores, _offline(predictor, data), atol=1e-4)
    assert 0 < pred["executionTimeMs"] == body["executionTimeMs"]


def test_predict_multipart_files_keep_order_and_names(server, client, predictor):
    images = {f"{cls}.jpg": jpeg(i) for i, cls in enumerate(predictor.labels)}
    files = [("files", (name, data, "image/jpeg")) for name, data in images.items()]
    r = client.post(server + "/predict", files=files)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["filename"] for p in preds] == list(images)
    for p, data in zip(preds, images.values()):
        np.testing.assert_allclose(_scores(p, predictor.labels), _offline(predictor, data), atol=1e-4)


def test_score_keeps_the_2017_contract(server, client, predictor):
    data = jpeg(5)
    b64 = base64.b64encode(data).decode()
    r = client.post(server + "/score", json={"input_df": [{"image base64 string": b64}]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"label", "score", "allScores", "Id2Labels", "executionTimeMs", "unknown", "oodScore"}
    assert out["Id2Labels"] == {str(i): name for i, name in enumerate(predictor.labels)}
    np.testing.assert_allclose(out["allScores"], _offline(predictor, data), atol=1e-4)
    best = int(np.argmax(out["allScores"]))
    assert out["label"] == ("unknown" if out["unknown"] else out["Id2Labels"][str(best)])
    assert out["score"] == pytest.approx(out["allScores"][best])
    assert out["executionTimeMs"] > 0
    two = client.post(server + "/score", json={"input_df": [{"image base64 string": b64}] * 2}).json()
    assert isinstance(two, list) and len(two) == 2 and two[0]["allScores"] == two[1]["allScores"]


def test_open_inference_protocol(server, client, predictor):
    k = len(predictor.labels)
    meta = client.get(server + "/v2/models/imgclf").json()
    assert meta["name"] == "imgclf" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]} in meta["outputs"]
    assert client.get(server + "/v2/models/imgclf/ready").json() == {"name": "imgclf", "ready": True}
    assert client.get(server + "/v2/models/imgclf/versions/1").json() == meta

    datas = [jpeg(7), jpeg(8)]
    req = {"id": "r1", "inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                                   "data": [base64.b64encode(d).decode() for d in datas]}]}
    r = client.post(server + "/v2/models/imgclf/infer", json=req)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_name"] == "imgclf" and out["model_version"] == "1" and out["id"] == "r1"
    proba = next(o for o in out["outputs"] if o["name"] == "probabilities")
    assert proba["datatype"] == "FP32" and proba["shape"] == [2, k] and len(proba["data"]) == 2 * k
    rows = np.array(proba["data"]).reshape(2, k)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-4)
    for row, d in zip(rows, datas):
        np.testing.assert_allclose(row, _offline(predictor, d), atol=1e-4)
    labels = next(o for o in out["outputs"] if o["name"] == "label")
    ood = next(o for o in out["outputs"] if o["name"] == "ood_score")
    assert ood["datatype"] == "FP32" and ood["shape"] == [2]
    assert labels["data"] == ["unknown" if s > predictor.compute.unknown_threshold else predictor.labels[i]
                              for s, i in zip(ood["data"], rows.argmax(axis=1))]
    assert out["parameters"]["labels"] == predictor.labels

    only = client.post(server + "/v2/models/imgclf/versions/1/infer", json={**req, "outputs": [{"name": "label"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["label"] and only["outputs"][0]["data"] == labels["data"]


def _exif_rotated(img: Image.Image) -> bytes:
    """``img`` stored turned on its side with EXIF orientation 6 (viewers turn it back)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = img.transpose(Image.Transpose.ROTATE_90)
    data = encode(stored, "PNG", exif=exif)
    assert ImageOps.exif_transpose(Image.open(io.BytesIO(data))).tobytes() == img.tobytes()
    return data


def test_odd_images_are_decoded_as_in_training(server, client, predictor):
    base = picture(11)
    gray16 = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16))
    frames = [picture(12, 64), picture(13, 64)]
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    cases = {
        "cmyk.jpg": encode(base.convert("CMYK"), "JPEG"),
        "gray16.png": encode(gray16, "PNG"),
        "animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "palette.png": encode(base.convert("P"), "PNG", transparency=0),
        "rgba.png": encode(rgba, "PNG"),
        "gray.png": encode(base.convert("L"), "PNG"),
        "rotated.png": _exif_rotated(base),
    }
    files = [("files", (name, data, "application/octet-stream")) for name, data in cases.items()]
    r = client.post(server + "/predict", files=files)
    assert r.status_code == 200, r.text
    preds = {p["filename"]: p for p in r.json()["predictions"]}
    for name, data in cases.items():
        np.testing.assert_allclose(_scores(preds[name], predictor.labels), _offline(predictor, data), atol=1e-4,
                                   err_msg=name)
    upright = _scores(preds["rotated.png"], predictor.labels)
    np.testing.assert_allclose(upright, _offline(predictor, encode(base, "PNG")), atol=1e-4)
    gif_first = _offline(predictor, encode(frames[0], "GIF"))
    np.testing.assert_allclose(_scores(preds["animated.gif"], predictor.labels), gif_first, atol=1e-4)


def test_metrics_count_requests_batches_and_queue(server, client):
    client.post(server + "/predict", content=jpeg(), headers={"Content-Type": "image/jpeg"})
    client.post(server + "/predict", content=b"not an image")
    r = client.get(server + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert metric(text, "imgclf_requests_total", endpoint="/predict", method="POST", status="200") >= 1
    assert metric(text, "imgclf_requests_total", endpoint="/predict", method="POST", status="400") >= 1
    assert metric(text, "imgclf_batch_size_count") >= 1 and metric(text, "imgclf_batch_size_sum") >= 1
    assert metric(text, "imgclf_request_duration_seconds_count", endpoint="/predict") >= 2
    assert metric(text, "imgclf_queue_depth") == 0
    assert metric(text, "imgclf_model_ready") == 1
    assert metric(text, "imgclf_internal_errors_total") == 0


def test_docs_are_served_without_a_cdn(server, client):
    page = client.get(server + "/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert "cdn." not in page.text
    js = [s for s in page.text.split('"') if s.endswith("swagger-ui-bundle.js")]
    assert js and client.get(server + js[0]).status_code == 200
    spec = client.get(server + "/openapi.json").json()
    assert {"/predict", "/score", "/v2/models/{name}/infer", "/metrics", "/v2/health/ready"} <= set(spec["paths"])
