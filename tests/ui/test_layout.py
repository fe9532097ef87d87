"""Layout bugs of the review, in a real browser: one h1 and one main per page; pages without a run say so
at full width and disable what needs one; the chosen tile is never under the sticky toolbar; the viewer
prints no "null"; a picked tile keeps its focus ring; on a phone a filter tap scrolls to the images and
the toast leaves the viewer's buttons free; Try's errors read as one block, once."""
from __future__ import annotations

import re

import pytest
from ui_helpers import PHONE, phone_on_many_classes, serve_ui

from imgclf.data.annotations import record
from imgclf.ui.routes import PAGES

pytestmark = pytest.mark.browser


@pytest.mark.slow
def test_one_h1_and_one_main_on_every_page(page, server, dataset):
    for name in PAGES:
        page.goto(f"{server.url}/ui/{name}")
        page.wait_for_load_state("networkidle")
        counts = page.evaluate("[document.querySelectorAll('h1').length, document.querySelectorAll('main, [role=main]').length]")
        assert counts == [1, 1], f"{name}: {counts[0]} h1, {counts[1]} main"


@pytest.mark.slow
def test_pages_without_a_run_say_so_at_full_width_and_disable_what_needs_one(browser, predictor, dataset, tmp_path):
    with serve_ui(predictor, dataset, None, tmp_path / "thumbs") as srv:
        pg = browser.new_page(viewport={"width": 1366, "height": 860})
        pg.goto(f"{srv.url}/ui/label")
        pg.wait_for_selector("#batch .empty")
        assert "needs a run" in pg.locator("#batch .empty").inner_text()
        assert pg.locator("#batch .empty").bounding_box()["width"] >= 0.9 * pg.locator("#batch").bounding_box()["width"]
        for sel in ("#refit", "#strategy", "#batch-size", "#ln-accept", "#ln-drop", "#ln-undo"):
            assert pg.locator(sel).is_disabled(), f"label next: {sel} needs a run"

        pg.goto(f"{srv.url}/ui/results")
        pg.wait_for_selector("#results .empty")
        assert "no run" in pg.locator("#results .empty").inner_text()
        assert pg.locator("#results .empty").bounding_box()["width"] >= 0.9 * pg.locator("#results").bounding_box()["width"]
        for sel in ("#side-train", "#f-true", "#f-errors", "#sort", "#clear", "#bulk-all", "#more"):
            assert pg.locator(sel).is_disabled(), f"results: {sel} needs a run"
        pg.close()


@pytest.mark.slow
def test_moving_up_keeps_the_chosen_tile_below_the_sticky_toolbar(page, server, dataset):
    page.goto(f"{server.url}/ui/dataset")
    page.wait_for_selector(".tile")
    page.locator(".tile").first.click()
    page.keyboard.press("End")
    for _ in range(8):
        page.keyboard.press("ArrowUp")
        tile = page.locator('.tile[aria-selected="true"]').bounding_box()
        bar = page.locator("#actions").bounding_box()
        assert tile["y"] >= bar["y"] + bar["height"] - 1, f"the chosen tile (top {tile['y']}) is under the toolbar ({bar})"


@pytest.mark.slow
def test_viewer_prints_no_null_and_a_picked_tile_keeps_its_focus_ring(page, server, dataset):
    record(dataset, [("circles/circles_000.jpg", "", "exclude", "")])
    page.goto(f"{server.url}/ui/dataset")
    page.wait_for_selector(".tile")
    for i in range(2):  # an excluded image (no Exclude button) and an unchanged one (no Restore button)
        page.locator(".tile").nth(i).dblclick()
        page.wait_for_selector("dialog#viewer[open]")
        assert "null" not in page.locator("#viewer .bar").inner_text()
        page.keyboard.press("Escape")
    page.keyboard.press("ArrowRight")  # by keyboard: the focus ring shows
    page.keyboard.press("m")
    page.wait_for_selector('.tile[data-picked="true"]')
    ring = page.evaluate("() => { const t = document.activeElement; return [t.dataset.picked, t.matches(':focus-visible'),"
                         " getComputedStyle(t).boxShadow]; }")
    assert ring[0] == "true" and ring[1], ring
    assert "rgb(31, 95, 214)" in ring[2], f"the picked tile's focus ring is gone: {ring[2]}"


def _overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


@pytest.mark.slow
def test_phone_filter_scrolls_to_the_images_and_the_toast_leaves_the_viewer_buttons_free(browser, tmp_path, artifacts):
    with phone_on_many_classes(browser, tmp_path) as pg:
        assert pg.locator(".tile").first.bounding_box()["y"] > PHONE["height"] / 2, "the filters come first"
        pg.locator('.filter[data-label="class12"]').tap()  # then the images it shows come into view
        pg.wait_for_function("() => { const t = document.querySelector('.tile'); const r = t && t.getBoundingClientRect();"
                             " const bar = document.getElementById('actions').getBoundingClientRect().top;"
                             " const end = innerHeight + scrollY >= document.documentElement.scrollHeight - 2;"
                             " return t && t.dataset.label === 'class12' && r.top >= 0 && r.bottom <= innerHeight && (bar < 40 || end); }")

        pg.locator(".tile").first.dblclick()
        pg.wait_for_selector("dialog#viewer[open]")
        pg.locator("#viewer-actions button").first.tap()  # a correction: its toast shows in the viewer
        pg.wait_for_selector("dialog#viewer #toast:not([hidden])")
        toast = pg.locator("#toast").bounding_box()
        for sel in ("#viewer-prev", "#viewer-next", "#viewer-close", "#viewer-actions button"):
            for k in range(pg.locator(sel).count()):
                box = pg.locator(sel).nth(k).bounding_box()
                assert not _overlaps(toast, box), f"the toast covers {sel} #{k}"
        pg.screenshot(path=str(artifacts / "phone-viewer-toast.png"))


@pytest.mark.slow
def test_try_errors_read_once_as_one_block_without_a_broken_image(page, server, dataset, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    page.goto(f"{server.url}/ui/try")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    page.locator("#file").set_input_files([str(notes), str(dataset / "circles" / "circles_000.jpg")])
    page.wait_for_function("document.querySelectorAll('.outcome[aria-busy]').length === 0 && document.querySelectorAll('.outcome').length === 2")
    bad = page.locator('.outcome[data-state="error"]')
    message = bad.locator(".alert").inner_text()
    assert "not a usable image" in message and message.count("JPEG") == 1, message
    assert bad.locator(".alert").evaluate("a => a.getClientRects().length") == 1, "one block, not a wrapped inline box"
    broken = page.evaluate("[...document.querySelectorAll('.outcome img')].filter(i => i.complete && i.naturalWidth === 0).length")
    assert broken == 0, "no broken-image icon"
    assert "no preview" in bad.inner_text()
    good = page.locator('.outcome[data-state="done"]').inner_text()
    assert not re.search(r"\bunknown (true|false)\b", good), good
