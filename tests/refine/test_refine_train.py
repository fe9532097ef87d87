"""Refinement end to end: bundles for dnn and svm_on_refined, curves, skipped images, frozen layers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datagen import make_dataset, tiny_config
from refine_helpers import TINY
from safetensors.torch import load_file

from imgclf.api import run
from imgclf.bundle.folder import load_bundle
from imgclf.config.settings import EngineConfig
from imgclf.data.split import load_split
from imgclf.features.backbones import create_backbone
from imgclf.features.preprocess import normalize
from imgclf.features.quantize import onnx_precision
from imgclf.inference.predict import Predictor
from imgclf.pipeline.steps import prepare, train
from imgclf.refine.data import holdout
from imgclf.rundir.layout import RunDir
from imgclf.util.budget import TimeBudget
from imgclf.util.files import read_csv, read_json


# refine.resolution wins over model.resolution
DNN = (*TINY, "refine.epochs=3", 'train.classifier="dnn"', "refine.log_samples=true", "model.resolution=96", "refine.resolution=64")


@pytest.fixture(scope="module")
def dnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dnn run (3 classes × 10 images in ``../images``, 64 px, 3 epochs, settings ``DNN``) shared by the tests
    of this module; read-only."""
    base = tmp_path_factory.mktemp("refine")
    images = make_dataset(base / "images", n_per_class=10, seed=2)
    run(tiny_config(base / "data", images, *DNN), base / "run", progress=False)
    return base / "run"


@pytest.mark.slow
def test_dnn_bundle_holds_the_refined_network_and_its_history(dnn_run: Path):
    b = load_bundle(dnn_run / "model")
    assert b.meta.classifier["type"] == "dnn" and not b.head.l2_normalize
    # calibrated on the 6 validation images held out of train; the detector's reference is the other 18
    assert b.head.temperature > 0 and b.meta.classifier["temperature"] == b.head.temperature
    assert b.ood() is not None and b.ood().reference.shape == (18, 1280) and len(b.ood().train_scores) == 6
    f = b.meta.featurizer
    assert f["weights"].startswith("refined-") and f["weights"] in f["feature_id"] and f["dim"] == 1280
    assert (dnn_run / "model" / "backbone.safetensors").is_file() and (dnn_run / "model" / "featurizer.onnx").is_file()
    hist = b.meta.training_history
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert all(0 <= h["train_error"] <= 1 and 0 <= h["val_error"] <= 1 and h["val_images"] == 6 for h in hist)
    assert all(h["train_images"] == 18 for h in hist)  # 24 train images minus 6 held out for validation
    assert min(h["val_error"] for h in hist) <= 0.5
    assert (b.meta.backbone, b.meta.resolution, b.spec.resolution) == ("efficientnet_lite0", 64, 64)
    metrics = read_json(dnn_run / "metrics.json")
    assert metrics["training_history"] == hist and metrics["classifier"]["type"] == "dnn"
    assert (metrics["backbone"], metrics["resolution"]) == ("efficientnet_lite0", 64)
    assert metrics["accuracy"] >= 0.6  # 3 classes: chance is 0.33
    assert (dnn_run / "training_curves.png").stat().st_size > 5000
    assert 'alt="training_curves"' in (dnn_run / "report.html").read_text()
    assert not list((dnn_run / "refine").glob("checkpoint*"))  # removed once the bundle exists


@pytest.mark.slow
def test_bundle_predictions_equal_the_refined_network_in_eval_mode(dnn_run: Path):
    b = load_bundle(dnn_run / "model")
    backbone, spec = create_backbone("efficientnet_lite0", 64, pretrained=False)
    backbone.load_state_dict(load_file(str(dnn_run / "model" / "backbone.safetensors")))
    test = [r.path for r in load_split(str(dnn_run / "split.csv")) if r.split == "test"][:5]
    predictors = {backend: Predictor(dnn_run / "model", EngineConfig(backend=backend)) for backend in ("onnxruntime", "torch")}
    crops = np.stack([predictors["torch"].compute.prepare(p) for p in test])  # (5, H, W, 3) uint8: what every engine takes
    x = torch.from_numpy(normalize(crops, spec))
    with torch.no_grad():
        logits = b.head.temperature * (backbone.eval()(x).numpy() @ b.head.weight.T + b.head.bias)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    for backend, predictor in predictors.items():
        got = predictor.predict(test)
        proba = np.array([[r["scores"][n] for n in b.labels] for r in got])
        assert np.abs(proba - expected).max() < 1e-4, backend


