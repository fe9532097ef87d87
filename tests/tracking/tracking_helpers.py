"""Helpers shared by the tracking tests."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

# The two tracked runs differ in their SVM settings only (same images, same features).
SVM_A = ["svm.c_values=[0.01, 1.0, 100.0]"]
SVM_B = ["svm.c_values=[0.001]", "svm.l2_normalize=false"]


def track_config(data_root: Path, images: Path, *extra: str):
    """tests/conftest.py's tiny config, with tracking on (``data_root`` is not made: tests check what tracking writes there)."""
    from imgclf.config.settings import load_config

    return load_config(None, [f"data.root={json.dumps(str(data_root))}", f"data.images={json.dumps(str(images))}",
                              "svm.cv_folds=3", "svm.c_values=[0.01, 1.0, 100.0]", "tracking.enabled=true", *extra])


def run_id_of(run_dir: Path) -> str:
    """The MLflow run id recorded in a run directory."""
    return json.loads((Path(run_dir) / "tracking.json").read_text())["run_id"]


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def fresh_store(template: Path, db: Path) -> str:
    """A new, empty MLflow SQLite store at ``db`` (a copy of an already-migrated one: creating
    the schema takes MLflow seconds); returns its URI."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, db)
    return f"sqlite:///{db}"
