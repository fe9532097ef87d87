"""Class activation maps: the exact decomposition of the decision value, where the peak lies, the
feature-map output of each engine, and the models maps cannot explain."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from datagen import CLASSES, make_object_image
from PIL import Image

from imgclf.classifier.linear import LinearHead
from imgclf.classifier.svm import SvmClassifier
from imgclf.config.settings import EngineConfig
from imgclf.inference.explain import Explainer, class_maps, upsample
from imgclf.inference.predict import Predictor
from imgclf.util.errors import InvalidRequest, NotExplainable


@pytest.fixture(scope="module")
def predictor(trained_run: Path) -> Predictor:
    """The shared run's bundle on ONNX Runtime in fp32."""
    return Predictor(trained_run / "model", EngineConfig(backend="onnxruntime", precision="fp32"))


def _inputs(trained_run: Path, predictor: Predictor, n: int = 6) -> np.ndarray:
    paths = sorted(p for p in (trained_run.parent / "images").rglob("*.jpg"))[::8][:n]
    return np.stack([predictor.compute.prepare(str(p)) for p in paths])  # (n, 3, R, R)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
def test_map_mean_plus_bias_is_the_decision_value(trained_run: Path, predictor: Predictor, backend: str):
    """fp32: mean(M_c) + b_c equals the decision value the predict path computes from the pooled
    features, for every class, with the SVM's L2 normalisation and without it (a refined head)."""
    pred = predictor if backend == "onnxruntime" else Predictor(trained_run / "model", EngineConfig(backend=backend, precision="fp32"))
    x = _inputs(trained_run, pred)
    maps = pred.explainer.feature_maps(x)  # (n, D, h, w)
    assert maps.shape[:2] == (len(x), pred.compute.engines[0].dim) and maps.shape[2] > 1
    pooled = pred.compute.engines[0].run(x)
    head = pred.bundle.head
    assert head.l2_normalize
    unnormalised = LinearHead(head.weight, head.bias, 1.0, l2_normalize=False)
    for h in (head, unnormalised):
        decision = h.decision_function(pooled)  # (n, K)
        for i in range(len(x)):
            m = class_maps(maps[i], h, range(len(CLASSES)))  # (K, h, w)
            np.testing.assert_allclose(m.mean(axis=(1, 2)) + h.bias, decision[i], rtol=0, atol=1e-4)


def test_explanation_agrees_with_predict(trained_run: Path, predictor: Predictor):
    path = str(sorted((trained_run.parent / "images" / "stripes").glob("*.jpg"))[0])
    e = predictor.explain(path, ["circles"])
    r = predictor.predict([path])[0]
    assert e.label == r["label"] and set(e.maps) == {r["label"], "circles"}
    assert e.proba == pytest.approx([r["scores"][c] for c in CLASSES], abs=1e-5)
    for c, m in e.maps.items():
        assert float(m.mean()) + e.bias[c] == pytest.approx(float(e.decision[CLASSES.index(c)]), abs=1e-4)
    d = e.to_dict()
    assert d["maps"][e.label]["decision"] == pytest.approx(float(np.mean(d["maps"][e.label]["values"])) + d["maps"][e.label]["bias"],
                                                          abs=1e-4)
    png = Image.open(io.BytesIO(e.overlay_png(size=128)))
    assert png.format == "PNG" and max(png.size) <= 128
    with pytest.raises(InvalidRequest):
        predictor.explain(path, ["no_such_class"])


def test_peak_lies_on_the_object(predictor: Predictor):
    """A head trained on small generated pictures (one textured square at a random place on a plain
    background): the map of the true class peaks on the square, to the map's resolution (half a cell)."""
    rng = np.random.default_rng(0)
    spec, engine = predictor.bundle.spec, predictor.compute.engines[0]
    train = [(make_object_image(c, rng)[0], k) for k, c in enumerate(CLASSES) for _ in range(10)]
    x = np.stack([_pre(img, spec) for img, _ in train])
    svm = SvmClassifier(c_values=(0.1, 1.0, 10.0), cv_folds=3).fit(engine.run(x), np.array([k for _, k in train]))
    explainer = Explainer(engine, svm.head_, CLASSES, spec)
    for trial in range(9):
        cls = CLASSES[trial % 3]
        img, (x0, y0, x1, y1) = make_object_image(cls, rng)
        a = np.asarray(img)
        e = explainer.explain_map(explainer.feature_maps(_pre(img, spec)[None])[0], a, [cls])
        values, inside_crop = upsample(e.maps[cls], a.shape[1], a.shape[0], e.box)
        yy, xx = np.unravel_index(np.argmax(np.where(inside_crop, values, -np.inf)), values.shape)
        half_cell = e.box[2] / e.maps[cls].shape[1] / 2
        assert x0 - half_cell <= xx + 0.5 <= x1 + half_cell and y0 - half_cell <= yy + 0.5 <= y1 + half_cell, \
            f"{cls}: peak at {(xx, yy)}, object at {(x0, y0, x1, y1)}"


def _pre(img: Image.Image, spec) -> np.ndarray:
    from imgclf.features.preprocess import preprocess

    return preprocess(np.asarray(img), spec)


def test_several_featurizers_are_refused(tmp_path: Path):
    """A featurizer whose output concatenates two pooled maps has no single map to decompose."""
    import onnx
    from onnx import TensorProto, helper

    from imgclf.features.export import with_feature_map

    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["p1"]), helper.make_node("Flatten", ["p1"], ["f1"]),
             helper.make_node("GlobalAveragePool", ["input"], ["p2"]), helper.make_node("Flatten", ["p2"], ["f2"]),
             helper.make_node("Concat", ["f1", "f2"], ["features"], axis=1)]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 3, 8, 8])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["b", 6])])
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(NotExplainable, match="Concat"):
        with_feature_map(path)


def test_head_of_another_width_is_refused(predictor: Predictor, trained_run: Path):
    head = LinearHead(np.zeros((3, 7), np.float32), np.zeros(3, np.float32))
    fmap = predictor.explainer.feature_maps(_inputs(trained_run, predictor, 1))[0]
    with pytest.raises(NotExplainable, match="takes 7 features"):
        class_maps(fmap, head, [0])
