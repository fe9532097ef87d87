"""Label next by mouse and by touch: every class and every action from the bar over the batch; Enter
labels only the chosen card; undo says what it undid; the batch's thumbnails never rescan the dataset."""
from __future__ import annotations

import pytest
from test_ui_label_next import POOL, pool, pool_server  # noqa: F401  (the served dataset with a pool)
from ui_helpers import PHONE
import web

from imgclf.data.annotations import current_state, read_history


def _cards(pg) -> list[dict]:
    return pg.eval_on_selector_all(".ln-card", "cs => cs.map(c => ({path: c.dataset.path, status: c.dataset.status,"
                                               " label: c.dataset.label, predicted: c.querySelector('.badge').textContent}))")


@pytest.mark.slow
@pytest.mark.browser
def test_every_class_and_action_by_mouse_and_enter_only_on_the_chosen_card(pool, page):  # noqa: F811
    page.goto(f"{pool.url}/ui/label")
    page.wait_for_selector(".ln-card")
    cards = _cards(page)
    assert len(cards) == POOL
    assert page.locator("#ln-classes button").count() == 3, "a button per class"

    page.locator(".ln-card").nth(2).click()
    assert page.locator("#ln-chosen").inner_text() == cards[2]["path"].split("/")[-1]
    page.locator('#ln-classes button[data-label="stripes"]').click()
    page.wait_for_selector(f'.ln-card[data-path="{cards[2]["path"]}"][data-label="stripes"]')

    page.locator(".ln-card").nth(4).click()
    assert cards[4]["predicted"] in page.locator("#ln-accept").inner_text()
    page.locator("#ln-accept").click()
    page.wait_for_selector(f'.ln-card[data-path="{cards[4]["path"]}"][data-label="{cards[4]["predicted"]}"]')

    page.locator(".ln-card").nth(5).click()
    page.locator("#ln-drop").click()
    page.wait_for_selector(f'.ln-card[data-path="{cards[5]["path"]}"][data-status="excluded"]')
    state = {p: (a.action, a.label) for p, a in current_state(pool.images).items()}
    assert state == {cards[2]["path"]: ("label", "stripes"), cards[4]["path"]: ("label", cards[4]["predicted"]),
                     cards[5]["path"]: ("exclude", "")}

    page.locator("#ln-undo").click()  # says what it undid, on which image, and what the image is now
    page.wait_for_selector(f'.ln-card[data-path="{cards[5]["path"]}"][data-status=""]')
    name = cards[5]["path"].split("/")[-1]
    page.wait_for_function("n => document.getElementById('toast').textContent.includes(n)", arg=name)
    text = page.locator("#toast").inner_text()
    assert "exclude" in text and "unlabelled in the pool again" in text, text

    rows = len(read_history(pool.images))
    page.locator(".ln-card").nth(7).click()
    page.evaluate("document.activeElement.blur()")  # the focus leaves the chosen card: Enter is not "accept" there
    page.keyboard.press("Enter")
    page.locator("#batch-size").focus()
    page.keyboard.press("Enter")  # submits the form (a refit), labels nothing
    page.wait_for_selector("#refit-result[data-after]")
    assert len(read_history(pool.images)) == rows, "Enter outside the chosen card labelled nothing"
    assert cards[7]["path"] not in current_state(pool.images)


@pytest.mark.slow
@pytest.mark.browser
def test_phone_labels_by_touch(pool, browser, artifacts):  # noqa: F811
    ctx = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    pg = ctx.new_page()
    pg.goto(f"{pool.url}/ui/label")
    pg.wait_for_selector(".ln-card")
    cards = _cards(pg)
    pg.locator(".ln-card").nth(3).tap()
    pg.locator('#ln-classes button[data-label="circles"]').tap()
    pg.wait_for_selector(f'.ln-card[data-path="{cards[3]["path"]}"][data-label="circles"]')
    pg.locator("#ln-drop").tap()  # the selection moved on to the next open card
    pg.wait_for_selector(f'.ln-card[data-path="{cards[4]["path"]}"][data-status="excluded"]')
    box = pg.locator("#ln-actions").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1
    pg.screenshot(path=str(artifacts / "phone-label-next.png"))
    ctx.close()


@pytest.mark.slow
def test_thumbnails_do_not_rescan_the_dataset(pool, monkeypatch):  # noqa: F811
    import imgclf.ui.label_next as label_next

    scans = []
    real = label_next.scan_dataset
    monkeypatch.setattr(label_next, "scan_dataset", lambda *a, **k: scans.append(1) or real(*a, **k))
    with web.client(base_url=pool.url, timeout=60) as c:
        batch = c.get("/ui/api/label-next", params={"n": POOL}).json()["batch"]
        assert len(batch) == POOL and scans, "the batch lists the pool"
        scans.clear()
        for it in batch:
            r = c.get("/ui/api/label-next/thumb", params={"path": it["path"], "size": 128, "v": it["v"]})
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert scans == [], f"{len(scans)} scans of the dataset for {POOL} thumbnails"
        r = c.get("/ui/api/label-next/thumb", params={"path": "_unlabeled/none.jpg"})
        assert r.status_code == 404 and r.json()["reason"] == "not_in_pool"
