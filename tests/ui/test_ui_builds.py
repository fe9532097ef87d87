"""The web UI's round-two features in a real browser: train scores, bulk corrections, per-class
figures, the phone layout and the multi-image try page."""
from __future__ import annotations

import math

import httpx
import pytest
from ui_helpers import CLASSES, files_per_class, make_many_classes_dataset, serve_ui

from imgclf.data.annotations import current_state, read_history
from imgclf.util.files import read_csv, read_json

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


def _loss(row) -> float:
    return -math.log(max(float(row[f"p_{row['label']}"]), 1e-12))


def test_train_images_are_scored_out_of_fold_and_sorted_by_loss_per_class(page, server, ui_run, artifacts):
    train = [r for r in read_csv(ui_run["run"] / "oof_predictions.csv") if r["split"] in ("train", "val")]
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result")
    page.locator("#side-train").click()
    page.wait_for_function("n => document.querySelectorAll('.result').length === n", arg=len(train))
    assert "split=train" in page.url and page.locator("#side-train").get_attribute("aria-pressed") == "true"
    page.locator("#sort").select_option("loss")
    order = [int(i) for i in page.eval_on_selector_all(".result", "cs => cs.map(c => c.dataset.i)")]
    losses = [_loss(train[i]) for i in order]
    assert losses == sorted(losses, reverse=True), "top losses first"
    shown = page.eval_on_selector_all(".result .loss", "ls => ls.map(l => l.textContent)")
    assert shown[0] == f" · loss {losses[0]:.2f}"
    page.screenshot(path=str(artifacts / "results-train.png"))

    page.locator("#f-true").select_option(CLASSES[1])
    order = [int(i) for i in page.eval_on_selector_all(".result", "cs => cs.map(c => c.dataset.i)")]
    assert sorted(order) == [i for i, r in enumerate(train) if r["label"] == CLASSES[1]]
    losses = [_loss(train[i]) for i in order]
    assert losses == sorted(losses, reverse=True), "a class's top losses"
    page.reload()  # the side, filter and sort survive a reload
    page.wait_for_function("n => document.querySelectorAll('.result').length === n", arg=len(order))
    assert page.locator("#sort").input_value() == "loss"


def test_shift_click_selects_a_range_and_one_key_corrects_it_with_one_undo(page, server, dataset, artifacts):
    files = files_per_class(dataset)
    page.goto(f"{server.url}/ui/dataset")
    page.wait_for_selector(".tile")
    page.locator(".tile").nth(0).click(modifiers=["Control"])
    page.locator(".tile").nth(3).click(modifiers=["Shift"])
    assert page.locator('.tile[data-picked="true"]').count() == 4
    page.screenshot(path=str(artifacts / "dataset-selection.png"))
    page.keyboard.press("x")
    page.wait_for_function("document.querySelectorAll('.tile[data-status=\"excluded\"]').length === 4")
    picked = files[CLASSES[0]][:4]
    assert {p: a.action for p, a in current_state(dataset).items()} == dict.fromkeys(picked, "exclude")
    assert len({a.batch for a in read_history(dataset)}) == 1
    assert page.locator('.tile[data-picked="true"]').count() == 0, "the selection is spent"
    page.keyboard.press("u")
    page.wait_for_function("document.querySelectorAll('.tile[data-status=\"excluded\"]').length === 0")
    assert current_state(dataset) == {} and len(read_history(dataset)) == 8

    page.locator(f'.filter[data-label="{CLASSES[1]}"][data-status=""]').click()
    page.wait_for_function("n => document.querySelectorAll('.tile').length === n", arg=len(files[CLASSES[1]]))
    page.locator("#pick-all").click()
    page.wait_for_function("n => document.getElementById('picked-count').textContent.startsWith(n + ' selected')",
                           arg=len(files[CLASSES[1]]))
    page.locator(f'#class-buttons [data-label="{CLASSES[0]}"]').click()
    page.wait_for_selector(".empty")  # none of them is in this class any more
    assert {a.label for a in current_state(dataset).values()} == {CLASSES[0]}
    assert len(current_state(dataset)) == len(files[CLASSES[1]])


