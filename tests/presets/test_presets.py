"""Presets and feature ensembles: the choice is made on the train split only; an ensemble bundle predicts
the same everywhere (files, bytes, the run's own predictions)."""
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset, tiny_config
from fileaudit import opened_files
import web

from imgclf.api import run
from imgclf.bundle.folder import load_bundle
from imgclf.config.settings import load_config
from imgclf.inference.predict import Predictor
from imgclf.pipeline.steps import prepare
from imgclf.presets.select import Candidate, Status, needs_selection, plan, select_featurizers
from imgclf.rundir.layout import RunDir
from imgclf.util.errors import BundleError, ConfigError
from imgclf.util.files import read_csv, read_json, read_npz

CANDIDATES = 'train.candidates=["efficientnet_lite0@64", "efficientnet_lite0@96"]'


def _said(caplog) -> list[str]:
    """What the preset logged (other loggers may be at INFO too, after a CLI test configured logging)."""
    return [r.getMessage() for r in caplog.records if r.name == "imgclf.presets.select"]


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    base = tmp_path_factory.mktemp("presets")
    images = make_dataset(base / "images", n_per_class=14, seed=5)
    common = ("doctor.enabled=false", "data.check_leakage=false")
    balanced = tiny_config(base / "data", images, "train.preset=balanced", CANDIDATES, *common)
    metrics = run(balanced, base / "balanced", progress=False)
    pinned = tiny_config(base / "data", images, "model.resolution=64", 'model.featurizers=["efficientnet_lite0@96"]', *common)
    run(pinned, base / "ensemble", progress=False)
    return {"base": base, "images": images, "balanced": balanced, "metrics": metrics}


@pytest.mark.slow
def test_the_choice_never_opens_a_test_image(presets, caplog):
    cfg, rd = presets["balanced"], RunDir(presets["base"] / "audited")
    prepare(cfg, rd.root)  # prepare checks every image (decodable? near duplicates?): the choice comes after it
    test = {r.path for r in rd.split_rows("test")}
    train = {r.path for r in rd.split_rows("train")}
    timed = load_config(None, ["train.time_limit_s=600"], base=cfg)
    with opened_files() as seen, caplog.at_level(logging.INFO, logger="imgclf.presets.select"):
        chosen = select_featurizers(timed, rd)
    opened = set(seen)
    assert test and not opened & test
    assert train <= opened  # the hook saw the train images being read
    plan_text = _said(caplog)[0]  # logged before any featurizing
    assert "time limit 600 s" in plan_text and all(n in plan_text for n in ("efficientnet_lite0@64", "efficientnet_lite0@96"))
    planned = float(plan_text.split("planned ~")[1].split(" s")[0])
    assert 0 < planned < 600, "the line gives the plan's seconds, not the allowance"
    assert "nested cross-validation" in _said(caplog)[-1] and chosen.table["chosen_by"] in _said(caplog)[-1]
    assert chosen.winner == read_json(presets["base"] / "balanced" / "candidates.json")["winner"]  # reproducible


