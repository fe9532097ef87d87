"""Fixtures of the web UI tests: one real run on a dataset with mislabelled images, served live."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from ui_helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, chromium_available, make_mislabelled_dataset, no_500_client, tiny_config

from imgclf.data.annotations import annotations_path


@pytest.fixture(scope="session")
def ui_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real svm run whose test split holds mislabelled images (so some predictions are errors)."""
    from imgclf.api import run

    base = tmp_path_factory.mktemp("ui")
    images = make_mislabelled_dataset(base / "images")
    cfg = tiny_config(base / "data", images)
    run(cfg, base / "run", progress=False)
    return {"base": base, "images": images, "run": base / "run", "data": base / "data"}


@pytest.fixture(scope="session")
def predictor(ui_run):
    from imgclf.inference.predict import Predictor

    return Predictor(ui_run["run"] / "model")


@pytest.fixture(scope="session")
def server(ui_run, predictor):
    """The service app with the UI over the run's dataset, on 127.0.0.1 in a thread."""
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    app = create_ui_app(predictor, ServeConfig(), images_dir=str(ui_run["images"]), run_dir=str(ui_run["run"]),
                        thumbs_dir=str(ui_run["base"] / "thumbs"))
    with ServerThread(app) as srv:
        yield srv


@pytest.fixture
def dataset(ui_run) -> Path:
    """The served dataset folder; its annotations are wiped after each test."""
    yield ui_run["images"]
    annotations_path(ui_run["images"]).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def browser():
    ok, why = chromium_available()
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh browser tab at a laptop's screen size; console errors fail the test."""
    ctx = browser.new_context(viewport={"width": 1366, "height": 860})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(15_000)
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def client(server):
    """An HTTP client of the UI server; at the end of the module, no request may have ended in a 500."""
    with no_500_client(server.url) as c:
        yield c
