"""ONNX Runtime engine: export, fp32 parity with torch, int8 quantisation, threads, memory, bundles."""
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset, tiny_config
from features_helpers import _cos, _generated, _photos
from memutil import peak_rss

from imgclf.api import run
from imgclf.config.settings import ConfigError, EngineConfig, ModelConfig, load_config
from imgclf.evaluation.int8 import int8_report
from imgclf.evaluation.metrics import Metrics
from imgclf.features.engines import TorchEngine, cpu_threads
from imgclf.features.export import _static_same_padding, cached_onnx
from imgclf.features.featurize import build_featurizer, featurize_paths
from imgclf.features.ids import FeatureId
from imgclf.features.onnxruntime import OnnxRuntimeEngine
from imgclf.features.preprocess import normalize
from imgclf.features.quantize import calibration_digest, onnx_precision
from imgclf.inference.predict import Predictor
from imgclf.util.errors import ImgclfError
from imgclf.util.files import read_csv, read_json


def test_ort_fp32_matches_torch_within_1e_4(lite0):
    x = _photos(lite0["spec"])
    ort = OnnxRuntimeEngine(lite0["fp32"], lite0["spec"], "f")
    torch_engine = TorchEngine(lite0["module"], lite0["spec"], "f")
    a, b = ort.run(x), torch_engine.run(x)
    assert a.shape == b.shape == (len(x), 1280) and ort.dim == 1280
    assert np.abs(a - b).max() < 1e-4
    assert np.abs(b).max() > 0.1  # real activations, not a degenerate all-zero comparison
    # dynamic batch: one image at a time gives the same rows
    np.testing.assert_allclose(ort.run(x[:1])[0], a[0], atol=1e-5)


def test_export_is_fast_self_contained_and_has_static_padding(lite0):
    import onnx

    assert lite0["export_s"] < 60
    model = onnx.load(str(lite0["fp32"]))
    assert not list((lite0["dir"]).glob("*.data"))  # weights inside the one file
    ops = {n.op_type for n in model.graph.node}
    assert "Shape" not in ops  # no run-time shape arithmetic left for the quantiser to corrupt
    assert [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim][0] == "batch"


def test_static_padding_copy_is_exact_and_leaves_the_original_alone(lite0):
    import torch
    from timm.layers.conv2d_same import Conv2dSame

    module = lite0["module"]
    copy = _static_same_padding(module, 224)
    x = torch.from_numpy(normalize(_generated(lite0["spec"], 2, seed=4), lite0["spec"]))
    with torch.inference_mode():
        assert torch.equal(module(x), copy(x))
    same = [m for m in module.modules() if type(m) is Conv2dSame]
    assert len(same) == 5  # lite0's stride-2 depthwise convolutions (and the stem) pad dynamically
    wrapped = {id(m.op) for m in copy.modules() if type(m).__name__ == "_Padded"}
    assert len(wrapped) == 5 and all(id(m) in wrapped for m in copy.modules() if type(m) is Conv2dSame)
    assert not any(type(m).__name__ == "_Padded" for m in module.modules())
    half = _static_same_padding(copy.to(torch.bfloat16), 224)  # e.g. a network refined in bf16
    assert next(half.parameters()).dtype == torch.float32 and next(copy.parameters()).dtype == torch.bfloat16


def test_int8_features_stay_close_to_fp32(lite0):
    x = _generated(lite0["spec"], 12, seed=20)  # not the calibration images
    fp32 = OnnxRuntimeEngine(lite0["fp32"], lite0["spec"], "f").run(x)
    int8 = OnnxRuntimeEngine(lite0["int8"], lite0["spec"], "q").run(x)
    cos = _cos(fp32, int8)
    assert cos.min() > 0.95, cos  # measured: mean 0.99, min 0.98
    photos = _photos(lite0["spec"])
    assert _cos(OnnxRuntimeEngine(lite0["fp32"], lite0["spec"], "f").run(photos),
                OnnxRuntimeEngine(lite0["int8"], lite0["spec"], "q").run(photos)).mean() > 0.95
    assert onnx_precision(lite0["int8"]) == "int8" and onnx_precision(lite0["fp32"]) == "fp32"
    assert lite0["int8"].stat().st_size < 0.4 * lite0["fp32"].stat().st_size


