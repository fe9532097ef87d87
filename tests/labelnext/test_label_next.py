"""Label next on a real run: imgclf suggest, the refit (the quick update), and labels given in the pool flowing into
the next run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from datagen import CLASSES, make_image, tiny_config

from imgclf.cli import main
from imgclf.data.annotations import record
from imgclf.data.split import load_split
from imgclf.rundir.layout import RunDir
from imgclf.util.files import read_csv, read_json

POOL = 12


@pytest.fixture(scope="module")
def pooled_run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A copy of the shared run and of its images, plus a pool of 12 unlabelled images (4 per class, named so)."""
    base = tmp_path_factory.mktemp("label_next")
    images = base / "images"
    shutil.copytree(trained_run.parent / "images", images)
    rng = np.random.default_rng(11)
    (images / "_unlabeled").mkdir()
    for i in range(POOL):
        cls = CLASSES[i % 3]
        make_image(cls, rng).save(images / "_unlabeled" / f"p{i:02d}_{cls}.jpg", quality=90)
    shutil.copytree(trained_run, base / "run")
    cfg = tiny_config(trained_run.parent / "data", images, "doctor.enabled=false")
    return {"images": images, "run": base / "run", "cfg": cfg, "base": base}


def _true(rel: str) -> str:
    return rel.rsplit("_", 1)[1].removesuffix(".jpg")


def _set_images(images: Path) -> list[str]:
    return ["--set", f'data.images="{images}"', "--set", "doctor.enabled=false"]


def test_suggest_command_writes_suggestions_from_the_pool(pooled_run, capsys):
    run, images = pooled_run["run"], pooled_run["images"]
    assert main(["suggest", "--run-dir", str(run), "-n", "5", "--json", "--quiet", *_set_images(images)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["suggested"] == 5 and out["pool"] == POOL and out["strategy"] == "density"
    rows = read_csv(RunDir(run).suggestions)
    assert [r["rel"] for r in rows] == [r["rel"] for r in out["rows"]]
    assert len({r["rel"] for r in rows}) == 5 and all(r["rel"].startswith("_unlabeled/") for r in rows)
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["predicted"] in CLASSES and 0.0 <= float(r["score"]) <= 1.0 and r["reason"] for r in rows)
    # the head knows these easy generated classes: it predicts the pool images' true classes
    assert np.mean([r["predicted"] == _true(r["rel"]) for r in out["rows"]]) >= 0.8

    assert main(["suggest", "--run-dir", str(run), "-n", "3", "--strategy", "random", *_set_images(images)]) == 0
    assert "3 of 12 unlabelled pool images suggested by random" in capsys.readouterr().out
    assert main(["suggest", "--run-dir", str(run), "--strategy", "busiest", *_set_images(images)]) == 2
    err = capsys.readouterr().err
    assert "unknown selection strategy 'busiest'" in err and "hybrid" in err


@pytest.mark.slow
def test_labels_given_in_the_pool_flow_into_the_refit_the_next_split_and_metrics(pooled_run):
    from imgclf.api import run as run_pipeline
    from imgclf.labelnext.quick import quick_update
    from imgclf.labelnext.step import suggest

    cfg, images, run = pooled_run["cfg"], pooled_run["images"], pooled_run["run"]
    first = suggest(cfg, run, n=8)
    given = [r["rel"] for r in first["rows"][:6]]
    dropped = first["rows"][6]["rel"]
    record(images, [(rel, "", "label", _true(rel)) for rel in given] + [(dropped, "", "exclude", "")])

    n_train = len(RunDir(run).split_rows("train"))
    r = quick_update(run, images)
    assert r["n_train"] == n_train + 6 and r["changes"] == {"relabelled": 0, "added": 6, "removed": 0, "total": 6}
    assert 0.0 <= r["cv_accuracy"] <= 1.0 and "accuracy" not in read_json(Path(r["run"]) / "metrics.json")
    draft_rows = load_split(str(Path(r["run"]) / "split.csv"))
    assert {x.rel: x.split for x in draft_rows if x.rel.startswith("_unlabeled/")} == dict.fromkeys(given, "train")

    again = suggest(cfg, run, n=10)
    assert again["pool"] == POOL - 7 and again["labelled_in_pool"] == 6
    assert not {r["rel"] for r in again["rows"]} & set(given + [dropped])

    run2 = pooled_run["base"] / "run2"
    metrics = run_pipeline(cfg, run2, progress=False)
    rows = load_split(str(run2 / "split.csv"))
    pool_rows = {r.rel: (r.label, r.split) for r in rows if r.rel.startswith("_unlabeled/")}
    assert {rel: label for rel, (label, _) in pool_rows.items()} == {rel: _true(rel) for rel in given}
    assert {r.label for r in rows} == set(CLASSES)
    before = {r.rel: r.split for r in RunDir(run).split_rows()}
    assert {r.rel: r.split for r in rows if r.rel in before} == before, "pool labels moved a folder image"
    assert metrics.n_train + metrics.n_test == len(before) + 6
    assert set(side for _, side in pool_rows.values()) == {"train"}, "chosen by Label next: they train, never test"
    assert metrics.n_test == sum(s == "test" for s in before.values())
    assert metrics.steps["prepare"]["labelled_from_pool"] == 6 and metrics.steps["prepare"]["pool_unlabelled"] == POOL - 7

    # a refit of the new run counts each labelled pool image once: they are its train rows already
    assert quick_update(run2, images)["n_train"] == len(RunDir(run2).split_rows("train"))
    # a split made before (a labelled pool image drawn into test) keeps working: that image is not trained on
    split = (run2 / "split.csv").read_text().splitlines()
    i = next(k for k, line in enumerate(split) if "_unlabeled/" in line)
    split[i] = split[i].replace(",train,", ",test,")
    (run2 / "split.csv").write_text("\n".join(split) + "\n")
    assert quick_update(run2, images)["n_train"] == len(RunDir(run2).split_rows("train"))