def test_results_selection_is_corrected_in_one_step(page, server, ui_run, dataset):
    rows = read_csv(ui_run["run"] / "predictions.csv")
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result")
    page.locator(".result .pick").nth(0).check()
    page.locator(".result .pick").nth(2).click(modifiers=["Shift"])
    assert page.locator("#bulk-count").inner_text() == "3 selected"
    chosen = [rows[int(i)]["rel"] for i in page.eval_on_selector_all(".result.picked", "cs => cs.map(c => c.dataset.i)")]
    page.locator("#bulk-exclude").click()
    page.wait_for_function("document.querySelectorAll('.result .state').length === 3")
    assert sorted(current_state(dataset)) == sorted(chosen)
    page.locator("#toast button", has_text="Undo").click()
    page.wait_for_function("document.querySelectorAll('.result .state').length === 0")
    assert current_state(dataset) == {}


def test_per_class_figures_are_in_metrics_the_report_and_the_results_page(page, server, ui_run):
    m = read_json(ui_run["run"] / "metrics.json")
    for key in ("accuracy", "per_class_accuracy", "roc_auc", "confusion_matrix"):
        assert key in m, "the keys of before stay"
    assert m["per_class_recall"] == m["per_class_accuracy"]
    assert sum(m["per_class_support"].values()) == m["n_test"]
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result")
    assert page.locator("#per-class-panel").get_attribute("open") is not None, "open on a laptop"
    rows = page.eval_on_selector_all("#per-class tbody tr", "rs => rs.map(r => [r.dataset.label, ...[...r.cells].slice(1).map(c => c.textContent)])")
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    assert rows == [[c, fmt(m["per_class_precision"][c]), fmt(m["per_class_recall"][c]), fmt(m["per_class_f1"][c]),
                     str(m["per_class_support"][c]), fmt(m["roc_auc"][c])] for c in m["labels"]]
    links = page.eval_on_selector_all("#run-links a", "as => as.map(a => a.href)")
    assert any(h.endswith("api/run/report") for h in links) and any(h.endswith("api/run/roc") for h in links)
    for href in links:
        r = httpx.get(href)
        assert r.status_code == 200 and r.headers["content-type"].split(";")[0] in ("text/html", "image/png")
    assert "<th>precision</th><th>recall</th><th>F1</th><th>support</th>" in httpx.get(f"{server.url}/ui/api/run/report").text
    assert httpx.get(f"{server.url}/ui/api/run/config").status_code == 404


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

    images = make_many_classes_dataset(tmp_path / "many", n_classes=14)
    with serve_ui(None, images, None, tmp_path / "thumbs") as srv:
        ctx = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
        pg = ctx.new_page()
        pg.goto(f"{srv.url}/ui/dataset")
        pg.wait_for_selector(".tile")
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
        ctx.close()


def test_try_page_classifies_several_images_at_once(page, server, predictor, dataset, artifacts):
    files = [dataset / c / f"{c}_00{k}.jpg" for k, c in enumerate(CLASSES)]
    expected = [r["label"] for r in predictor.predict_paths(files)]
    page.goto(f"{server.url}/ui/try")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    page.locator("#file").set_input_files([str(f) for f in files])
    page.wait_for_function("document.getElementById('try-count').textContent === '3 of 3 images classified'")
    shown = page.eval_on_selector_all(".outcome", "os => os.map(o => [o.querySelector('.name').textContent, o.dataset.label])")
    page.screenshot(path=str(artifacts / "try-several.png"), full_page=True)
    assert sorted(map(tuple, shown)) == sorted(zip([f.name for f in files], expected))
    page.locator("#try-clear").click()
    assert page.locator(".outcome").count() == 0
