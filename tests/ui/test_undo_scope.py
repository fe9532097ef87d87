"""Undo acts on what the page changed itself and says what it undid; Results states that changing a
test image changes the yardstick, and does not offer "Relabel as <predicted>" as a test image's first choice."""
from __future__ import annotations

import pytest
from datagen import make_image
from test_ui_label_next import pool, pool_server  # noqa: F401  (the served dataset with a pool)
from ui_helpers import make_dataset

from imgclf.data.annotations import current_state, record
from imgclf.ui.catalog import Catalog


def test_catalog_undo_among_the_images_a_page_changed(tmp_path):
    import numpy as np

    images = make_dataset(tmp_path / "images", n_per_class=3, size=64)
    (images / "_unlabeled").mkdir()
    make_image("circles", np.random.default_rng(0)).save(images / "_unlabeled" / "p0.jpg")
    cat = Catalog(images)
    mine, theirs = "squares/squares_001.jpg", "_unlabeled/p0.jpg"
    cat.annotate(mine, "relabel", "stripes")
    record(images, [(theirs, "", "label", "circles")])  # newer, made elsewhere (Label next)
    res = cat.undo(among=[mine])
    assert res["undone"]["path"] == mine
    assert res["back"] == [{"path": mine, "label": "squares", "status": "unchanged", "undid": {"action": "relabel", "label": "stripes"}}]
    assert {p: a.label for p, a in current_state(images).items()} == {theirs: "circles"}, "the other page's label stays"
    assert cat.undo(among=[mine])["undone"] is None, "nothing of its own is left to undo"
    back = cat.undo(among=[theirs])["back"]
    assert back == [{"path": theirs, "label": None, "status": "unlabelled", "undid": {"action": "label", "label": "circles"}}]


@pytest.mark.slow
@pytest.mark.browser
def test_each_page_undoes_its_own_changes_and_says_what_it_undid(pool, browser):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1366, "height": 860})
    label, data = ctx.new_page(), ctx.new_page()
    label.goto(f"{pool.url}/ui/label")
    label.wait_for_selector(".ln-card")
    first = label.locator(".ln-card").first.get_attribute("data-path")
    label.locator("#ln-accept").click()
    label.wait_for_selector(f'.ln-card[data-path="{first}"][data-status="labelled"]')

    data.goto(f"{pool.url}/ui/dataset")
    data.wait_for_selector(".tile")
    data.locator("#undo").click()
    data.wait_for_function("() => document.getElementById('toast').textContent.includes('Nothing to undo')")
    assert first in current_state(pool.images), "the Dataset page left Label next's label alone"
    tile = data.locator(".tile").nth(2)
    rel, original = tile.get_attribute("data-path"), tile.get_attribute("data-label")
    other = next(c for c in ("circles", "squares", "stripes") if c != original)
    tile.click()
    data.locator(f'#class-buttons [data-label="{other}"]').click()
    data.wait_for_selector(f'.tile[data-path="{rel}"][data-label="{other}"]')

    label.bring_to_front()
    second = label.locator('.ln-card[aria-selected="true"]').get_attribute("data-path")
    label.locator("#ln-drop").click()  # the newest change of all, made on Label next
    label.wait_for_selector(f'.ln-card[data-path="{second}"][data-status="excluded"]')

    data.bring_to_front()
    data.keyboard.press("u")
    data.wait_for_selector(f'.tile[data-path="{rel}"][data-label="{original}"]')
    text = data.locator("#toast").inner_text()
    assert rel.split("/")[-1] in text and f"→ {other}" in text and f"back to {original}" in text, text
    assert {p: a.action for p, a in current_state(pool.images).items()} == {first: "label", second: "exclude"}

    label.bring_to_front()
    label.locator("#ln-undo").click()
    label.wait_for_selector(f'.ln-card[data-path="{second}"][data-status=""]')
    text = label.locator("#toast").inner_text()
    assert second.split("/")[-1] in text and "unlabelled in the pool again" in text, text
    assert {p: a.action for p, a in current_state(pool.images).items()} == {first: "label"}
    ctx.close()


@pytest.mark.slow
@pytest.mark.browser
def test_results_says_a_test_image_is_the_yardstick(page, server, dataset):
    page.goto(f"{server.url}/ui/results#errors=1")
    page.wait_for_selector(".result.wrong")
    card = page.locator(".result.wrong").first
    assert card.locator(".actions .btn.primary").count() == 0, "relabelling a test image is not the first choice"
    assert "test split" in card.locator(".yardstick").inner_text()
    predicted = card.get_attribute("aria-label").split("predicted ")[1].split(" ")[0]
    card.get_by_role("button", name=f"Relabel as {predicted}").click()
    page.wait_for_function("() => document.getElementById('toast').textContent.includes('saved')")
    assert "changes the test split" in page.locator("#toast").inner_text()
    page.locator("#side-train").click()
    page.wait_for_selector('#side-train[aria-pressed="true"]')
    page.wait_for_selector(".result")
    assert page.locator(".yardstick").count() == 0, "train images change no yardstick"