def test_engine_threads_follow_the_config(lite0, tmp_path):
    one = OnnxRuntimeEngine(lite0["fp32"], lite0["spec"], "f", threads=1)
    assert one.session.get_session_options().intra_op_num_threads == 1 == one.threads
    all_cores = OnnxRuntimeEngine(lite0["fp32"], lite0["spec"], "f", threads=0)
    assert all_cores.session.get_session_options().intra_op_num_threads == cpu_threads()
    cached = tmp_path / "efficientnet_lite0-r224-imagenet-fp32.onnx"  # the export's own (native) resampler: the id it is cached under
    shutil.copy(lite0["fp32"], cached)
    engine = build_featurizer(ModelConfig(resampler="native"), EngineConfig(backend="onnxruntime", threads=1), cache_dir=tmp_path)
    assert isinstance(engine, OnnxRuntimeEngine) and engine.threads == 1 and engine.onnx_path == cached  # from the cache, not exported again


class _Recorder:
    """A real engine that also notes how many decode threads are alive at each call."""

    def __init__(self, engine):
        self.engine, self.spec, self.dim, self.feature_id = engine, engine.spec, engine.dim, engine.feature_id
        self.decoders: list[int] = []

    def run(self, batch):
        self.decoders.append(sum(t.name.startswith("decode") for t in threading.enumerate()))
        return self.engine.run(batch)


def test_decode_threads_follow_engine_threads(lite0, tmp_path):
    images = make_dataset(tmp_path / "img", n_per_class=6, seed=2, size=64)
    paths = sorted(str(p) for p in images.rglob("*.jpg"))
    rec = _Recorder(OnnxRuntimeEngine(lite0["int8"], lite0["spec"], "q", threads=1))
    res = featurize_paths(paths, rec, batch_size=4, threads=1, progress=False)
    assert res.ok.all() and max(rec.decoders) == 1 and len(rec.decoders) == 5
    rec2 = _Recorder(rec.engine)
    res2 = featurize_paths(paths, rec2, batch_size=8, threads=2, progress=False)
    assert 1 <= max(rec2.decoders) <= 2
    np.testing.assert_allclose(res.features, res2.features, atol=1e-5)  # batching and threads don't change features


def test_featurize_paths_skips_bad_files_in_a_batch(lite0, tmp_path):
    images = make_dataset(tmp_path / "img", n_per_class=3, seed=5, size=64)
    paths = sorted(str(p) for p in images.rglob("*.jpg"))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    mixed = paths[:4] + [str(tmp_path / "bad.jpg"), str(tmp_path / "missing.jpg")] + paths[4:]
    engine = OnnxRuntimeEngine(lite0["fp32"], lite0["spec"], "f")
    res = featurize_paths(mixed, engine, batch_size=4, progress=False)
    clean = featurize_paths(paths, engine, batch_size=4, progress=False)
    assert res.ok.tolist() == [True] * 4 + [False, False] + [True] * 5
    assert [p for p, _ in res.errors] == [str(tmp_path / "bad.jpg"), str(tmp_path / "missing.jpg")]
    np.testing.assert_allclose(res.features[res.ok], clean.features, atol=1e-5)
    assert not res.features[~res.ok].any()


@pytest.mark.slow
def test_memory_stays_flat_over_600_images(lite0, tmp_path):

    images = make_dataset(tmp_path / "img", n_per_class=20, seed=6, size=128)
    paths = sorted(str(p) for p in images.rglob("*.jpg"))
    engine = OnnxRuntimeEngine(lite0["int8"], lite0["spec"], "q")
    featurize_paths(paths[:64], engine, progress=False)  # warm-up: arenas, thread pools
    with peak_rss(0.02) as rss:
        res = featurize_paths((paths * 10)[:600], engine, progress=False)
    assert res.ok.all() and len(res.paths) == 600
    assert rss.grew_mb < 150, f"RSS grew {rss.grew_mb:.0f} MB"


@pytest.mark.slow
def test_export_cache_is_reused_and_damage_is_rebuilt(lite0, tmp_path):
    fid = "efficientnet_lite0-r224-imagenet-fp32"
    with pytest.raises(ImgclfError, match="no exported featurizer"):  # absent: it exports (below, the same branch)
        cached_onnx(None, lite0["spec"], fid, tmp_path)
    damaged = tmp_path / f"{fid}.onnx"
    damaged.write_bytes(b"garbage")
    first = cached_onnx(lite0["module"], lite0["spec"], fid, tmp_path)  # the one export of this test
    assert first == damaged and first.stat().st_size > 1_000_000
    stamp = first.stat().st_mtime_ns
    assert cached_onnx(None, lite0["spec"], fid, tmp_path) == first and first.stat().st_mtime_ns == stamp