@pytest.mark.slow
def test_frozen_layers_and_batchnorm_statistics_keep_their_pretrained_values(dnn_run: Path):
    refined = load_file(str(dnn_run / "model" / "backbone.safetensors"))
    pretrained = create_backbone("efficientnet_lite0", 64, pretrained=True)[0].state_dict()
    for k, v in pretrained.items():
        same = torch.equal(refined[k], v)
        if k.startswith(("conv_stem", "bn1", "blocks.0.", "blocks.1.", "blocks.2.")) or "running_" in k:
            assert same, f"{k} changed although frozen (refine.freeze_stages=4, refine.bn_freeze)"
    assert not torch.equal(refined["blocks.5.0.conv_pw.weight"], pretrained["blocks.5.0.conv_pw.weight"])


@pytest.mark.slow
def test_every_train_image_is_seen_once_per_epoch_and_validation_is_held_out_of_train(dnn_run: Path):
    log = read_json(dnn_run / "refine" / "samples_seen.json")
    rows = load_split(str(dnn_run / "split.csv"))
    train = [r for r in rows if r.split == "train"]
    test_paths = {r.path for r in rows if r.split == "test"}
    labels = sorted({r.label for r in rows})
    _, val = holdout(np.array([labels.index(r.label) for r in train]), 0.2, seed=0)
    val_paths = {train[i].path for i in val}
    assert set(log["paths"]) == {r.path for r in train} - val_paths and not set(log["paths"]) & test_paths
    assert len(log["epochs"]) == 3
    for ep in log["epochs"]:
        (ids,) = ep["by_rank"]
        assert sorted(ids) == list(range(len(log["paths"])))


@pytest.mark.slow
def test_svm_on_refined_trains_the_svm_on_the_refined_features(tmp_path: Path):
    images = make_dataset(tmp_path / "images", n_per_class=8, seed=4)
    cfg = tiny_config(tmp_path / "data", images, *TINY, "refine.epochs=2", 'train.classifier="svm_on_refined"')
    m = run(cfg, tmp_path / "run", progress=False)
    b = load_bundle(tmp_path / "run" / "model")
    assert b.meta.classifier["type"] == "svm_on_refined" and b.head.l2_normalize
    z = np.load(tmp_path / "run" / "features.npz", allow_pickle=False)
    assert str(z["feature_id"]) == b.meta.featurizer["feature_id"] and "refined-" in str(z["feature_id"])
    assert z["ok"].all() and len(z["paths"]) == 24
    engine = b.build_engine(cfg.engine)
    p = Predictor(tmp_path / "run" / "model")
    some = [str(x) for x in z["paths"][:4]]
    assert np.abs(engine.run(np.stack([p.compute.prepare(s) for s in some])) - z["features"][:4]).max() < 1e-4
    assert m.accuracy >= 0.6 and len(m.training_history) == 2


@pytest.mark.slow
def test_a_corrupt_training_image_is_skipped_counted_and_listed(tmp_path: Path):
    images = make_dataset(tmp_path / "images", n_per_class=6, seed=5)
    cfg = tiny_config(tmp_path / "data", images, *TINY, "refine.epochs=2", 'train.classifier="dnn"', "refine.val_fraction=0")
    rd = RunDir(tmp_path / "run")
    prepare(cfg, rd.root)
    victim = next(r.path for r in load_split(str(rd.split)) if r.split == "train")
    Path(victim).write_bytes(Path(victim).read_bytes()[:300])  # truncated after prepare checked it
    out = train(cfg, rd.root)
    assert out["skipped"] == 1
    hist = load_bundle(rd.model).meta.training_history
    assert [h["skipped"] for h in hist] == [1, 1] and all(h["train_images"] == 11 for h in hist)
    rows = [r for r in read_csv(rd.skipped) if r["stage"] == "refine"]
    assert [r["path"] for r in rows] == [victim] and rows[0]["reason"]


