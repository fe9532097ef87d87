"""Shared fixtures: small generated datasets and one trained run reused across test modules."""
from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path

import datagen
import pytest
import schedule
from datagen import CLASSES, build_once, make_dataset, make_image, run_wide_temp, tiny_config  # noqa: F401  (re-exported)

os.environ.setdefault("OMP_NUM_THREADS", "2")
# Tests never download: the Hugging Face hub reads this once, when it is imported, so it is set before
# any test imports timm (set later, a missing model costs the hub's network retries, about 40 s).
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one engine cache of the test run: every data root given to ``tiny_config`` or ``shared_engines``
    links its ``engines/`` here, so each featurizer is exported once, not once per data root. Under xdist the
    workers share it; an export is written atomically, so two workers exporting the same featurizer at once
    both leave a whole file."""
    datagen.SHARED_ENGINES = run_wide_temp(tmp_path_factory) / "engines"
    datagen.SHARED_ENGINES.mkdir(exist_ok=True)
    return datagen.SHARED_ENGINES


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
    """A fresh data root (datasets/, features/, runs/, tracking store) for one test, not made yet (some tests
    check that nothing is written there); ``shared_engines(data_root)`` gives it the session's engines."""
    root = tmp_path / "data"
    monkeypatch.setenv("IMGCLF_DATA_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real svm run (3 classes × 16 images) shared by tests that need a model bundle, built once for the
    whole test run (every xdist worker uses the same one).

    Read-only: a test that changes the run takes ``run_copy``; one that runs again on its images may
    use its data root (``trained_run.parent / "data"``), whose feature cache then answers every image.
    """
    def build(base: Path) -> None:
        from imgclf.api import run

        images = make_dataset(base / "images", n_per_class=16, seed=1)
        run(tiny_config(base / "data", images), base / "run", progress=False)

    return build_once(tmp_path_factory, "trained", build) / "run"


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of ``trained_run`` (``tmp_path/run``) for a test that changes or logs it."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


# xdist: the costliest test files first (see schedule.py)
_durations = schedule.DurationRecorder()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    schedule.order_by_cost(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every test module and all it imports (torch, OpenVINO, scikit-learn, MLflow...) is in memory now and
    stays: frozen, the garbage collector no longer walks it, and the youngest generation is collected every
    7,000 allocations instead of 700. Collections were ~6% of a worker's CPU (serve, api and pipeline tests:
    3.4 s), half that after (1.75 s)."""
    gc.freeze()
    gc.set_threshold(7000, 10, 10)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    return schedule.CostOrderScheduling(config, log) if config.getvalue("dist") == "loadfile" else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations.add(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controlling process (or a run without xdist)
        _durations.write()
