"""The Label next page says why an image the service kept comes first: what it answered, and when."""
from __future__ import annotations

import io
import shutil
import time

import numpy as np
import pytest
from ui_helpers import CLASSES
import web

from imgclf.data.annotations import current_state
from imgclf.data.kept import KeptStore


@pytest.fixture
def served(ui_run, predictor, tmp_path):
    """The UI, keeping what it is asked about, over a copy of the UI run whose pool holds 6 images, one of them kept
    after the service answered "unknown"."""
    from datagen import make_image

    from imgclf.config.settings import ServeConfig
    from imgclf.serve.keeper import keep_place
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    images, run = tmp_path / "images", tmp_path / "run"
    shutil.copytree(ui_run["images"], images, ignore=shutil.ignore_patterns("annotations.csv"))
    shutil.copytree(ui_run["run"], run)
    pool = images / "_unlabeled"
    pool.mkdir()
    rng = np.random.default_rng(31)
    for i in range(5):
        make_image(CLASSES[i % 3], rng).save(pool / f"p{i}.jpg", quality=90)
    store = KeptStore(pool, 2**20, images).open()
    when = time.time()
    buf = io.BytesIO()
    make_image(CLASSES[0], rng).save(buf, "JPEG", quality=90)
    kept = store.add(buf.getvalue(), {"label": "unknown", "score": 0.8, "unknown": True, "nearest_label": CLASSES[0]}, when)
    store.close()  # the server's keeper takes the folder next
    cfg = ServeConfig(keep_inputs=True)
    app = create_ui_app(predictor, cfg, keep_into=keep_place(cfg, images), images_dir=str(images), run_dir=str(run),
                        thumbs_dir=str(tmp_path / "thumbs"))
    with ServerThread(app) as srv:
        srv.images, srv.kept, srv.day = images, f"_unlabeled/{kept.file}", time.strftime("%Y-%m-%d", time.gmtime(when))
        yield srv


@pytest.mark.slow
def test_the_kept_unknown_image_leads_the_batch_with_its_reason(served, browser):
    with web.client(base_url=served.url, timeout=60) as c:
        batch = c.get("/ui/api/label-next", params={"n": 4}).json()["batch"]
    first = batch[0]
    assert first["path"] == served.kept and first["reason"] == f"the service answered unknown on {served.day}"
    assert first["served"] == {"answer": "unknown", "unknown": True, "first_asked": first["served"]["first_asked"], "times_asked": 1}
    assert all(it["served"] is None for it in batch[1:])

    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)  # a phone, by touch and keyboard
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{served.url}/ui/label")
        card = page.locator(f'.ln-card[data-path="{served.kept}"]')
        reason = card.locator('[data-role="served"]')
        reason.wait_for()
        assert reason.inner_text().startswith("The service answered unknown on ")
        assert reason.is_visible()
        assert page.locator('[data-role="served"]').count() == 1
        card.tap()
        page.keyboard.press("2")  # give it class 2
        page.wait_for_selector(f'.ln-card[data-path="{served.kept}"][data-label="{CLASSES[1]}"]')
    finally:
        ctx.close()
    assert not errors
    assert current_state(served.images)[served.kept].label == CLASSES[1]