def test_calibration_digest_and_feature_ids(tmp_path):
    images = make_dataset(tmp_path / "img", n_per_class=2, seed=7, size=48)
    paths = sorted(str(p) for p in images.rglob("*.jpg"))
    assert calibration_digest(paths[:3]) == calibration_digest(list(paths[:3]))
    assert calibration_digest(paths[:3]) != calibration_digest(paths[1:4])
    int8 = FeatureId.parse("efficientnet_lite0-r224-imagenet-int8-abc123def456")
    assert (int8.backbone, int8.resolution, int8.weights, int8.calibration) == ("efficientnet_lite0", 224, "imagenet", "abc123def456")
    assert str(int8.with_precision("fp32")) == "efficientnet_lite0-r224-imagenet-fp32"
    fp32 = FeatureId.parse("efficientnet_lite2-r320-refined-0123456789ab-fp32")
    assert fp32.weights == "refined-0123456789ab" and str(fp32.with_precision("int8")) == "efficientnet_lite2-r320-refined-0123456789ab-int8"
    assert str(fp32.calibrated(calibration_digest(paths[:3]))) == f"efficientnet_lite2-r320-refined-0123456789ab-int8-{calibration_digest(paths[:3])[:12]}"
    area = FeatureId.parse("efficientnet_lite0-r224.area-imagenet-bf16")
    assert (area.resolution, area.resampler, area.precision) == (224, "area", "bf16")
    assert str(area.with_precision("fp32")) == "efficientnet_lite0-r224.area-imagenet-fp32"
    for text in ("efficientnet_lite0-r224-imagenet-fp32", str(int8), str(fp32), str(area)):
        assert str(FeatureId.parse(text)) == text
    with pytest.raises(ValueError, match="not a feature id"):
        FeatureId.parse("efficientnet_lite0-imagenet-fp16")


def test_config_refuses_precisions_an_engine_cannot_run():
    assert load_config(None, ["engine.backend=onnxruntime"]).engine.backend == "onnxruntime"
    assert load_config(None, ["engine.backend=torch"]).engine.backend == "torch"
    with pytest.raises(ConfigError, match="int8"):
        load_config(None, ["engine.backend=torch", "engine.precision=int8"])
    with pytest.raises(ConfigError, match="bf16") as e:
        load_config(None, ["engine.backend=onnxruntime", "engine.precision=bf16"])
    assert "openvino" in e.value.hint
    with pytest.raises(ConfigError, match="engine.backend must be one of 'onnxruntime', 'openvino', 'torch'"):
        load_config(None, ["engine.backend=tensorrt"])


def test_int8_report_warns_beyond_one_point():
    def m(acc: float, avg: float) -> Metrics:
        return Metrics(acc, avg, {}, {}, None, [], [], 0, {})

    quiet = int8_report(m(0.95, 0.94), m(0.955, 0.945))
    assert quiet["int8_accuracy_drop"] == pytest.approx(0.005) and "int8_warning" not in quiet
    loud = int8_report(m(0.90, 0.93), m(0.95, 0.935))
    assert loud["int8_accuracy_drop"] == pytest.approx(0.05) and "5.0 points" in loud["int8_warning"]


def test_bundle_holds_onnx_and_predict_on_onnxruntime_agrees_with_evaluate(trained_run):
    meta = read_json(trained_run / "model" / "bundle.json")
    assert meta["featurizer"]["onnx"] == "featurizer.onnx" and onnx_precision(trained_run / "model" / "featurizer.onnx") == "fp32"
    assert "featurizer.onnx" in read_json(trained_run / "model" / "manifest.json")["files"]
    predictor = Predictor(trained_run / "model", EngineConfig(backend="onnxruntime", precision="fp32"))
    assert isinstance(predictor.compute.engines[0], OnnxRuntimeEngine)
    assert predictor.compute.engines[0].onnx_path == trained_run / "model" / "featurizer.onnx"
    preds = read_csv(trained_run / "predictions.csv")
    out = predictor.predict([p["path"] for p in preds])
    assert [o["nearest_label"] for o in out] == [p["predicted"] for p in preds]  # the class, also where the answer is "unknown"
    # the run's own precision may be bf16 (the default engine on CPUs with bf16): scores agree to bf16's error
    atol = 1e-4 if meta["featurizer"]["precision"] == "fp32" else 0.02
    np.testing.assert_allclose([o["score"] for o in out], [float(p["score"]) for p in preds], atol=atol)


