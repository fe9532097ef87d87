"""OpenVINO engine: the default on x86, fp32/bf16/int8 against ONNX Runtime, batch shapes, fallback, bundles."""
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from features_helpers import _cos, _generated, _photos

from imgclf.config.settings import EngineConfig, ModelConfig, load_config
from imgclf.features.engines import cpu_flags, cpu_has_bf16, resolve_engine
from imgclf.features.featurize import build_featurizer
from imgclf.features.onnxruntime import OnnxRuntimeEngine
from imgclf.features.openvino import OpenVinoEngine
from imgclf.features.ovcore import openvino_problem
from imgclf.inference.predict import Predictor
from imgclf.refine.model import Precision
from imgclf.util.files import read_json

pytestmark = pytest.mark.skipif(bool(openvino_problem()), reason=f"OpenVINO cannot run here: {openvino_problem()}")


def test_default_engine_is_openvino_on_x86_with_bf16_where_the_cpu_has_it():
    cfg = load_config()
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    assert cfg.engine.backend == ("openvino" if x86 else "onnxruntime") and cfg.engine.precision == "auto"
    assert cpu_has_bf16() == bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    ran = resolve_engine(EngineConfig(backend="openvino", precision="auto"))
    assert (ran.backend, ran.precision) == ("openvino", "bf16" if cpu_has_bf16() else "fp32")
    assert Precision("auto", "cpu").name == ran.precision, "training autocasts exactly where inference runs bf16: one probe"
    for backend in ("onnxruntime", "torch"):  # auto is fp32 wherever bf16 is not the engine's own choice
        assert resolve_engine(EngineConfig(backend=backend, precision="auto")).precision == "fp32"
    assert resolve_engine(EngineConfig(backend="openvino", precision="int8")).precision == "int8"


@pytest.mark.slow
def test_openvino_fp32_matches_onnxruntime_and_bf16_stays_close(lite0):
    x = _photos(lite0["spec"])
    ref = OnnxRuntimeEngine(lite0["fp32"], lite0["spec"], "f").run(x)
    f32 = OpenVinoEngine(lite0["fp32"], lite0["spec"], "f", precision="fp32")
    bf16 = OpenVinoEngine(lite0["fp32"], lite0["spec"], "b", precision="bf16")
    assert f32.dim == bf16.dim == 1280
    a, b = f32.run(x), bf16.run(x)
    assert a.shape == b.shape == ref.shape and a.dtype == np.float32
    assert _cos(a, ref).min() > 0.99999 and np.abs(a - ref).max() < 1e-3
    assert _cos(b, ref).min() > 0.995  # bf16 keeps 8 bits of mantissa: close, yet not fp32's features
    assert np.abs(ref).max() > 0.1  # real activations, not a degenerate all-zero comparison


@pytest.mark.slow
def test_every_batch_size_gives_the_same_rows(lite0):
    """Sizes met once run on the dynamic-batch model, repeated ones on a static compile, large ones on
    one stream per thread: same numbers."""
    from imgclf.features.openvino import _STREAM_MIN

    x = _generated(lite0["spec"], 2 * _STREAM_MIN + 1, seed=3)
    engine = OpenVinoEngine(lite0["fp32"], lite0["spec"], "f", threads=2, precision="fp32")
    whole = engine.run(x)  # >= _STREAM_MIN crops per stream: split over two single-threaded streams
    assert engine._streams is not None and engine.streams == 2
    for _ in range(3):  # the second call of a size compiles it statically
        np.testing.assert_allclose(np.concatenate([engine.run(x[i:i + 1]) for i in range(len(x))]), whole, atol=1e-4)
        np.testing.assert_allclose(np.concatenate([engine.run(x[:3]), engine.run(x[3:6]), engine.run(x[6:9])]), whole[:9], atol=1e-4)
    assert set(engine._compiled) == {("crops", -1), ("crops", 1), ("crops", 3)}  # the dynamic model, the first two sizes met twice
    for n in (2, 5, 2 * _STREAM_MIN):  # further sizes share the dynamic or the streams model: a server's memory stays flat
        np.testing.assert_allclose(engine.run(x[:n]), whole[:n], atol=1e-4)
        engine.run(x[:n])
    assert set(engine._compiled) == {("crops", -1), ("crops", 1), ("crops", 3)}
    one = OpenVinoEngine(lite0["fp32"], lite0["spec"], "f", threads=2, precision="fp32", streams=1)  # engine.streams = 1
    np.testing.assert_allclose(one.run(x), whole, atol=1e-4)
    assert one.streams == 1 and one._streams is None


@pytest.mark.slow
def test_every_engine_takes_crops_and_normalised_input_alike(lite0):
    """uint8 crops (normalised inside OpenVINO's network, in numpy for the others) give the features of
    the float input normalize() makes from them."""
    from imgclf.features.engines import TorchEngine
    from imgclf.features.preprocess import normalize

    crops = _photos(lite0["spec"])
    assert crops.dtype == np.uint8 and crops.shape[1:] == (224, 224, 3)
    floats = normalize(crops, lite0["spec"])
    assert floats.shape == (len(crops), 3, 224, 224)
    engines = [OpenVinoEngine(lite0["fp32"], lite0["spec"], "f", precision="fp32"),
               OnnxRuntimeEngine(lite0["fp32"], lite0["spec"], "f"), TorchEngine(lite0["module"], lite0["spec"], "t")]  # the exported network
    for e in engines:
        a, b = e.run(crops), e.run(floats)
        assert _cos(a, b).min() > 0.99999 and np.abs(a - b).max() < 1e-3, type(e).__name__
    bf16 = OpenVinoEngine(lite0["fp32"], lite0["spec"], "b", precision="bf16")
    assert _cos(bf16.run(crops), bf16.run(floats)).min() > 0.9995


