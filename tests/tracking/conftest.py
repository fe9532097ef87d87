"""Fixtures of the tracking tests: real runs logged to a real MLflow store (SQLite in tmp)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from tracking_helpers import SVM_A, SVM_B, track_config


@dataclass
class Tracked:
    uri: str  # the store both runs went to
    db: Path
    data_root: Path  # holds the features cache of trained_run, so new runs featurize nothing
    images: Path
    runs: dict[str, Path]  # name -> run dir
    configs: dict[str, object]


@pytest.fixture(scope="session")
def tracked(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Tracked:
    """Two svm runs of the real pipeline, tracked in one SQLite store."""
    from imgclf.api import run

    base = tmp_path_factory.mktemp("tracked")
    db = base / "store" / "mlruns.db"
    uri = f"sqlite:///{db}"
    data_root, images = trained_run.parent / "data", trained_run.parent / "images"
    runs, configs = {}, {}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name, extra in (("svm_a", SVM_A), ("svm_b", SVM_B)):
            cfg = track_config(data_root, images, f"tracking.uri={json.dumps(uri)}", *extra)
            run(cfg, base / name, progress=False)
            runs[name], configs[name] = base / name, cfg
    return Tracked(uri, db, data_root, images, runs, configs)


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, schema made once per session; copy it with ``fresh_store``."""
    from tracking_helpers import client

    db = tmp_path_factory.mktemp("store_template") / "mlruns.db"
    client(f"sqlite:///{db}").search_experiments()
    return db
