"""imgclf.ImageClassifier: the notebook API — fit / predict / predict_proba / evaluate / explain / doctor /
suggest / leaderboard / save / load, every input type through the one safe decoder, HTML reprs."""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset, shared_engines
from PIL import Image

import imgclf
from imgclf.cli import main
from imgclf.util.errors import ConfigError, ImgclfError

FAST = {"svm__cv_folds": 3, "svm__c_values": [0.01, 1.0, 100.0], "tracking__enabled": False, "model__resolution": 64}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("api")
    images = make_dataset(base / "images", n_per_class=12, seed=3)
    clf = imgclf.ImageClassifier(data__root=str(shared_engines(base / "data")), **FAST)
    assert clf.fit(images, run_dir=base / "run", progress=False) is clf
    return clf, images, base


def test_fit_predict_and_probabilities_agree(fitted):
    clf, images, base = fitted
    assert clf.classes_ == sorted(p.name for p in images.iterdir())
    assert clf.run_dir_ == base / "run" and (base / "run" / "model" / "bundle.json").is_file()
    files = sorted(str(p) for p in images.rglob("*.jpg"))[:9]
    proba = clf.predict_proba(files)
    assert list(proba.columns) == clf.classes_ and list(proba.index) == files
    np.testing.assert_allclose(proba.to_numpy().sum(axis=1), 1.0, atol=1e-6)
    details = clf.predict_details(files)
    labels = clf.predict(files)
    assert labels.dtype == object and len(labels) == len(files)
    for label, row, d in zip(labels, proba.to_numpy(), details):
        assert label == d["label"]
        if label in clf.classes_:
            assert label == clf.classes_[int(np.argmax(row))]
        assert d["nearest_label" if "nearest_label" in d else "label"] == clf.classes_[int(np.argmax(row))]
    assert clf.metrics_["n_test"] > 0 and 0.0 <= clf.metrics_["accuracy"] <= 1.0


def test_a_folder_path_bytes_pil_and_arrays_go_through_the_same_decoder(fitted):
    clf, images, _ = fitted
    f = sorted(images.rglob("*.jpg"))[0]
    by_path = clf.predict_proba(str(f)).to_numpy()
    by_bytes = clf.predict_proba(f.read_bytes()).to_numpy()
    np.testing.assert_allclose(by_bytes, by_path, atol=1e-6)
    img = Image.open(f).convert("RGB")
    by_pil = clf.predict_proba(img).to_numpy()
    by_array = clf.predict_proba(np.asarray(img)).to_numpy()
    np.testing.assert_allclose(by_array, by_pil, atol=1e-6)
    batch = clf.predict_proba(np.stack([np.asarray(img)] * 3))
    assert batch.shape == (3, len(clf.classes_)) and list(batch.index) == ["<input 0>", "<input 1>", "<input 2>"]
    folder = clf.predict_proba(images / clf.classes_[0])
    assert len(folder) == len(list((images / clf.classes_[0]).glob("*.jpg")))
    import pandas as pd

    series = clf.predict(pd.Series([str(f), f.read_bytes()]))
    assert series[0] == series[1]


def test_an_unreadable_input_is_listed_not_fatal(fitted, tmp_path):
    clf, images, _ = fitted
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    good = str(sorted(images.rglob("*.jpg"))[0])
    with pytest.warns(UserWarning, match="1 of 2 images could not be read"):
        labels = clf.predict([good, str(bad)])
    assert labels[0] in (*clf.classes_, "unknown", "uncertain") and labels[1] is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = clf.predict_proba([good, str(bad)])
    assert np.isfinite(proba.iloc[0]).all() and proba.iloc[1].isna().all()


def test_the_pixel_limit_is_the_objects_own(fitted):
    clf, _, base = fitted
    small = imgclf.load(clf.bundle_dir_, images__max_pixels=5000, data__root=str(base / "data"))
    img = Image.fromarray(np.full((100, 100, 3), 128, np.uint8))  # 10,000 pixels
    with pytest.warns(UserWarning, match="could not be read"):
        assert small.predict(img)[0] is None
    assert clf.predict(img)[0] is not None  # the other object keeps its own limit
    from imgclf.data.images import pixel_limit

    assert pixel_limit() >= 10_000  # nothing process-wide was changed