@pytest.mark.slow
def test_flip_averaging_mirrors_the_width_of_crops_and_of_normalised_input(lite0):
    """Flip TTA mirrors left-right whatever the input layout (never the colour channels)."""
    from imgclf.features.engines import FlipAveraged, flip_id
    from imgclf.features.preprocess import normalize

    crops = _photos(lite0["spec"])
    engine = OpenVinoEngine(lite0["fp32"], lite0["spec"], "efficientnet_lite0-r224-imagenet-fp32", precision="fp32")
    tta = FlipAveraged(engine)
    expected = (engine.run(crops) + engine.run(crops[:, :, ::-1])) / 2  # (B, H, W, 3): W is axis 2
    np.testing.assert_allclose(tta.run(crops), expected, atol=1e-4)
    np.testing.assert_allclose(tta.run(normalize(crops, lite0["spec"])), expected, atol=1e-3)
    assert np.abs(tta.run(crops) - engine.run(crops)).max() > 1e-3  # the mirror image really differs
    assert tta.feature_id == flip_id(engine.feature_id) == "efficientnet_lite0-r224-imagenet.flip-fp32"


@pytest.mark.slow
def test_openvino_runs_the_int8_file_like_onnxruntime(lite0):
    x = _photos(lite0["spec"])
    ort = OnnxRuntimeEngine(lite0["int8"], lite0["spec"], "q").run(x)
    ov = OpenVinoEngine(lite0["int8"], lite0["spec"], "q", precision="int8").run(x)
    fp32 = OnnxRuntimeEngine(lite0["fp32"], lite0["spec"], "f").run(x)
    assert _cos(ov, ort).min() > 0.99  # the same quantised network, kernels of two runtimes
    assert _cos(ov, fp32).mean() > 0.95


def test_bf16_features_are_cached_apart_from_fp32(lite0, tmp_path):
    import shutil

    shutil.copy(lite0["fp32"], tmp_path / "efficientnet_lite0-r224-imagenet-fp32.onnx")
    native = ModelConfig(resampler="native")  # the export was made with the backbone's own spec
    ids = {p: build_featurizer(native, EngineConfig(backend="openvino", precision=p), cache_dir=tmp_path).feature_id
           for p in ("fp32", "bf16")}
    assert ids == {"fp32": "efficientnet_lite0-r224-imagenet-fp32", "bf16": "efficientnet_lite0-r224-imagenet-bf16"}


def test_bundle_records_the_engine_that_made_its_features(trained_run):
    meta = read_json(trained_run / "model" / "bundle.json")
    ran = resolve_engine(load_config().engine)
    assert (meta["engine"]["backend"], meta["engine"]["precision"]) == (ran.backend, ran.precision)
    assert meta["featurizer"]["precision"] == ran.precision and meta["featurizer"]["feature_id"].endswith(f"-{ran.precision}")
    predictor = Predictor(trained_run / "model")
    assert type(predictor.compute.engines[0]).__name__ == {"openvino": "OpenVinoEngine", "onnxruntime": "OnnxRuntimeEngine"}[ran.backend]
    assert predictor.compute.engines[0].precision == ran.precision


@pytest.mark.slow
def test_where_openvino_cannot_load_onnxruntime_takes_over_with_one_notice(trained_run, tmp_path):
    """A stand-in ``openvino`` package that fails to import, as on a CPU OpenVINO does not support."""
    fake = tmp_path / "fake" / "openvino"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("this CPU is not supported (simulated)")\n')
    images = sorted(str(p) for p in Path(read_json(trained_run / "config.json")["data"]["images"]).rglob("*.jpg"))[:3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "imgclf", "predict", str(trained_run / "model"), *images,
                          "--set", "engine.backend=openvino"], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    notices = [line for line in out.stderr.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1 and "OpenVINO cannot run here" in notices[0] and "simulated" in notices[0]
    assert "Traceback" not in out.stderr
    assert len(out.stdout.splitlines()) == len(images) and all('"label"' in line for line in out.stdout.splitlines())


def _tiny_onnx(path: Path, width: int) -> Path:
    """An ONNX graph (B, 3) → (B, ``width``) written whole and moved into place, as exports are."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3, width), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])], [w])
    tmp = path.with_suffix(".tmp")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp))
    os.replace(tmp, path)
    return path


def test_a_file_is_read_once_per_version_and_a_replaced_file_is_read_again(tmp_path):
    from imgclf.features.ovcore import read_model

    path = _tiny_onnx(tmp_path / "f.onnx", 4)
    first = read_model(path)
    assert read_model(str(path)) is first and first.output(0).get_partial_shape()[1].get_length() == 4
    _tiny_onnx(path, 6)  # a new export moved over the old one: another file, another model
    again = read_model(path)
    assert again is not first and again.output(0).get_partial_shape()[1].get_length() == 6
    path.unlink()
    with pytest.raises(FileNotFoundError):
        read_model(path)
