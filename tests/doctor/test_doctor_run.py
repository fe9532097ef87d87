"""The doctor in a real run (the real backbone, tiny generated images): planted problems are found,
a clean set gives nothing beyond its thresholds, a person's review sticks, features are reused."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset, tiny_config
from PIL import Image

from imgclf.cli import main
from imgclf.data.annotations import record
from imgclf.util.files import read_csv, read_json


def _planted(root: Path) -> dict[str, str]:
    """A train/ + test/ dataset with two flipped labels, one picture in two classes, one train image
    copied into test, one image of another kind, and one truncated file."""
    make_dataset(root / "train", n_per_class=14, seed=11)
    make_dataset(root / "test", n_per_class=5, seed=12)
    tr = root / "train"
    shutil.move(tr / "circles" / "circles_000.jpg", tr / "squares" / "flip_circles_000.jpg")
    shutil.move(tr / "stripes" / "stripes_001.jpg", tr / "circles" / "flip_stripes_001.jpg")
    shutil.copy(tr / "squares" / "squares_003.jpg", tr / "stripes" / "dup_squares_003.jpg")
    shutil.copy(tr / "stripes" / "stripes_004.jpg", root / "test" / "stripes" / "leak_stripes_004.jpg")
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "test" / "circles" / "noise.png")
    buf = io.BytesIO()
    Image.open(tr / "circles" / "circles_002.jpg").save(buf, format="JPEG")
    (tr / "circles" / "broken.jpg").write_bytes(buf.getvalue()[:300])
    return {"flip1": "train/squares/flip_circles_000.jpg", "flip2": "train/circles/flip_stripes_001.jpg",
            "dup": "train/stripes/dup_squares_003.jpg", "dup_src": "train/squares/squares_003.jpg",
            "leak": "test/stripes/leak_stripes_004.jpg", "leak_src": "train/stripes/stripes_004.jpg",
            "noise": "test/circles/noise.png", "broken": "train/circles/broken.jpg"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    from imgclf.api import run

    base = tmp_path_factory.mktemp("doctor")
    images = base / "images"
    names = _planted(images)
    cfg = tiny_config(base / "data", images)
    metrics = run(cfg, base / "run", progress=False)
    return {"base": base, "images": images, "cfg": cfg, "metrics": metrics, "names": names, "run": base / "run"}


def test_every_planted_problem_is_found(planted):
    rd, n = planted["run"], planted["names"]
    issues = {r["rel"]: r for r in read_csv(rd / "label_issues.csv")}
    assert issues[n["flip1"]]["suggested_label"] == "circles"
    assert issues[n["flip2"]]["suggested_label"] == "stripes"
    assert [int(r["rank"]) for r in issues.values()] == list(range(1, len(issues) + 1))
    scores = [float(r["score"]) for r in read_csv(rd / "label_issues.csv")]
    assert scores == sorted(scores), "worst (lowest probability of the given label) first"

    dups = read_csv(rd / "duplicates.csv")
    cross = [d for d in dups if {d["rel_a"], d["rel_b"]} == {n["dup"], n["dup_src"]}]
    assert len(cross) == 1 and cross[0]["kind"] == "cross_class" and cross[0]["dhash_distance"] == "0"
    assert n["dup"] in issues or n["dup_src"] in issues, "the same picture with two labels is a label issue"
    leak = [d for d in dups if {d["rel_a"], d["rel_b"]} == {n["leak"], n["leak_src"]}]
    assert len(leak) == 1 and leak[0]["leak"] == "1" and leak[0]["kind"] == "within_class"

    outliers = read_csv(rd / "outliers.csv")
    assert outliers[0]["rel"] == n["noise"] and float(outliers[0]["distance"]) > float(outliers[0]["threshold"])

    skipped = {r["path"] for r in read_csv(rd / "skipped.csv")}
    broken = str(planted["images"] / n["broken"])
    assert broken in skipped
    every = {r["path"] for r in issues.values()} | {r["path"] for r in outliers} | {d["path_a"] for d in dups} | {d["path_b"] for d in dups}
    assert broken not in every


def test_health_is_in_metrics_and_report_beside_the_plain_accuracy(planted):
    rd = planted["run"]
    m = read_json(rd / "metrics.json")
    h = m["dataset_health"]
    assert m["estimated_label_error_rate"] == h["estimated_label_error_rate"] > 0
    assert h["label_issues"] == len(read_csv(rd / "label_issues.csv"))
    assert h["outliers"] == len(read_csv(rd / "outliers.csv")) >= 1
    assert h["cross_class_pairs"] >= 1 and h["leak_pairs"] >= 1
    assert h["images"] == len(read_csv(rd / "split.csv")) == 3 * 19 + 3  # planted copies in, the broken file out
    assert h["images_below_input_size"] == h["images"] - 1, "every generated image is 96 px; the noise image is 300 px"
    assert h["class_counts"] == {"circles": 14 - 1 + 1 + 5 + 1, "squares": 14 + 1 + 5, "stripes": 14 - 1 + 1 + 5 + 1}
    # the plain figure stays; the figure without suspect or leaking test images is beside it
    preds = read_csv(rd / "predictions.csv")
    suspects = {r["path"] for r in read_csv(rd / "label_issues.csv") if r["split"] == "test"}
    suspects |= {d["path_b"] if d["split_b"] == "test" else d["path_a"] for d in read_csv(rd / "duplicates.csv") if d["leak"] == "1"}
    kept = [p for p in preds if p["path"] not in suspects]
    assert m["accuracy"] == pytest.approx(np.mean([p["label"] == p["predicted"] for p in preds]))
    assert h["n_test_without_suspects"] == len(kept) < len(preds)
    assert h["accuracy_without_suspects"] == pytest.approx(np.mean([p["label"] == p["predicted"] for p in kept]), abs=1e-6)
    assert m["steps"]["doctor"]["label_issues"] == h["label_issues"]
    html = (rd / "report.html").read_text()
    assert "Dataset health" in html and "estimated label error rate" in html


@pytest.mark.slow
def test_reviewed_images_stay_dismissed_and_a_rerun_reuses_every_feature(planted, tmp_path):
    from imgclf.api import run

    images = tmp_path / "images"
    shutil.copytree(planted["images"], images)
    n = planted["names"]
    record(images, [(n["flip1"], "squares", "relabel", "circles"), (n["flip2"], "circles", "keep", "circles")])
    cfg = tiny_config(planted["base"] / "data", images)  # the same feature cache: the files' contents are unchanged
    m = run(cfg, tmp_path / "run", progress=False)
    assert m.steps["featurize"]["cache_hits"] == m.steps["featurize"]["featurized"] > 0
    listed = {r["rel"] for r in read_csv(tmp_path / "run" / "label_issues.csv")}
    assert n["flip1"] not in listed and n["flip2"] not in listed
    assert m.dataset_health["dismissed"] >= 1  # flip2 is still suspect, but a person kept its label
    split = {r["rel"]: r["label"] for r in read_csv(tmp_path / "run" / "split.csv")}
    assert split[n["flip1"]] == "circles" and split[n["flip2"]] == "circles"


def test_clean_set_gives_nothing_beyond_its_thresholds(trained_run):
    h = read_json(trained_run / "metrics.json")["dataset_health"]
    assert h["label_issues"] == 0 and h["estimated_label_error_rate"] == 0.0
    assert h["duplicate_pairs"] == 0
    threshold = float(read_csv(trained_run / "outliers.csv")[0]["threshold"]) if h["outliers"] else h["outlier_threshold"]
    assert h["outliers"] == 0 and threshold > 0


def test_doctor_command_reruns_on_a_run_directory(planted, capsys):
    rd = planted["run"]
    before = read_csv(rd / "label_issues.csv")
    assert main(["doctor", "--run-dir", str(rd), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "suspected label errors" in out and before[0]["rel"] in out
    assert read_csv(rd / "label_issues.csv") == before, "same data, same seed: the same findings"


@pytest.mark.slow
def test_doctor_disabled_writes_no_findings(trained_run, tmp_path):
    from imgclf.api import run

    base = trained_run.parent  # the shared run's images and data root: every feature is cached
    m = run(tiny_config(base / "data", base / "images", "doctor.enabled=false"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "label_issues.csv").exists()
    assert "dataset_health" not in read_json(tmp_path / "run" / "metrics.json") and m.estimated_label_error_rate is None


def test_the_out_of_fold_scores_of_every_image_are_kept(planted):
    rd = planted["run"]
    rows = read_csv(rd / "oof_predictions.csv")
    skipped = {r["path"] for r in read_csv(rd / "skipped.csv")}
    usable = sorted(r["path"] for r in read_csv(rd / "split.csv") if r["path"] not in skipped)
    assert sorted(r["path"] for r in rows) == usable, "each usable image once, train and test"
    classes = sorted({r["label"] for r in rows})
    for r in rows:
        p = np.array([float(r[f"p_{c}"]) for c in classes])
        assert abs(p.sum() - 1) < 1e-6 and r["predicted"] == classes[int(p.argmax())] and float(r["score"]) == p.max()
    by_path = {r["path"]: r for r in rows}
    for issue in read_csv(rd / "label_issues.csv"):  # the very numbers the label check ranked by
        if issue["reason"] == "confident_learning":
            assert abs(float(by_path[issue["path"]][f"p_{issue['given_label']}"]) - float(issue["score"])) < 1e-6
