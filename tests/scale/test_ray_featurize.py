"""featurize --ray writes what a local featurize writes (feature cache, features.npz, skipped.csv), so train
makes the same bundle from it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scale_helpers import write_hostile
from datagen import make_dataset, tiny_config

from imgclf.cli import main
from imgclf.pipeline.steps import featurize, prepare, train

pytestmark = pytest.mark.slow  # two featurize steps and two trainings


def test_featurize_through_ray_then_train_gives_the_local_bundle(ray_address, tmp_path, capsys):
    images = make_dataset(tmp_path / "images", n_per_class=10, seed=5)
    write_hostile(tmp_path / "images" / "circles")  # hostile files inside a class: prepare lists most, featurize the rest
    runs = {}
    for name in ("local", "ray"):
        cfg = tiny_config(tmp_path / name / "data", images, "engine.threads=1", "model.resolution=64")
        runs[name] = (cfg, tmp_path / name / "run")
    prepare(runs["local"][0], runs["local"][1])
    shutil.copytree(runs["local"][1], runs["ray"][1])  # one split for both
    featurize(*runs["local"], progress=False)
    config = runs["ray"][1] / "config.json"
    assert main(["featurize", "--run-dir", str(runs["ray"][1]), "--ray", "--actors", "2",
                 "--set", f'data.root="{runs["ray"][0].data.root}"', "--set", "engine.threads=1"]) == 0
    assert "on Ray: 2 actors" in capsys.readouterr().out and config.exists()

    local, remote = (np.load(runs[n][1] / "features.npz") for n in ("local", "ray"))
    for key in ("paths", "features", "ok", "feature_id"):
        assert np.array_equal(local[key], remote[key]), key
    assert (runs["local"][1] / "skipped.csv").read_text() == (runs["ray"][1] / "skipped.csv").read_text()
    cached = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray" / "data" / "features").rglob("*.npy"))
    assert len(cached) == int(local["ok"].sum()) and cached == sorted(
        p.relative_to(tmp_path / "local") for p in (tmp_path / "local" / "data" / "features").rglob("*.npy"))
    # started again (after a kill, say): every image comes from the cache
    from imgclf.scale.featurize import featurize_run

    again = featurize_run(runs["ray"][0], runs["ray"][1], actors=1, progress=False)
    assert again["cache_hits"] == again["featurized"] == int(local["ok"].sum())
    assert np.array_equal(np.load(runs["ray"][1] / "features.npz")["features"], local["features"])

    for cfg, run in runs.values():
        train(cfg, run)
    models = {n: runs[n][1] / "model" for n in runs}
    assert sorted(p.name for p in models["local"].iterdir()) == sorted(p.name for p in models["ray"].iterdir())
    for f in models["local"].iterdir():
        if f.name not in ("bundle.json", "manifest.json"):
            assert f.read_bytes() == (models["ray"] / f.name).read_bytes(), f.name
    meta = [json.loads((models[n] / "bundle.json").read_text()) for n in ("local", "ray")]
    for m in meta:
        m.pop("created")
    assert meta[0] == meta[1]
