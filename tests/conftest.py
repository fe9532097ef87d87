"""Shared fixtures: small generated datasets and one trained run reused across test modules."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from datagen import CLASSES, make_dataset, make_image, tiny_config  # noqa: F401  (re-exported)

os.environ.setdefault("OMP_NUM_THREADS", "2")

@pytest.fixture(scope="session", autouse=True)
def _user_data_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The per-user data folder (the data root's last default) of the tests is a temporary one."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg_data_home"))


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """3 classes × 12 JPEGs (96 px) in a fresh folder."""
    return make_dataset(tmp_path / "images")


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data root (datasets/, features/, runs/, tracking store) for one test."""
    root = tmp_path / "data"
    monkeypatch.setenv("IMGCLF_DATA_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real svm run (3 classes × 16 images) shared by tests that need a model bundle.

    Treat it as read-only: copy it (``shutil.copytree``) before changing anything.
    """
    from imgclf.api import run

    base = tmp_path_factory.mktemp("trained")
    images = make_dataset(base / "images", n_per_class=16, seed=1)
    cfg = tiny_config(base / "data", images)
    run(cfg, base / "run", progress=False)
    return base / "run"