@pytest.mark.slow
def test_int8_refined_bundle_is_quantised_and_judged_against_its_own_fp32_network(dnn_run: Path, tmp_path: Path):
    images = dnn_run.parent / "images"
    fp32 = read_json(dnn_run / "metrics.json")  # the fp32 run: dnn_run, with the same settings but the precision
    int8 = run(tiny_config(tmp_path / "d8", images, *DNN, "engine.calibration_images=8", 'engine.precision="int8"'), tmp_path / "int8",
               progress=False).to_dict()
    b = load_bundle(tmp_path / "int8" / "model")
    f = b.meta.featurizer
    assert f["precision"] == "int8" and onnx_precision(tmp_path / "int8" / "model" / "featurizer.onnx") == "int8"
    assert f["feature_id"].endswith(f["quantization"]["calibration_digest"][:12]) and "-int8-" in f["feature_id"]
    assert f["quantization"]["calibration_images"] == 8
    assert onnx_precision(dnn_run / "model" / "featurizer.onnx") == "fp32"
    # the same refinement (same seed) in both runs: int8's fp32 reference is exactly the fp32 run
    assert load_bundle(dnn_run / "model").meta.featurizer["weights"] == f["weights"]
    assert int8["precision"] == "int8" and int8["int8_accuracy"] == int8["accuracy"]
    assert int8["fp32_accuracy"] == fp32["accuracy"] and int8["fp32_class_avg_accuracy"] == fp32["class_avg_accuracy"]
    assert int8["int8_accuracy_drop"] == fp32["accuracy"] - int8["accuracy"]
    got = Predictor(tmp_path / "int8" / "model").predict([str(p) for p in sorted(images.rglob("*.jpg"))[:3]])
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-5 for r in got)


def test_epochs_that_fit_the_time_refinement_may_take():
    from imgclf.config.settings import RefineConfig
    from imgclf.refine.loop import epochs_that_fit

    r = RefineConfig(epochs=8, max_s=100.0)
    assert epochs_that_fit(r, 10.0, 1) == 8  # 10 s an epoch: all 8 fit
    assert epochs_that_fit(r, 30.0, 1) == 3  # 30 s an epoch: two more fit in the 70 s left
    assert epochs_that_fit(r, 150.0, 1) == 1  # already past: the epoch done stays, nothing more
    assert epochs_that_fit(r, 60.0, 2, start=3) == 6  # resumed after 3: 2 done at 30 s each, 1 more fits
    assert epochs_that_fit(RefineConfig(epochs=8), 1e6, 1) == 8  # no limit


@pytest.mark.slow
def test_the_run_budget_reaches_refinement(tmp_path: Path):
    images = make_dataset(tmp_path / "images", n_per_class=6, seed=3)
    cfg = tiny_config(tmp_path / "data", images, *TINY, "refine.epochs=50", 'train.classifier="dnn"',
                      "doctor.enabled=false", "data.check_leakage=false")
    prepare(cfg, tmp_path / "run")
    out = train(cfg, tmp_path / "run", budget=TimeBudget.start(0.001))  # out of time: refinement gets the least step, 1 s
    hist = load_bundle(tmp_path / "run" / "model").meta.training_history
    assert 1 <= out["epochs"] == len(hist) < 50 and any(h.get("epochs_cut_to") == len(hist) for h in hist)
    assert read_json(tmp_path / "run" / "config.json")["refine"]["epochs"] == 50, "the user's setting is not rewritten"


@pytest.mark.slow
def test_refinement_out_of_time_stops_after_an_epoch_and_says_so(tmp_path: Path):
    images = make_dataset(tmp_path / "images", n_per_class=6, seed=3)
    cfg = tiny_config(tmp_path / "data", images, *TINY, "refine.epochs=4", 'train.classifier="dnn"', "refine.max_s=0.001",
                      "doctor.enabled=false", "data.check_leakage=false")
    run(cfg, tmp_path / "run", progress=False)
    hist = load_bundle(tmp_path / "run" / "model").meta.training_history
    assert [h["epoch"] for h in hist] == [1] and hist[-1]["epochs_cut_to"] == 1
    assert read_json(tmp_path / "run" / "metrics.json")["accuracy"] >= 0.0  # a whole run: bundle, evaluation
