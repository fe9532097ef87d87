"""What every page shares, in a real browser: the phone layout (results and dataset) and error texts that say
what happened and what to change (try and dataset)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from ui_helpers import phone_on_many_classes, serve_ui
import web

from imgclf.data.annotations import read_history
from imgclf.util.files import read_json

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.mark.slow
def test_phone_layout(browser, server, ui_run, dataset, tmp_path, artifacts):
    ctx = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    pg = ctx.new_page()
    pg.goto(f"{server.url}/ui/results")
    pg.wait_for_selector(".result")
    assert pg.locator("#filters-section").bounding_box()["y"] < PHONE["height"], "the page opens at the filters"
    pg.screenshot(path=str(artifacts / "phone-results.png"))
    metrics = read_json(ui_run["run"] / "metrics.json")
    labels, cm = metrics["labels"], metrics["confusion_matrix"]
    t, p = next((i, j) for i in range(len(labels)) for j in range(len(labels)) if cm[i][j])
    pg.locator(f'.cell[data-truth="{labels[t]}"][data-pred="{labels[p]}"]').tap()
    pg.wait_for_function("Math.abs(document.getElementById('bulk').getBoundingClientRect().top) < 40")
    pg.screenshot(path=str(artifacts / "phone-results-cell.png"))
    pg.locator(".result .thumbwrap").first.tap()
    pg.wait_for_selector("dialog#viewer[open]")
    pg.screenshot(path=str(artifacts / "phone-viewer.png"))
    assert pg.locator("#viewer-actions button").count() >= 2, "relabel buttons in the viewer"
    first = pg.locator("#viewer-title").inner_text()
    swipe = """([dx]) => { const s = document.getElementById('viewer-stage');
      const t = (x) => [new Touch({ identifier: 1, target: s, clientX: x, clientY: 300 })];
      s.dispatchEvent(new TouchEvent('touchstart', { touches: t(300), changedTouches: t(300), bubbles: true }));
      s.dispatchEvent(new TouchEvent('touchend', { touches: [], changedTouches: t(300 + dx), bubbles: true })); }"""
    pg.evaluate(swipe, [-150])
    if cm[t][p] > 1:
        pg.wait_for_function("t => document.getElementById('viewer-title').textContent !== t", arg=first)
    ctx.close()

    with phone_on_many_classes(browser, tmp_path) as pg:
        assert pg.locator("#filters").bounding_box()["y"] < PHONE["height"] / 2, "the page opens at the filters"
        pg.locator(".tile").first.scroll_into_view_if_needed()
        assert pg.locator("#actions").bounding_box()["height"] <= 0.2 * PHONE["height"], "14 classes, one toolbar row"
        pg.screenshot(path=str(artifacts / "phone-dataset.png"))
        pg.wait_for_function("() => ![...document.querySelectorAll('.tile .thumbwrap')].some(w => w.classList.contains('loading')"
                             " && w.getBoundingClientRect().top < innerHeight)")
        pg.locator(".tile").first.dblclick()
        pg.wait_for_selector("dialog#viewer[open]")
        title = pg.locator("#viewer-title").inner_text()
        assert pg.locator("#viewer-actions button").count() == 14, "13 other classes and Exclude"
        pg.evaluate(swipe, [-150])
        pg.wait_for_function("t => document.getElementById('viewer-title').textContent !== t", arg=title)


@pytest.mark.slow
def test_error_texts_say_what_happened_and_what_to_change(browser, predictor, dataset, ui_run, tmp_path):
    big = tmp_path / "big.png"  # noise: about 0.5 MB, over a 0.2 MB limit
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)).save(big)
    huge = tmp_path / "huge.png"  # a small file declaring 50 M pixels
    Image.new("1", (10_000, 5_000)).save(huge)
    bad = dataset / "circles" / "zz_broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    try:
        with serve_ui(predictor, dataset, ui_run["run"], tmp_path / "thumbs", max_body_mb=0.2) as srv:
            r = web.post(f"{srv.url}/ui/api/predict", content=big.read_bytes())
            assert r.status_code == 413 and "0.2 MB" in r.json()["error"] and "serve.max_body_mb" in r.json()["error"]
            pg = browser.new_page()
            pg.goto(f"{srv.url}/ui/try")
            pg.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
            pg.locator("#file").set_input_files([str(big), str(huge)])
            pg.wait_for_function("document.querySelectorAll('.outcome[data-state=\"error\"]').length === 2")
            texts = pg.eval_on_selector_all(".outcome .name", "ns => ns.map(n => n.closest('.outcome').innerText)")
            size_text = next(t for t in texts if "big.png" in t)
            assert "MB" in size_text and "serve.max_body_mb" in size_text
            pixels_text = next(t for t in texts if "huge.png" in t)
            assert "images.max_pixels" in pixels_text and "send a JPEG" not in pixels_text

            pg.goto(f"{srv.url}/ui/dataset#q=zz_broken")
            pg.wait_for_selector(".tile .why")
            assert "not a usable image" in pg.locator(".tile .why").inner_text()

            pg.goto(f"{srv.url}/ui/dataset")
            pg.wait_for_selector(".tile")
            pg.locator(".tile").first.click()
            pg.keyboard.press("0")  # restore an image that was never changed
            pg.wait_for_function("document.getElementById('toast').textContent.includes('nothing changed')")
            assert pg.locator("#toast button").count() == 0 and read_history(dataset) == []
            pg.close()
    finally:
        bad.unlink()