@pytest.mark.slow
def test_int8_run_reports_both_precisions_and_bundles_the_int8_model(tmp_path):
    images = make_dataset(tmp_path / "images", n_per_class=12, seed=8)
    cfg = tiny_config(tmp_path / "data", images, 'engine.precision="int8"', "engine.calibration_images=12", "model.resolution=64")
    m = run(cfg, tmp_path / "run", progress=False)
    for key in ("int8_accuracy", "int8_class_avg_accuracy", "fp32_accuracy", "fp32_class_avg_accuracy", "int8_accuracy_drop"):
        assert 0.0 <= abs(m.int8[key]) <= 1.0, key
    assert m.int8["int8_accuracy"] == m.accuracy and m.accuracy >= 0.8
    meta = read_json(tmp_path / "run" / "model" / "bundle.json")
    f = meta["featurizer"]
    assert f["precision"] == "int8" and f["quantization"]["calibration_images"] == 12
    assert f["feature_id"].startswith("efficientnet_lite0-r64.area-imagenet-int8-")  # the default resampler
    assert f["feature_id"].endswith(f["quantization"]["calibration_digest"][:12])
    assert onnx_precision(tmp_path / "run" / "model" / "featurizer.onnx") == "int8"
    assert (tmp_path / "data" / "engines" / f"{f['feature_id']}.onnx").is_file()
    predictor = Predictor(tmp_path / "run" / "model")
    assert predictor.compute.engines[0].precision == "int8"
    preds = read_csv(tmp_path / "run" / "predictions.csv")
    assert [o["nearest_label"] for o in predictor.predict([p["path"] for p in preds])] == [p["predicted"] for p in preds]


@pytest.mark.slow
def test_cached_export_builds_the_engine_without_torch(lite0, tmp_path):
    import subprocess
    import sys

    from imgclf.features.export import onnx_spec

    assert onnx_spec(lite0["fp32"]) == lite0["spec"]  # the export records its own preprocessing
    shutil.copy(lite0["fp32"], tmp_path / "efficientnet_lite0-r224-imagenet-fp32.onnx")  # the backbone's own resampler
    for backend, engine in (("onnxruntime", "OnnxRuntimeEngine"), ("openvino", "OpenVinoEngine")):
        code = ("import sys; from imgclf.config.settings import ModelConfig, EngineConfig; from imgclf.features.featurize import build_featurizer; "
                f"e = build_featurizer(ModelConfig(resampler='native'), EngineConfig(backend={backend!r}, precision='fp32'), cache_dir={str(tmp_path)!r}); "
                "print(type(e).__name__, e.dim, 'torch' in sys.modules, 'onnx' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.stdout.split() == [engine, "1280", "False", "False"], out.stderr


@pytest.mark.parametrize("reader", ["openvino", "onnx"])
def test_an_export_says_its_preprocessing_and_width_whoever_reads_it(lite0, tmp_path, monkeypatch, reader):
    """onnx_featurizer reads with OpenVINO where it runs, else with the onnx package: the same answers, and None
    for a file cut short, one without imgclf's metadata, and none at all."""
    import onnx

    import imgclf.features.ovcore as ov_engine
    from imgclf.features.export import onnx_featurizer

    if reader == "onnx":
        monkeypatch.setattr(ov_engine, "openvino_problem", lambda: "OpenVINO refused for this test")
    elif ov_engine.openvino_problem():
        pytest.skip(f"OpenVINO cannot run here: {ov_engine.openvino_problem()}")
    assert onnx_featurizer(lite0["fp32"]) == (lite0["spec"], 1280)
    cut, bare = tmp_path / "cut.onnx", tmp_path / "bare.onnx"
    cut.write_bytes(lite0["fp32"].read_bytes()[:1_000_000])
    model = onnx.load(str(lite0["fp32"]))
    del model.metadata_props[:]
    onnx.save(model, str(bare))
    assert onnx_featurizer(cut) is None and onnx_featurizer(bare) is None and onnx_featurizer(tmp_path / "none.onnx") is None


def test_precise_int8_kernels_only_where_the_cpu_lacks_vnni():
    from imgclf.features.engines import cpu_flags, cpu_has_vnni
    from imgclf.features.onnxruntime import session_options

    flags = cpu_flags()
    if Path("/proc/cpuinfo").is_file():
        assert "fpu" in flags or "fp" in flags  # every x86 and ARM Linux CPU lists one of them
    assert cpu_has_vnni() == bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    o = session_options(1)
    # the precise kernels cost half of int8's speed with VNNI, and are needed without it
    if cpu_has_vnni():
        with pytest.raises(Exception):
            o.get_session_config_entry("session.x64quantprecision")
    else:
        assert o.get_session_config_entry("session.x64quantprecision") == "1"
