"""Helpers of the web UI tests: the dataset with mislabelled images, a live server, Chromium."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
import web

# Debian's Chromium headless shell (package chromium-headless-shell: the same engine without the browser's
# window layer, a quarter less CPU per test), else the whole browser run headless
CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium") if os.path.exists(p)),
                "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
STRAYS = 3  # images of another class put in each class folder: the run's test set gets real errors


import datagen as _ROOT  # noqa: E402  (tests/ is on pythonpath)

CLASSES = _ROOT.CLASSES
make_dataset = _ROOT.make_dataset
tiny_config = _ROOT.tiny_config


def make_mislabelled_dataset(root: Path, n_per_class: int = 14, seed: int = 7) -> Path:
    """``make_dataset`` plus ``STRAYS`` images of the next class in each folder (named ``stray_*``)."""
    make_dataset(root, n_per_class=n_per_class, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for i, cls in enumerate(CLASSES):
        other = CLASSES[(i + 1) % len(CLASSES)]
        for j in range(STRAYS):
            _ROOT.make_image(other, rng).save(root / cls / f"stray_{j:03d}.jpg", quality=90)
    return root


def files_per_class(root: Path) -> dict[str, list[str]]:
    """The rel paths of the images in each class folder, sorted."""
    return {c: sorted(p.relative_to(root).as_posix() for p in (root / c).iterdir() if p.suffix == ".jpg") for c in CLASSES}


def wait_images_loaded(page, selector: str) -> None:
    """Every matching image in view has loaded (lazy ones further down load when scrolled to)."""
    page.wait_for_function(
        "sel => { const imgs = [...document.querySelectorAll(sel)].filter(i => i.getBoundingClientRect().top < innerHeight);"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }", arg=selector)


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("annotations.csv"))
    return dst


def chromium_available() -> tuple[bool, str]:
    if os.path.exists(CHROMIUM):
        return True, ""
    return False, f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium-headless-shell) to run the browser tests"


LONG_CLASS = "a_class_whose_name_is_far_too_long_for_the_sidebar_of_the_dataset_page_" + "x" * 40


def make_many_classes_dataset(root: Path, n_classes: int = 12, per_class: int = 2) -> Path:
    """``n_classes`` folders of tiny solid-colour JPEGs, the last one with a very long name (``LONG_CLASS``)."""
    from PIL import Image

    names = [f"class{k:02d}" for k in range(n_classes - 1)] + [LONG_CLASS]
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            Image.new("RGB", (24, 24), (20 * k % 256, 40 * j % 256, 90)).save(root / name / f"img_{j}.jpg")
    return root


def serve_ui(predictor, images, run, thumbs, **serve):
    """A ServerThread (enter it) of the UI over ``images`` and ``run`` (either may be None), ``serve`` settings."""
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    app = create_ui_app(predictor, ServeConfig(**serve), images_dir=str(images) if images else None,
                        run_dir=str(run) if run else None, thumbs_dir=str(thumbs))
    return ServerThread(app)


PHONE = {"width": 390, "height": 844}


@contextlib.contextmanager
def phone_on_many_classes(browser, tmp_path: Path):
    """A phone's tab (390x844, touch) on the Dataset page of ``make_many_classes_dataset`` (14 classes), served."""
    images = make_many_classes_dataset(tmp_path / "many", n_classes=14)
    with serve_ui(None, images, None, tmp_path / "thumbs") as srv:
        ctx = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
        pg = ctx.new_page()
        pg.goto(f"{srv.url}/ui/dataset")
        pg.wait_for_selector(".tile")
        yield pg
        ctx.close()


@contextlib.contextmanager
def no_500_client(url: str):
    """An HTTP client of the server at ``url``; when the block ends, no request may have ended in a 500."""
    with web.client(base_url=url, timeout=60) as c:
        yield c
        lines = c.get("/metrics").text.splitlines()
        internal = [ln for ln in lines if ln.startswith("imgclf_internal_errors_total")]
        routes = [ln for ln in lines if ln.startswith("imgclf_requests_total{") and 'status="500"' in ln]
        assert internal == ["imgclf_internal_errors_total 0.0"], f"no request may end in a 500: {routes}"
