"""The UI's Quick update: its API (the same draft as Label next's Refit), the Results page on a draft, and the bar
in the frame of every page with the mouse, by touch at 390x844 and with the keyboard."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ui_helpers import CLASSES, no_500_client, serve_ui

from imgclf.data.annotations import record
from imgclf.data.split import load_split
from imgclf.util.files import read_json

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def quick(ui_run, predictor, tmp_path_factory):
    """The UI over a fresh copy of the UI run and its dataset (drafts are written beside the copy; a test may
    switch the UI to one)."""
    base = tmp_path_factory.mktemp("quick_ui")
    images = Path(shutil.copytree(ui_run["images"], base / "images", ignore=shutil.ignore_patterns("annotations.csv")))
    run = Path(shutil.copytree(ui_run["run"], base / "runs" / "run"))
    with serve_ui(predictor, images, run, base / "thumbs") as srv:
        srv.images, srv.run = images, run
        yield srv


def _class_rels(run: Path, label: str) -> list[str]:
    return sorted(r.rel for r in load_split(str(run / "split.csv")) if r.label == label)


@pytest.mark.slow
def test_quick_update_and_label_next_refit_make_the_same_draft_of_the_current_labels(quick):
    from imgclf.ui.results import DRAFT, RunResults
    from imgclf.util.errors import NotFound

    with no_500_client(quick.url) as c:
        status = c.get("/ui/api/quick-update").json()
        assert status == {"run": str(quick.run), "name": "run", "draft": False, "cv_accuracy": None,
                          "cv_class_avg_accuracy": status["cv_class_avg_accuracy"],
                          "changes": {"relabelled": 0, "added": 0, "removed": 0, "total": 0}}
        stripes = _class_rels(quick.run, "stripes")
        c.post("/ui/api/annotate/many", json={"paths": stripes, "action": "relabel", "label": "squares"}).raise_for_status()
        assert c.get("/ui/api/quick-update").json()["changes"] == {"relabelled": len(stripes), "added": 0, "removed": 0,
                                                                   "total": len(stripes)}

        draft = c.post("/ui/api/quick-update").json()
        refit = c.post("/ui/api/label-next/refit", json={"n": 5}).json()["refit"]
        for d in (draft, refit):
            assert d["labels"] == ["circles", "squares"] and d["parent"]["name"] == "run" and "accuracy" not in d
            assert {r.rel: r.label for r in load_split(str(Path(d["run"]) / "split.csv")) if r.rel in stripes} == \
                dict.fromkeys(stripes, "squares")
        assert {k: refit[k] for k in ("cv_accuracy", "cv_class_avg_accuracy", "n_train", "changes")} == \
            {k: draft[k] for k in ("cv_accuracy", "cv_class_avg_accuracy", "n_train", "changes")}, "one code path"
        assert refit["run"] != draft["run"] and Path(draft["run"]).parent == quick.run.parent

        record(quick.images, [(rel, "", "relabel", "circles") for rel in _class_rels(quick.run, "squares") + stripes])
        r = c.post("/ui/api/quick-update")
        assert r.status_code == 400 and "a classifier needs 2" in r.json()["error"] and r.json()["reason"]

    results = RunResults(draft["run"])
    with pytest.raises(NotFound, match="Test results exist only for full iterations") as e:
        results.payload("test")
    assert e.value.reason == DRAFT
    train = results.payload("train")
    assert len(train["items"]) == draft["n_train"] and train["labels"] == ["circles", "squares"]
    assert train["metrics"]["draft"] is True and train["metrics"]["cv_accuracy"] == draft["cv_accuracy"]
    assert "accuracy" not in train["metrics"] and "n_test" not in train["metrics"]


def _wait_result(page) -> dict:
    page.wait_for_selector("#quick-update[data-draft]")
    run = Path(page.locator("#quick-update").get_attribute("data-draft"))
    metrics = read_json(run / "metrics.json")
    text = page.locator("#quick-text").inner_text()
    assert f"Draft {run.name}: cross-validated accuracy" in text and "Test results exist only for full iterations" in text
    assert "(was " in text
    return {"run": run, "metrics": metrics}


def _switch_request(page, action) -> dict:
    """The request "Switch to it" sends (the route that switches the chosen iteration answers it)."""
    with page.expect_request("**/ui/api/iterations/select") as req:
        action()
    return req.value.post_data_json


@pytest.mark.slow
@pytest.mark.browser
def test_the_bar_appears_after_a_label_change_on_any_page_and_makes_a_draft_with_the_mouse(quick, page, artifacts):
    page.goto(f"{quick.url}/ui/results")
    page.wait_for_selector("#results li")
    assert page.locator("#quick-update").is_hidden(), "no label changed yet"
    rel = _class_rels(quick.run, "circles")[0]
    page.evaluate("rel => UI.api('api/annotate', { json: { path: rel, action: 'relabel', label: 'stripes' } })", rel)
    page.wait_for_selector("#quick-update:not([hidden])")  # the page's own change, seen without a reload
    assert "1 label changed since iteration run (1 relabelled)" in page.locator("#quick-text").inner_text()
    page.locator("#quick-run").click()
    out = _wait_result(page)
    assert out["metrics"]["changes"]["relabelled"] == 1 and out["metrics"]["labels"] == list(CLASSES)
    assert page.evaluate("document.activeElement.id") == "quick-switch"
    page.screenshot(path=str(artifacts / "quick-update.png"))
    assert _switch_request(page, lambda: page.locator("#quick-switch").click()) == {"run": str(out["run"])}
    page.wait_for_function("n => document.getElementById('live-chosen')?.textContent === n", arg=out["run"].name)
    page.wait_for_selector("#results li")
    assert page.locator("#quick-update").is_hidden(), "the draft holds the current labels: nothing to update"


@pytest.mark.slow
@pytest.mark.browser
def test_the_bar_works_by_touch_on_a_phone(quick, browser, artifacts):
    record(quick.images, [(_class_rels(quick.run, "squares")[0], "", "exclude", "")])
    ctx = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{quick.url}/ui/dataset")
        page.wait_for_selector("#quick-update:not([hidden])")
        box = page.locator("#quick-run").bounding_box()
        assert box["y"] + box["height"] <= PHONE["height"] and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert box["height"] >= 44, "a touch target"
        page.locator("#quick-run").tap()
        out = _wait_result(page)
        assert out["metrics"]["changes"]["removed"] == 1
        page.screenshot(path=str(artifacts / "quick-update-phone.png"))
        assert _switch_request(page, lambda: page.locator("#quick-switch").tap()) == {"run": str(out["run"])}
    finally:
        ctx.close()
    assert not errors, errors


@pytest.mark.slow
@pytest.mark.browser
def test_the_bar_works_with_the_keyboard(quick, page):
    record(quick.images, [(_class_rels(quick.run, "stripes")[0], "", "relabel", "circles")])
    page.goto(f"{quick.url}/ui/try")
    page.wait_for_selector("#quick-update:not([hidden])")
    for _ in range(15):  # the bar comes right after the top bar in the tab order
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "quick-run":
            break
    assert page.evaluate("document.activeElement.id") == "quick-run"
    page.keyboard.press("Enter")
    out = _wait_result(page)
    assert page.evaluate("document.activeElement.id") == "quick-switch"
    assert _switch_request(page, lambda: page.keyboard.press("Enter")) == {"run": str(out["run"])}
