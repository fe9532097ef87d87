"""Preset best: the ensemble trainer chooses on train only, its pooled head is the weighted log-linear pool of
its components, zero-weight components leave the bundle, and predict/serve run the bundle unchanged."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from datagen import TINY_REFINE as TINY
from datagen import make_dataset, tiny_config
from fileaudit import opened_files
import web

from imgclf.api import run
from imgclf.bundle.folder import load_bundle
from imgclf.classifier.linear import LinearHead
from imgclf.classifier.svm import SvmClassifier
from imgclf.features.engines import FlipAveraged
from imgclf.features.featurize import concat_features
from imgclf.inference.predict import Predictor
from imgclf.pipeline.steps import evaluate, prepare, train
from imgclf.presets.select import RefinementStatus, select_featurizers
from imgclf.rundir.layout import RunDir
from imgclf.train.ensemble import COMPONENTS, Components, map_temperature, pooled_head, weight_grid
from imgclf.trust.calibration import fit_temperature, softmax
from imgclf.util.arrays import l2_normalize
from imgclf.util.files import read_csv, read_json, read_npz, sha256_file

SETS = (*TINY, "train.preset=best", "refine.epochs=1", "doctor.enabled=false", "data.check_leakage=false")


def _said(caplog) -> list[str]:
    """What the preset logged (other loggers may be at INFO too, after a CLI test configured logging)."""
    return [r.getMessage() for r in caplog.records if r.name == "imgclf.presets.select"]


@pytest.fixture(scope="module")
def best(tmp_path_factory):
    """Two best runs: one choosing its weights and flip on validation (the train step listened to), one with
    them pinned (every component, flip on, two pretrained featurizers): read-only."""
    base = tmp_path_factory.mktemp("best")
    images = make_dataset(base / "images", n_per_class=10, seed=7)
    cfg = tiny_config(base / "data", images, *SETS)
    rd = RunDir(base / "chosen")
    prepare(cfg, rd.root)  # prepare checks every image (decodable? near duplicates?): the choice comes after it
    with opened_files() as opened:
        train(cfg, rd.root)
    evaluate(cfg, rd.root)
    pinned = tiny_config(base / "data", images, *SETS, "train.ensemble_weights=[2, 1, 1]", 'train.tta="flip"',
                         'model.featurizers=["efficientnet_lite0@96"]')
    run(pinned, base / "pinned", progress=False)
    return {"base": base, "chosen": rd, "opened": opened, "pinned": RunDir(base / "pinned")}


@pytest.mark.slow
def test_no_test_image_is_read_before_the_bundle_exists(best):
    rd, opened = best["chosen"], best["opened"]
    test = {r.path for r in rd.split_rows("test")}
    train_paths = {r.path for r in rd.split_rows("train")}
    written = min(i for i, p in enumerate(opened) if "bundle.json" in p)
    assert train_paths <= set(opened[:written])  # the choice read the train images
    assert test and not test & set(opened[:written])
    assert test <= set(opened[written:])  # features.npz of every image comes after: the hook saw them


@pytest.mark.slow
def test_the_choice_is_recorded_and_zero_weights_leave_the_bundle(best):
    rd = best["chosen"]
    table = read_json(rd.candidates)["ensemble"]
    comps, chosen = table["components"], table["chosen"]
    assert list(comps) == list(COMPONENTS) and table["validation_images"] == 6  # 20% of the 30 train images
    for c in comps.values():
        assert 0 <= c["val_class_avg_accuracy"] <= 1 and c["why"] and (c["weight"] in (0, 0.25, 0.5, 0.75, 1) or abs(c["weight"] - 1 / 3) < 1e-9)
    assert abs(sum(chosen["weights"].values()) - 1) < 1e-9
    grid = table["grid"]
    assert len(grid) == 2 * len(weight_grid()) and chosen in grid
    best_acc = max(g["val_class_avg_accuracy"] for g in grid)
    level = [g for g in grid if g["val_class_avg_accuracy"] == best_acc]
    assert best_acc >= 0 and level  # every grid point is scored and recorded
    equal = [g for g in grid if all(abs(v - 1 / 3) < 1e-9 for v in g["weights"].values())]
    assert len(equal) == 2 and chosen in equal  # the default: every component, equal weights; flip or not by validation
    top = max(g["val_class_avg_accuracy"] for g in equal)
    assert chosen["val_class_avg_accuracy"] == top
    if equal[0]["val_class_avg_accuracy"] == equal[1]["val_class_avg_accuracy"]:
        low = min(g["val_nll"] for g in equal)
        assert chosen["tta_flip"] is False or chosen["val_nll"] < low * 1.05  # a tie goes to no flip (cheaper)
    bundle = load_bundle(rd.model)
    meta = bundle.meta
    assert meta.kind == "ensemble" and meta.classifier["weights"] == chosen["weights"]
    w = chosen["weights"]
    sections = [meta.featurizer, *(meta.featurizers or ())]
    refined = [s for s in sections if s["weights"].startswith("refined-")]
    pretrained = [s for s in sections if s["weights"] == "imagenet"]
    assert len(refined) == (w["refined_head"] > 0 or w["svm_on_refined"] > 0) and len(pretrained) == (w["svm"] > 0)
    assert bundle.head.weight.shape[1] == sum(s["dim"] for s in sections)
    assert (meta.tta == "flip") == chosen["tta_flip"]
    m = read_json(rd.metrics)
    assert m["classifier"]["type"] == "ensemble" and 0 <= m["accuracy"] <= 1
    assert m["preset"]["ensemble"]["chosen"] == chosen and "Ensemble (preset best)" in rd.report.read_text()
    changed = read_json(rd.config)["changed"]  # preset best trained the ensemble trainer: said and recorded
    assert {"key": "train.classifier", "from": "svm", "to": "ensemble", "by": "train.preset=best"} in changed


def test_pooled_head_is_the_weighted_pool_of_the_components_log_probabilities():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 20)
    parts = [rng.normal(size=(60, 8)) + y[:, None] * rng.normal(size=8) for _ in range(2)]  # two pretrained featurizers
    g = 15 * (rng.normal(size=(60, 6)) + y[:, None] * rng.normal(size=6))  # raw refined features, norm ~15+
    xb = concat_features(parts)
    svm = SvmClassifier(c_values=(1.0,), cv_folds=3).fit(xb, y)
    svm_ref = SvmClassifier(c_values=(0.1,), cv_folds=3).fit(g, y)
    w_head, b_head = rng.normal(size=(3, 6)) / 10, rng.normal(size=3)
    scale = float(np.median(np.linalg.norm(g, axis=1)))
    comp = Components(svm, svm_ref, w_head, b_head, scale, 2, t_head=0.7, t_ref=1.3)

    def log_softmax(z):
        return np.log(softmax(z))

    lp_svm = np.log(svm.predict_proba(xb))
    lp_head = log_softmax(comp.t_head * (scale * l2_normalize(g) @ w_head.T + b_head))
    lp_ref = np.log(LinearHead(svm_ref.head_.weight, svm_ref.head_.bias, comp.t_ref).predict_proba(g))
    for weights in ((0.5, 0.25, 0.25), (0.25, 0.0, 0.75)):
        head = pooled_head(comp.layout(weights, 16, 6), blocks=3)
        want = log_softmax(weights[0] * lp_svm + weights[1] * lp_head + weights[2] * lp_ref)
        np.testing.assert_allclose(np.log(head.predict_proba(concat_features([*parts, g]))), want, atol=1e-5)
    # a zero weight drops the component's featurizer(s): the pool then reads the other block alone
    refined_only = pooled_head(comp.layout((0.0, 0.5, 0.5), 16, 6), blocks=1)
    assert refined_only.weight.shape == (3, 6)
    np.testing.assert_allclose(np.log(refined_only.predict_proba(g)), log_softmax(0.5 * lp_head + 0.5 * lp_ref), atol=1e-5)
    pretrained_only = pooled_head(comp.layout((1.0, 0.0, 0.0), 16, 6), blocks=2)
    np.testing.assert_allclose(pretrained_only.predict_proba(xb), svm.predict_proba(xb), atol=1e-5)


def test_a_validation_part_without_errors_does_not_send_the_temperature_to_its_bound():
    z = np.array([[2.0, -1, -1], [-1, 2, -1], [-1, -1, 2]] * 4)
    y = np.tile([0, 1, 2], 4)
    assert fit_temperature(z, y) > 20  # separable: the plain fit runs off (to wherever the flat loss stops it)
    assert 1.0 <= map_temperature(z, y, 1.0) < 10 and map_temperature(z[:0], y[:0], 7.0) == 7.0
    noisy = np.vstack([z, [[2.0, -1, -1]]])  # one confident error: the data itself bounds T
    assert map_temperature(noisy, np.append(y, 1), 1.0) < map_temperature(z, y, 1.0)
    # an SVM at C = 1e-4 has decision values of ~0.004 and a prior centre in the thousands: no bound stops it there
    for scale in (1e-4, 1e3):
        assert map_temperature(z * scale, y, 5.0 / scale) * scale == pytest.approx(map_temperature(z, y, 5.0), rel=1e-3)


@pytest.mark.slow
def test_pinned_ensemble_with_flip_predicts_alike_everywhere(best):
    rd = best["pinned"]
    meta = load_bundle(rd.model).meta
    assert meta.tta == "flip" and meta.classifier["weights"] == {"svm": 0.5, "refined_head": 0.25, "svm_on_refined": 0.25}
    assert [m["resolution"] for m in meta.featurizers] == [96, 64] and meta.featurizers[1]["state_dict"] == "backbone-2.safetensors"
    assert meta.feature_ids.count(".flip-") == 3 and "refined-" in meta.feature_ids
    z = read_npz(rd.features)
    assert str(z["feature_id"]) == meta.feature_ids and z["features"].shape[1] == 3 * 1280
    predictor = Predictor(rd.model)
    assert len(predictor.compute.engines) == 3 and all(isinstance(e, FlipAveraged) for e in predictor.compute.engines)
    rows = read_csv(rd.predictions)
    paths = [r["path"] for r in rows]
    by_path = predictor.predict(paths)
    by_bytes = predictor.predict([Path(p).read_bytes() for p in paths])
    for r, a, b in zip(rows, by_path, by_bytes):
        assert a["label"] == b["label"] and a.get("nearest_label", a["label"]) == r["predicted"]
        assert abs(a["score"] - float(r["score"])) < 1e-4 and abs(b["score"] - a["score"]) < 1e-4
    assert read_json(rd.metrics)["accuracy"] >= 0.6  # 3 classes: chance is 0.33

    from imgclf.config.settings import ServeConfig
    from imgclf.serve.app import create_app
    from imgclf.serve.server import ServerThread

    cfg = ServeConfig()
    with ServerThread(create_app(predictor, cfg), cfg) as srv, web.client(timeout=60) as client:
        reply = client.post(srv.url + "/predict", files=[("files", (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in paths[:3]])
    assert reply.status_code == 200, reply.text
    for served, offline in zip(reply.json()["predictions"], by_bytes):
        assert served["label"] == offline["label"] and abs(served["score"] - offline["score"]) < 1e-4


@pytest.mark.slow
def test_each_component_is_scored_alone_on_test_and_they_sum_to_the_bundle(best):
    rd = best["pinned"]
    bundle = load_bundle(rd.model)
    w = bundle.meta.classifier["weights"]
    parts = read_npz(rd.ensemble_components)
    assert sorted(k for k in parts if k.startswith("weight_")) == sorted(f"weight_{n}" for n in COMPONENTS)
    np.testing.assert_allclose(sum(w[n] * parts[f"weight_{n}"] for n in COMPONENTS), bundle.head.weight, atol=1e-5)
    np.testing.assert_allclose(sum(w[n] * parts[f"bias_{n}"] for n in COMPONENTS), bundle.head.bias, atol=1e-5)
    blocks = [bundle.meta.featurizer["dim"], *(e["dim"] for e in bundle.meta.featurizers)]
    svm, head = parts["weight_svm"], parts["weight_refined_head"]
    assert not svm[:, sum(blocks[:2]):].any() and not head[:, :sum(blocks[:2])].any()  # each reads its own features only
    test = read_json(rd.metrics)["preset"]["ensemble"]["test"]
    n_test = read_json(rd.metrics)["n_test"]
    assert sorted(test) == sorted(COMPONENTS)
    for scores in test.values():  # each alone: a whole number of the test images right
        assert 0 <= scores["class_avg_accuracy"] <= 1 and abs(scores["accuracy"] * n_test - round(scores["accuracy"] * n_test)) < 0.01
    assert "test, alone" in rd.report.read_text()


@pytest.mark.slow
def test_a_bundle_without_the_new_keys_loads_as_before(best, tmp_path):
    model = shutil.copytree(best["pinned"].model, tmp_path / "model")
    meta = read_json(model / "bundle.json")
    del meta["tta"]
    (model / "bundle.json").write_text(json.dumps(meta))
    manifest = read_json(model / "manifest.json")
    manifest["files"]["bundle.json"] = sha256_file(model / "bundle.json")
    (model / "manifest.json").write_text(json.dumps(manifest))
    predictor = Predictor(model)
    assert predictor.bundle.meta.tta is None and not any(isinstance(e, FlipAveraged) for e in predictor.compute.engines)
    assert ".flip" not in predictor.bundle.meta.feature_ids
    path = read_csv(best["pinned"].predictions)[0]["path"]
    assert abs(sum(predictor.predict([path])[0]["scores"].values()) - 1) < 1e-4


@pytest.mark.slow
def test_time_limit_drops_refinement_first_and_says_so(best, tmp_path, caplog):
    cfg = tiny_config(best["base"] / "data", best["base"] / "images", *SETS, "train.time_limit_s=1",
                      'train.candidates=["efficientnet_lite0@64", "efficientnet_lite0@96"]')
    prepare(cfg, tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="imgclf.presets.select"):
        chosen = select_featurizers(cfg, RunDir(tmp_path / "run"))
    assert chosen.refinement.status is RefinementStatus.DROPPED and chosen.refinement.estimate_s > 0
    assert chosen.table["refinement"]["status"].startswith("dropped: time limit")
    plan_text = _said(caplog)[0]
    assert "refinement of efficientnet_lite0@64" in plan_text and "dropped: time limit" in plan_text
