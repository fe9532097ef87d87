"""End to end on a small generated dataset with the real backbone and real files."""
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset, tiny_config
from PIL import Image

from imgclf.api import run
from imgclf.bundle.folder import load_bundle
from imgclf.inference.predict import Predictor
from imgclf.pipeline.steps import evaluate, featurize, prepare, train
from imgclf.util.errors import BundleError
from imgclf.util.files import read_csv, read_json


def _add_hazards(images: Path) -> dict[str, str]:
    """Files that must be skipped, and odd-but-valid files that must be used."""
    src = Image.open(next((images / "circles").glob("*.jpg"))).convert("RGB")
    good = images / "circles"
    buf = io.BytesIO()
    src.save(buf, format="JPEG")
    data = buf.getvalue()
    (images / "squares" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (images / "squares" / "not an image.png").write_bytes(b"this is text")
    (images / "stripes" / "empty.JPG").write_bytes(b"")
    src.convert("CMYK").save(good / "cmyk.jpg")
    Image.fromarray((np.asarray(src.convert("L"), np.uint16) * 257)).save(good / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    src.transpose(Image.Transpose.ROTATE_270).save(good / "rotated.jpg", exif=exif.tobytes())
    src.save(good / "anim.gif", save_all=True, append_images=[Image.new("RGB", src.size, (0, 0, 0))])
    return {"bad": {"squares/truncated.jpg", "squares/not an image.png", "stripes/empty.JPG"},
            "odd": {"circles/cmyk.jpg", "circles/sixteen.png", "circles/rotated.jpg", "circles/anim.gif"}}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    images = make_dataset(base / "images", n_per_class=14, seed=3)
    hazards = _add_hazards(images)
    before = sorted(p.relative_to(images) for p in images.rglob("*"))
    cfg = tiny_config(base / "data", images)
    metrics = run(cfg, base / "run", progress=False)
    return {"base": base, "images": images, "cfg": cfg, "metrics": metrics, "hazards": hazards, "before": before, "run": base / "run"}


def test_run_writes_every_artifact(e2e):
    run_dir = e2e["run"]
    for name in ("config.json", "config.toml", "split.csv", "skipped.csv", "features.npz", "metrics.json",
                 "predictions.csv", "roc.png", "confusion_matrix.png", "report.html", "model/bundle.json",
                 "model/head.npz", "model/manifest.json", "model/metrics.json"):
        assert (run_dir / name).is_file(), name
    assert read_json(run_dir / "config.json")["data"]["images"] == str(e2e["images"])
    html = (run_dir / "report.html").read_text()
    assert "data:image/png;base64" in html and "Misclassified" in html


def test_bad_files_are_skipped_and_listed_never_deleted(e2e):
    skipped = {Path(r["path"]).relative_to(e2e["images"]).as_posix(): r["reason"] for r in read_csv(e2e["run"] / "skipped.csv")}
    assert set(skipped) == e2e["hazards"]["bad"]
    assert all(skipped.values())
    after = sorted(p.relative_to(e2e["images"]) for p in e2e["images"].rglob("*"))
    assert after == e2e["before"]  # nothing deleted or moved
    split = {Path(r["path"]).relative_to(e2e["images"]).as_posix() for r in read_csv(e2e["run"] / "split.csv")}
    assert e2e["hazards"]["odd"] <= split  # CMYK, 16-bit, EXIF-rotated and animated files are used


def test_metrics_agree_with_the_confusion_matrix(e2e):
    m = read_json(e2e["run"] / "metrics.json")
    cm = np.array(m["confusion_matrix"])
    assert m["labels"] == ["circles", "squares", "stripes"]
    assert cm.sum() == m["n_test"]
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    per = np.diag(cm) / cm.sum(axis=1)
    assert [m["per_class_accuracy"][k] for k in m["labels"]] == pytest.approx(per.tolist())
    assert m["class_avg_accuracy"] == pytest.approx(per.mean())
    assert set(m["roc_auc"]) == set(m["labels"]) and all(0.5 <= v <= 1 for v in m["roc_auc"].values())
    split = read_csv(e2e["run"] / "split.csv")
    assert m["n_train"] == sum(r["split"] == "train" for r in split)  # skipped files never enter the split
    assert m["accuracy"] >= 0.8  # shapes this distinct are easy for ImageNet features


def test_split_is_stratified_and_disjoint(e2e):
    rows = read_csv(e2e["run"] / "split.csv")
    assert len({r["path"] for r in rows}) == len(rows)
    for label in ("circles", "squares", "stripes"):
        n = sum(r["label"] == label for r in rows)
        n_test = sum(r["label"] == label and r["split"] == "test" for r in rows)
        assert n_test == n - round(0.75 * n)


def test_predict_agrees_with_evaluate(e2e):
    preds = read_csv(e2e["run"] / "predictions.csv")
    predictor = Predictor(e2e["run"] / "model", e2e["cfg"].engine)
    out = predictor.predict([p["path"] for p in preds])
    for row, res in zip(preds, out):
        assert res["label"] == row["predicted"]
        assert res["score"] == pytest.approx(float(row["score"]), abs=1e-4)
        assert sum(res["scores"].values()) == pytest.approx(1.0, abs=1e-4)


def test_predict_cli_prints_one_json_line_per_image(e2e, capsys):
    from imgclf.cli import main

    folder = e2e["images"] / "stripes"
    code = main(["predict", str(e2e["run"] / "model"), str(folder), "--set", f"engine.backend={e2e['cfg'].engine.backend}"])
    out, err = capsys.readouterr()
    assert code == 1 and "1 of" in err, err  # empty.JPG could not be read; the others answered
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(list(folder.iterdir()))
    errors = [line for line in lines if "error" in line]
    assert [Path(e["path"]).name for e in errors] == ["empty.JPG"]
    good = [line for line in lines if "error" not in line]
    assert {"path", "label", "score", "scores"} <= set(good[0])
    assert sum(line["label"] == "stripes" for line in good) >= 0.8 * len(good)


def test_rerun_hits_the_feature_cache(e2e, tmp_path):
    rd = tmp_path / "rerun"
    prepare(e2e["cfg"], rd)
    s = featurize(e2e["cfg"], rd, progress=False)
    assert s["cache_hits"] == s["featurized"] == s["images"]
    new = e2e["images"] / "circles" / "new_one.jpg"
    make_dataset(tmp_path / "more", n_per_class=1, seed=99, classes=("circles",))
    shutil.copy(next((tmp_path / "more" / "circles").iterdir()), new)
    try:
        prepare(e2e["cfg"], rd)
        s = featurize(e2e["cfg"], rd, progress=False)
        assert s["cache_hits"] == s["images"] - 1
    finally:
        new.unlink()


@pytest.mark.slow
def test_steps_rerun_alone_give_the_same_result(e2e, tmp_path):
    rd = tmp_path / "steps"
    shutil.copytree(e2e["run"], rd)
    train(e2e["cfg"], rd)
    m = evaluate(e2e["cfg"], rd)
    assert m.accuracy == pytest.approx(e2e["metrics"].accuracy)


def test_tampered_bundle_refuses_to_load(e2e, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(e2e["run"] / "model", model)
    load_bundle(model)
    head = np.load(model / "head.npz")
    arrays = {k: head[k] for k in head.files}
    arrays["bias"] = arrays["bias"] + 1
    np.savez(model / "head.npz", **arrays)
    with pytest.raises(BundleError, match="head.npz"):
        load_bundle(model)
    (model / "head.npz").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(model)


def test_annotations_change_the_next_prepare(e2e, tmp_path):
    from imgclf.data.annotations import record

    images = tmp_path / "images"
    shutil.copytree(e2e["images"], images)
    record(images, [("circles/circles_000.jpg", "circles", "relabel", "squares"), ("stripes/stripes_001.jpg", "stripes", "exclude", "")])
    cfg = tiny_config(e2e["base"] / "data", images)
    s = prepare(cfg, tmp_path / "rd")
    rows = {Path(r["path"]).relative_to(images.resolve()).as_posix(): r for r in read_csv(tmp_path / "rd" / "split.csv")}
    assert rows["circles/circles_000.jpg"]["label"] == "squares"
    assert "stripes/stripes_001.jpg" not in rows
    assert s["excluded_by_annotations"] == 1


@pytest.mark.slow
def test_an_svm_bundle_of_exported_featurizers_is_written_without_importing_torch(tmp_path):
    """Importing torch and timm costs ~5 s of every run: the train step reads the preprocessing and the feature
    width from the exported files instead, and they say what the networks say."""
    import subprocess
    import sys

    from imgclf.features.backbones import model_backbone
    from imgclf.features.step import featurizer_models

    images = make_dataset(tmp_path / "images", n_per_class=8, seed=3)
    sets = ["model.resolution=64", 'model.featurizers=["efficientnet_lite0@96"]', "doctor.enabled=false", "data.check_leakage=false"]
    cfg = tiny_config(tmp_path / "data", images, *sets)
    prepare(cfg, tmp_path / "run")
    featurize(cfg, tmp_path / "run", progress=False)
    code = ("import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); from datagen import tiny_config; "
            "from imgclf.pipeline.steps import train; a = json.loads(sys.argv[2]); "
            "train(tiny_config(Path(a[0]), Path(a[1]), *a[3]), Path(a[2])); "
            "print(json.dumps(sorted(m for m in ('torch', 'timm') if m in sys.modules)))")
    args = json.dumps([str(tmp_path / "data"), str(images), str(tmp_path / "run"), sets])
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parents[1]), args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    meta = load_bundle(tmp_path / "run" / "model").meta
    sections = [meta.featurizer, *meta.featurizers]
    for model, section, recorded in zip(featurizer_models(cfg.model), sections, [meta.preprocessing, *(e["preprocessing"] for e in meta.featurizers)]):
        module, spec = model_backbone(model, pretrained=False)
        assert type(spec).from_dict(recorded) == spec and section["dim"] == module.num_features