@pytest.mark.slow
def test_candidates_table_and_winner(presets):
    rd = RunDir(presets["base"] / "balanced")
    table = read_json(rd.candidates)
    rows = table["candidates"]
    names = [r["featurizers"] for r in rows]
    assert names[:2] == ["efficientnet_lite0@64", "efficientnet_lite0@96"] and len(names) == 3
    assert sorted(names[2].split("+")) == names[:2]
    scored = [r for r in rows if r["status"] == "scored"]
    assert len(scored) == 2 and all(0.0 <= r["cv_class_avg_accuracy"] <= 1.0 and r["cost_s"] >= 0 for r in scored)
    winners = [r for r in rows if r["winner"]]
    assert len(winners) == 1 and winners[0]["featurizers"] == table["winner"] == rows[-1]["featurizers"]
    # the winner concatenates the train.concat_best (3) best-scoring candidates, best first: here both
    ranked = sorted(scored, key=lambda r: (-r["cv_class_avg_accuracy"], r["gflops"]))
    assert table["winner"] == "+".join(r["featurizers"] for r in ranked)
    # the winner is what the run then used, saved in its config and its bundle
    first, *rest = table["winner"].split("+")
    saved = read_json(rd.config)["model"]
    assert f'{saved["backbone"]}@{saved["resolution"]}' == first and saved["featurizers"] == rest
    changed = {c["key"]: c for c in read_json(rd.config)["changed"]}  # the preset's choice, recorded as a change
    assert changed["model.resolution"] == {"key": "model.resolution", "from": 224, "to": int(first.split("@")[1]),
                                           "by": "train.preset=balanced"}
    assert changed["model.featurizers"]["to"] == rest and "# changed: model.resolution" in rd.config_toml.read_text()
    assert load_bundle(rd.model).meta.feature_ids.count("+") == len(rest)
    m = read_json(rd.metrics)
    assert m["preset"]["name"] == "balanced" and m["preset"]["winner"] == table["winner"]
    assert "Featurizer candidates" in rd.report.read_text()


@pytest.mark.slow
def test_one_candidate_is_not_said_to_be_chosen_by_cross_validation(presets, caplog):
    cfg = load_config(None, ['train.candidates=["efficientnet_lite0@96"]'], base=presets["balanced"])
    rd = RunDir(presets["base"] / "single")
    prepare(cfg, rd.root)
    with caplog.at_level(logging.INFO, logger="imgclf.presets.select"):
        chosen = select_featurizers(cfg, rd)
    assert chosen.winner == "efficientnet_lite0@96" and chosen.table["chosen_by"] == "nothing to choose: train.candidates lists one"
    assert "one candidate featurizer (nothing to choose" in _said(caplog)[0]
    assert "cross-validation" not in _said(caplog)[-1].splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2])
def test_concat_best_takes_that_many_of_the_best_candidates(presets, k):
    three = 'train.candidates=["efficientnet_lite0@64", "efficientnet_lite0@96", "efficientnet_lite0@32"]'
    cfg = load_config(None, [three, f"train.concat_best={k}"], base=presets["balanced"])
    rd = RunDir(presets["base"] / f"concat{k}")
    prepare(cfg, rd.root)
    chosen = select_featurizers(cfg, rd).table
    scored = sorted((c for c in chosen["candidates"] if c["status"] == "scored"),
                    key=lambda c: (-c["cv_class_avg_accuracy"], c["gflops"]))
    assert len(scored) == 3
    assert chosen["winner"] == "+".join(c["featurizers"] for c in scored[:k])
    assert len(chosen["candidates"]) == (3 if k == 1 else 4)  # a concatenation is listed only when it is the winner