def test_settings_are_the_cli_keys_and_errors_name_them():
    with pytest.raises(ConfigError, match="model.resolutin"):
        imgclf.ImageClassifier(model__resolutin=224)
    with pytest.raises(ConfigError, match="multiple of 32"):
        imgclf.ImageClassifier(model={"resolution": 333})
    with pytest.raises(ConfigError, match="section__key"):
        imgclf.ImageClassifier(resolution=224)
    with pytest.raises(ConfigError, match="preset"):
        imgclf.ImageClassifier(preset="quick")
    clf = imgclf.ImageClassifier(preset="balanced", time_limit=60, svm={"cv_folds": 4})
    assert clf.config_.svm.cv_folds == 4 and clf.config_.train.preset == "balanced"
    assert "time_limit" in repr(clf) and "not fitted" in repr(clf)
    with pytest.raises(ImgclfError, match="not fitted"):
        clf.predict(b"")


def test_evaluate_gives_a_dict_and_dataframes(fitted):
    clf, images, _ = fitted
    ev = clf.evaluate(images)
    n = len(list(images.rglob("*.jpg")))
    assert ev["n_test"] == n and 0.0 <= ev["accuracy"] <= 1.0
    assert list(ev.per_class.index) == clf.classes_ and ev.per_class["images"].sum() == n
    assert ev.confusion.to_numpy().sum() == n
    assert (ev.predictions["label"] == ev.predictions["predicted"]).mean() == pytest.approx(ev["accuracy"])
    html = ev._repr_html_()
    assert "accuracy" in html and "confusion matrix" in html
    with pytest.raises(ImgclfError, match="labels the model does not know"):
        clf.evaluate([(str(sorted(images.rglob("*.jpg"))[0]), "zebra")])


@pytest.mark.slow
def test_fit_from_pairs_and_a_dataframe_stage_the_same_dataset(tmp_path):
    import pandas as pd

    images = make_dataset(tmp_path / "images", n_per_class=9, seed=5)
    files = sorted(images.rglob("*.jpg"))
    pairs = [(str(f), f.parent.name) for f in files]
    root = shared_engines(tmp_path / "data")
    clf = imgclf.ImageClassifier(data__root=str(root), doctor__enabled=False, **FAST).fit(pairs, run_dir=tmp_path / "r1", progress=False)
    frame = pd.DataFrame({"picture": [f.read_bytes() for f in files], "kind": [f.parent.name for f in files]})
    clf2 = imgclf.ImageClassifier(data__root=str(root), doctor__enabled=False, **FAST).fit(
        frame, run_dir=tmp_path / "r2", image_col="picture", label_col="kind", progress=False)
    staged = sorted((root / "datasets").iterdir())
    assert len(staged) == 1 and staged[0].name.startswith("api-")  # same bytes and labels: one dataset, written once
    assert sorted(p.name for p in staged[0].iterdir() if p.is_dir()) == clf.classes_ == clf2.classes_
    np.testing.assert_allclose(clf.predict_proba(files[:4]).to_numpy(), clf2.predict_proba(files[:4]).to_numpy(), atol=1e-6)
    with pytest.raises(ImgclfError, match="cannot name a class folder"):
        imgclf.ImageClassifier(data__root=str(root), **FAST).fit([(str(files[0]), "a/b")], progress=False)
    with pytest.raises(ImgclfError, match="no column 'image'"):
        imgclf.ImageClassifier(data__root=str(root), **FAST).fit(frame, progress=False)


def test_save_and_load_give_the_same_predictions(fitted, tmp_path):
    clf, images, _ = fitted
    files = [str(f) for f in sorted(images.rglob("*.jpg"))[:6]]
    target = clf.save(tmp_path / "saved.model")
    again = imgclf.load(target)
    assert again.classes_ == clf.classes_ and again.run_dir_ is None
    np.testing.assert_allclose(again.predict_proba(files).to_numpy(), clf.predict_proba(files).to_numpy(), atol=1e-6)
    clf.save(target)  # a bundle saved earlier is replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ImgclfError, match="not a model bundle"):
        clf.save(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ImgclfError, match="run directory"):
        again.doctor()


