"""Predictor: what a user calls (predict, predict_proba, explain); what a server batches is its `compute`."""
from __future__ import annotations

import inspect

import numpy as np

from imgclf.inference.predict import Predictor


def test_a_predictor_offers_predict_predict_proba_and_explain(trained_run):
    public = {n for n, v in inspect.getmembers(Predictor) if not n.startswith("_") and callable(v)}
    assert public == {"predict", "predict_proba", "explain"}
    for name in public:
        assert (getattr(Predictor, name).__doc__ or "").strip(), f"Predictor.{name} has no docstring"


def test_predict_takes_paths_and_bytes_alike_and_lists_what_it_cannot_read(trained_run, tmp_path):
    p = Predictor(trained_run / "model")
    files = sorted(str(f) for f in (trained_run.parent / "images").rglob("*.jpg"))[:4]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not an image")
    by_path = p.predict([*files, str(bad)])
    by_bytes = p.predict([open(f, "rb").read() for f in files] + [bad.read_bytes()])
    assert [r["path"] for r in by_path] == [*files, str(bad)] and "error" in by_path[-1] and "error" in by_bytes[-1]
    for a, b in zip(by_path[:-1], by_bytes[:-1]):
        assert a["label"] == b["label"] and a["scores"] == b["scores"]
    proba = p.predict_proba([*files, str(bad)])
    assert proba.shape == (5, len(p.labels)) and np.isnan(proba[-1]).all()
    np.testing.assert_allclose(proba[:-1].sum(axis=1), 1.0, atol=1e-5)
    assert [p.labels[i] for i in proba[:-1].argmax(axis=1)] == [r.get("nearest_label", r["label"]) for r in by_path[:-1]]


def test_loading_an_fp32_bundle_and_predicting_does_not_import_onnx(trained_run):
    """The bundle's checks read the ONNX file's bytes (external data, quantisation) without the onnx package, whose
    import costs more than half a second of CPU in each server, Ray actor and `imgclf predict`."""
    import subprocess
    import sys

    image = sorted((trained_run.parent / "images").rglob("*.jpg"))[0]
    for backend in ("openvino", "onnxruntime"):
        code = ("import sys; from imgclf.config.settings import EngineConfig; from imgclf.inference.predict import Predictor\n"
                f"p = Predictor({str(trained_run / 'model')!r}, EngineConfig(backend={backend!r}))\n"
                f"row = p.predict([{str(image)!r}])[0]; assert 'error' not in row, row\n"
                "print(sorted(m for m in ('onnx', 'ml_dtypes') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "[]", (backend, out.stdout)