@pytest.mark.slow
def test_ensemble_bundle_predicts_alike_everywhere(presets):
    rd = RunDir(presets["base"] / "ensemble")
    meta = read_json(rd.model / "bundle.json")
    assert meta["featurizer"]["feature_id"].startswith("efficientnet_lite0-r64")
    assert [m["resolution"] for m in meta["featurizers"]] == [96] and meta["featurizers"][0]["onnx"] == "featurizer-1.onnx"
    assert "featurizer-1.onnx" in read_json(rd.model / "manifest.json")["files"]
    z = read_npz(rd.features)
    assert str(z["feature_id"]).count("+") == 1 and z["features"].shape[1] == 2 * 1280
    f = z["features"][z["ok"]]
    np.testing.assert_allclose(np.linalg.norm(f[:, :1280], axis=1), 1.0, atol=1e-5)  # each part L2-normalised
    np.testing.assert_allclose(np.linalg.norm(f[:, 1280:], axis=1), 1.0, atol=1e-5)

    predictor = Predictor(rd.model)
    assert len(predictor.compute.engines) == 2
    rows = read_csv(rd.predictions)
    paths = [r["path"] for r in rows]
    by_path = predictor.predict(paths)
    by_bytes = predictor.predict([Path(p).read_bytes() for p in paths])
    for r, a, b in zip(rows, by_path, by_bytes):
        assert a["label"] == b["label"]  # "unknown" alike too: the ensemble's features carry the detector
        assert a.get("nearest_label", a["label"]) == r["predicted"]
        assert "ood_score" in a and abs(a["ood_score"] - b["ood_score"]) < 1e-4
        assert abs(a["score"] - float(r["score"])) < 1e-4 and abs(b["score"] - a["score"]) < 1e-4

    from imgclf.config.settings import ServeConfig
    from imgclf.serve.app import create_app
    from imgclf.serve.server import ServerThread

    cfg = ServeConfig()
    with ServerThread(create_app(predictor, cfg), cfg) as srv, web.client(timeout=60) as client:
        reply = client.post(srv.url + "/predict", files=[("files", (Path(p).name, Path(p).read_bytes(), "image/jpeg"))
                                                         for p in paths[:4]])
    assert reply.status_code == 200, reply.text
    for served, offline in zip(reply.json()["predictions"], by_bytes):
        assert served["label"] == offline["label"] and abs(served["score"] - offline["score"]) < 1e-4


@pytest.mark.slow
def test_a_version_1_bundle_still_loads_and_predicts_identically(presets, tmp_path):
    """bundle.json version 1 called the further featurizers "ensemble"; version 2 calls them "featurizers"."""
    from imgclf.bundle.folder import FORMAT_VERSION
    from imgclf.util.files import sha256_file

    v2 = presets["base"] / "ensemble" / "model"
    meta = read_json(v2 / "bundle.json")
    assert FORMAT_VERSION == meta["format_version"] == 2 and "ensemble" not in meta and len(meta["featurizers"]) == 1
    v1 = shutil.copytree(v2, tmp_path / "model")
    meta = {("ensemble" if k == "featurizers" else k): v for k, v in meta.items()} | {"format_version": 1}
    (v1 / "bundle.json").write_text(json.dumps(meta))
    manifest = read_json(v1 / "manifest.json")
    manifest["files"]["bundle.json"] = sha256_file(v1 / "bundle.json")
    (v1 / "manifest.json").write_text(json.dumps(manifest))
    old, new = Predictor(v1), Predictor(v2)
    assert len(old.compute.engines) == 2 and old.bundle.meta.featurizers == new.bundle.meta.featurizers
    assert "ensemble" not in old.bundle.meta.extra
    paths = [r["path"] for r in read_csv(RunDir(presets["base"] / "ensemble").predictions)]
    for a, b in zip(old.predict(paths), new.predict(paths)):
        assert a == b
    with open(v1 / "featurizer-1.onnx", "ab") as f:  # the v1 name's files are checked by the manifest too
        f.write(b"\0")
    with pytest.raises(BundleError, match="featurizer-1.onnx"):
        load_bundle(v1)