def test_doctor_suggest_leaderboard_and_explain(fitted):
    clf, images, base = fitted
    found = clf.doctor()
    assert {"given_label", "suggested_label"} <= set(found.label_issues.columns) or found.label_issues.empty
    assert "suspected label errors" in repr(found)
    board = clf.leaderboard()
    assert len(board) == 1 and bool(board["winner"].iloc[0])
    pool = images / "_unlabeled"
    pool.mkdir()
    make_dataset(pool, n_per_class=2, seed=99)  # new images (copies of labelled ones would be skipped)
    s = clf.suggest(3)
    assert len(s) == 3 and list(s["rank"]) == [1, 2, 3] and set(s["predicted"]) <= set(clf.classes_)
    f = str(sorted((images / clf.classes_[1]).glob("*.jpg"))[0])
    view = clf.explain(f, classes=[clf.classes_[0]])[0]
    assert view.label == clf.predict(f)[0]
    assert set(view.classes) >= {clf.classes_[0]}
    html = view._repr_html_()
    assert html.count("data:image/png;base64,") == len(view.classes)


def test_the_fitted_classifier_shows_its_metrics_and_errors(fitted):
    clf, _, _ = fitted
    html = clf._repr_html_()
    assert "ImageClassifier" in html and "confusion matrix" in html and "precision" in html
    for c in clf.classes_:
        assert c in html
    assert "<script" not in html


@pytest.mark.slow
def test_api_and_cli_fit_identical_bundles(tmp_path):
    images = make_dataset(tmp_path / "images", n_per_class=9, seed=7)
    sets = {"data__root": str(shared_engines(tmp_path / "data")), "doctor__enabled": False, **FAST}
    imgclf.ImageClassifier(**sets).fit(images, run_dir=tmp_path / "api", progress=False)
    args = [f"{k.replace('__', '.')}={v if not isinstance(v, (bool, list, str)) else json.dumps(v)}" for k, v in sets.items()]
    assert main(["run", "--images", str(images), "--run-dir", str(tmp_path / "cli"), "--quiet",
                 *[x for a in args for x in ("--set", a)]]) == 0
    a, b = imgclf.load_bundle(tmp_path / "api" / "model"), imgclf.load_bundle(tmp_path / "cli" / "model")
    assert a.meta.labels == b.meta.labels and a.meta.classifier == b.meta.classifier
    np.testing.assert_array_equal(a.head.weight, b.head.weight)
    np.testing.assert_array_equal(a.head.bias, b.head.bias)
    assert a.head.temperature == b.head.temperature
    for name in ("head.npz", "trust.npz"):
        with np.load(a.dir / name) as x, np.load(b.dir / name) as y:
            assert sorted(x.files) == sorted(y.files)
            for key in x.files:
                np.testing.assert_array_equal(x[key], y[key])


def test_help_shows_the_parameters():
    buf = io.StringIO()
    import pydoc

    buf.write(pydoc.render_doc(imgclf.ImageClassifier, renderer=pydoc.plaintext))
    text = buf.getvalue()
    for word in ("preset", "time_limit", "settings", "fit", "predict_proba", "evaluate", "Example"):
        assert word in text
    public = [n for n in dir(imgclf.ImageClassifier) if not n.startswith("_")]
    for name in public:
        doc = getattr(imgclf.ImageClassifier, name).__doc__ or ""
        assert doc.strip(), f"{name} has no docstring"
    assert "imgclf.load" in (imgclf.load.__doc__ or "")


@pytest.mark.slow
def test_readme_python_section_runs_as_written(tmp_path, monkeypatch):
    """The README's Python section, executed as a user would paste it (in a folder with a `photos/` dataset)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```python\n", readme.index("## Python"))
    code = readme[start + len("```python\n"): readme.index("```", start + 10)]
    make_dataset(tmp_path / "photos", n_per_class=9, seed=2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMGCLF_DATA_DIR", str(shared_engines(tmp_path / "data")))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert len(namespace["clf"].classes_) == 3
    assert (tmp_path / "photos.model" / "bundle.json").is_file()