@pytest.mark.slow
def test_ensemble_file_is_checked_by_the_manifest(presets, tmp_path):
    model = shutil.copytree(presets["base"] / "ensemble" / "model", tmp_path / "model")
    with open(model / "featurizer-1.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="featurizer-1.onnx"):
        load_bundle(model)


def test_user_featurizer_keys_pin_the_preset():
    assert load_config(None, ["train.preset=balanced"]).train.candidates == []
    pinned = load_config(None, ["train.preset=balanced", "model.resolution=320"])
    assert pinned.train.candidates == ["efficientnet_lite0@320"] and not needs_selection(pinned)
    both = load_config(None, ["train.preset=balanced", 'model.featurizers=["efficientnet_lite2@320"]'])
    assert both.train.candidates == ["efficientnet_lite0@224+efficientnet_lite2@320"]
    assert needs_selection(load_config(None, ["train.preset=balanced"]))
    assert not needs_selection(load_config(None, ["train.preset=fast"]))
    assert not needs_selection(load_config(None, ["train.preset=balanced", "train.classifier=dnn"]))
    with pytest.raises(ConfigError, match="model.featurizers"):
        load_config(None, ['model.featurizers=["efficientnet_lite2@300"]'])
    with pytest.raises(ConfigError, match="train.time_limit_s"):
        load_config(None, ["train.time_limit_s=-1"])


def test_plan_drops_the_most_expensive_first():
    cands = [Candidate([n], g, estimate_s=s) for n, g, s in (("a@224", 1, 5.0), ("b@320", 3, 30.0), ("c@256", 2, 12.0))]
    kept = plan(cands, 20.0)
    assert [c.name for c in kept] == ["a@224", "c@256"]
    assert cands[1].status is Status.TIME_LIMIT and cands[1].to_dict()["status"] == "dropped: time limit (needs ~30 s)"
    assert [c.name for c in plan([Candidate(["a@224"], 1, estimate_s=50.0)], 1.0)] == ["a@224"]  # the cheapest stays
    assert len(plan([Candidate([n], 1, estimate_s=9.0) for n in ("x@224", "y@256")], None)) == 2
    # what the run needs after the choice counts too: 5 + 12 fit in 20 s, not with 4 s per kept candidate after it
    cands = [Candidate([n], g, estimate_s=s) for n, g, s in (("a@224", 1, 5.0), ("b@320", 3, 30.0), ("c@256", 2, 12.0))]
    assert [c.name for c in plan(cands, 20.0, after=lambda kept: 4.0 * len(kept))] == ["a@224"]
    assert cands[2].status is Status.TIME_LIMIT


@pytest.mark.slow
def test_a_time_limit_leaves_the_svm_what_is_left(presets, tmp_path):
    cfg = load_config(None, ["train.time_limit_s=1", "train.preset=fast", "model.resolution=64"], base=presets["balanced"])
    run(cfg, tmp_path / "run", progress=False)  # a limit long passed when the SVM starts: its C search gets 1 s
    assert read_json(tmp_path / "run" / "metrics.json")["steps"]["train"]["max_s"] == 1.0
    assert read_json(tmp_path / "run" / "config.json")["svm"]["max_s"] == 0.0, "the user's setting is not rewritten"
    info = load_bundle(tmp_path / "run" / "model").meta.classifier
    scored, unscored = [float(c) for c in info["cv_class_avg_accuracy"]], info.get("c_unscored", [])
    assert scored and sorted(scored + unscored) == sorted(cfg.svm.c_values)
    assert not unscored or max(scored) < min(unscored)  # smallest first: the dearest C values are the ones left out
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Time limit 1 s" in report and (not unscored or "left out C = " in report)
    assert read_json(tmp_path / "run" / "metrics.json")["preset"]["time_limit"] == 1.0


def test_preset_options_sit_below_set():
    from imgclf.cli.options import parse_duration, preset_flags

    assert [parse_duration(t) for t in ("90", "90s", "10m", "1.5h")] == [90.0, 90.0, 600.0, 5400.0]
    for bad in ("", "-5m", "ten", "0", "nan", "inf"):
        with pytest.raises(ConfigError, match="--time-limit"):
            parse_duration(bad)
    cfg = load_config(None, ["train.preset=fast"], flags=preset_flags("balanced", "2m"))
    assert (cfg.train.preset, cfg.train.time_limit_s) == ("fast", 120.0)  # --set wins over the command's options


@pytest.mark.slow
def test_ensemble_bundle_refuses_class_maps_with_a_reason(presets):
    from imgclf.util.errors import NotExplainable

    rd = presets["base"] / "ensemble"
    predictor = Predictor(rd / "model")
    path = read_csv(rd / "predictions.csv")[0]["path"]
    with pytest.raises(NotExplainable, match="single CNN featurizer"):
        predictor.explain(path)
    assert not list((rd / "class_maps").glob("*.png"))  # the report of such a run shows no maps, and says nothing false
