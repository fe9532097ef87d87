"""The Results page in a real browser against a live server: test and train predictions, filters, sorting,
the confusion matrix, per-class figures, corrections from a result card, a run moved to another machine."""
from __future__ import annotations

import math
import shutil

import pytest
from ui_helpers import CLASSES, copy_dataset, serve_ui, wait_images_loaded
import web

from imgclf.data.annotations import current_state
from imgclf.util.files import read_csv, read_json, write_csv

pytestmark = pytest.mark.browser


def _predictions(run):
    rows = read_csv(run / "predictions.csv")
    return rows, [r for r in rows if r["label"] != r["predicted"]]


def _errors(run):
    return [(i, r) for i, r in enumerate(read_csv(run / "predictions.csv")) if r["label"] != r["predicted"]]


def _loss(row) -> float:
    return -math.log(max(float(row[f"p_{row['label']}"]), 1e-12))


@pytest.mark.slow
def test_results_page_filters_to_the_errors(page, server, ui_run, artifacts):
    rows, errors = _predictions(ui_run["run"])
    assert errors, "the mislabelled images make errors on the test split"
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result")
    wait_images_loaded(page, ".result img")
    assert page.locator(".result").count() == len(rows)
    wrong_first = page.eval_on_selector_all(".result", "cs => cs.map(c => c.classList.contains('wrong'))")
    assert wrong_first == [True] * len(errors) + [False] * (len(rows) - len(errors)), "errors come first"
    bars = page.locator(".result").first.locator(".barrow")
    assert bars.count() == len(CLASSES)
    page.screenshot(path=str(artifacts / "results.png"))

    page.locator("#f-errors").check()
    page.wait_for_function("n => document.querySelectorAll('.result').length === n", arg=len(errors))
    assert page.locator(".result.wrong").count() == len(errors)
    shown = sorted(page.eval_on_selector_all(".result", "cs => cs.map(c => c.querySelector('.name').textContent)"))
    assert shown == sorted(r["path"].rsplit("/", 1)[-1] for r in errors)

    page.locator("#sort").select_option("conf-asc")
    scores = page.eval_on_selector_all(".result", "cs => cs.map(c => +c.dataset.i)")
    by_index = {i: float(r["score"]) for i, r in enumerate(rows)}
    assert [by_index[i] for i in scores] == sorted(by_index[i] for i in scores)


@pytest.mark.slow
def test_confusion_matrix_cell_filters_the_results(page, server, ui_run):
    rows, errors = _predictions(ui_run["run"])
    metrics = read_json(ui_run["run"] / "metrics.json")
    labels, cm = metrics["labels"], metrics["confusion_matrix"]
    t, p = next((i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j and cm[i][j])
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result")
    cell = page.locator(f'.cell[data-truth="{labels[t]}"][data-pred="{labels[p]}"]')
    assert cell.inner_text() == str(cm[t][p])
    cell.click()
    page.wait_for_function("n => document.querySelectorAll('.result').length === n", arg=cm[t][p])
    assert page.locator(f'.cell[data-truth="{labels[t]}"][data-pred="{labels[p]}"]').get_attribute("aria-pressed") == "true"
    lines = page.eval_on_selector_all(".result", "cs => cs.map(c => c.getAttribute('aria-label'))")
    assert all(f"true {labels[t]}, predicted {labels[p]}" in s for s in lines)
    assert page.locator("#f-true").input_value() == labels[t] and page.locator("#f-pred").input_value() == labels[p]

    page.locator(f'.cell[data-truth="{labels[t]}"][data-pred="{labels[p]}"]').click()  # again: back to everything
    page.wait_for_function("n => document.querySelectorAll('.result').length === n", arg=len(rows))


@pytest.mark.slow
def test_one_click_on_a_result_relabels_the_image_in_the_dataset(page, server, ui_run, dataset, artifacts):
    _, errors = _predictions(ui_run["run"])
    page.goto(f"{server.url}/ui/results#errors=1")
    page.wait_for_selector(".result.wrong")
    first = page.locator(".result").first
    index = int(first.get_attribute("data-i"))
    row = read_csv(ui_run["run"] / "predictions.csv")[index]
    first.get_by_role("button", name=f"Relabel as {row['predicted']}").click()
    page.wait_for_selector(f'.result[data-i="{index}"] .state')
    state = current_state(dataset)
    assert {p: (a.action, a.label) for p, a in state.items()} == {row["rel"]: ("relabel", row["predicted"])}
    assert row["predicted"] in page.locator(f'.result[data-i="{index}"] .state').inner_text()
    page.screenshot(path=str(artifacts / "results-relabelled.png"))


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
        r = web.get(href)
        assert r.status_code == 200 and r.headers["content-type"].split(";")[0] in ("text/html", "image/png")
    assert "<th>precision</th><th>recall</th><th>F1</th><th>support</th>" in web.get(f"{server.url}/ui/api/run/report").text
    assert web.get(f"{server.url}/ui/api/run/config").status_code == 404


@pytest.mark.slow
def test_results_find_a_copied_dataset_by_relative_path_and_a_renamed_image_by_content(browser, ui_run, predictor, tmp_path):
    copy = copy_dataset(ui_run["images"], tmp_path / "copy")
    moved_run = tmp_path / "run"  # a shared run: its absolute paths lead nowhere on this machine
    shutil.copytree(ui_run["run"], moved_run)
    rows = read_csv(moved_run / "predictions.csv")
    renamed = rows[0]["rel"]
    (copy / renamed).rename(copy / renamed.replace(".jpg", "_renamed.jpg"))
    write_csv(moved_run / "predictions.csv", list(rows[0]),
              ([r["path"].replace(str(ui_run["images"]), "/nowhere/images") if i else r["path"]] + list(r.values())[1:]
               for i, r in enumerate(rows)))
    with serve_ui(predictor, copy, moved_run, tmp_path / "thumbs") as srv:
        items = web.get(f"{srv.url}/ui/api/results", timeout=30).json()["items"]
        assert [it["dataset_path"] for it in items] == [renamed.replace(".jpg", "_renamed.jpg")] + [r["rel"] for r in rows[1:]]
        for it in items[:3]:
            assert web.get(f"{srv.url}/ui/api/results/{it['i']}/thumb").status_code == 200, "a moved run shows the dataset's image"
        pg = browser.new_page()
        pg.goto(f"{srv.url}/ui/results#errors=1")
        pg.wait_for_selector(".result .actions")
        assert pg.locator(".result .actions").count() == pg.locator(".result").count()
        assert "not found" not in pg.locator("#results").inner_text()
        i, row = _errors(ui_run["run"])[0]
        pg.locator(f'.result[data-i="{i}"]').get_by_role("button", name=f"Relabel as {row['predicted']}").click()
        pg.wait_for_selector(f'.result[data-i="{i}"] .state')
        assert {p: a.label for p, a in current_state(copy).items()} == {row["rel"]: row["predicted"]}
        assert current_state(ui_run["images"]) == {}, "the copy is corrected, not the original"
        pg.close()


@pytest.mark.slow
def test_a_button_far_down_keeps_the_scroll_and_the_focus_on_its_card(page, server, ui_run, dataset):
    page.set_viewport_size({"width": 1000, "height": 500})
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result")
    last = page.locator(".result").last
    i = int(last.get_attribute("data-i"))
    button = last.get_by_role("button", name="Exclude")
    button.scroll_into_view_if_needed()
    before = page.evaluate("scrollY")
    assert before > 500
    button.click()
    page.wait_for_selector(f'.result[data-i="{i}"] .state')
    assert abs(page.evaluate("scrollY") - before) < 100, "the page stays where it was (it used to jump to the top)"
    assert page.evaluate("document.activeElement.closest('.result').dataset.i") == str(i)
    assert len(current_state(dataset)) == 1


@pytest.mark.slow
def test_result_keys_act_on_the_chosen_card_only(page, server, ui_run, dataset):
    rows = read_csv(ui_run["run"] / "predictions.csv")
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result")
    assert page.locator('.result[aria-current="true"]').count() == 0, "nothing is chosen at load"
    page.keyboard.press("x")
    page.wait_for_function("document.getElementById('toast').textContent.includes('Choose an image first')")
    assert current_state(dataset) == {}

    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.index") == "0", "the first ↓ goes to card 1"
    third = page.locator(".result").nth(2)
    third.get_by_role("button", name="Exclude").focus()  # as Tab would
    assert third.get_attribute("aria-current") == "true"
    page.keyboard.press("x")
    rel = rows[int(third.get_attribute("data-i"))]["rel"]
    page.wait_for_function("() => document.querySelectorAll('.result .state').length === 1")
    assert {p: a.action for p, a in current_state(dataset).items()} == {rel: "exclude"}


@pytest.mark.slow
def test_back_to_results_and_hash_edits_show_the_current_state(page, server, ui_run, dataset):
    i, row = _errors(ui_run["run"])[0]
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result")
    assert page.locator(f'.result[data-i="{i}"] .state').count() == 0
    page.locator('nav a[href="dataset"]').click()
    page.wait_for_selector(".tile")
    page.locator(f'.tile[data-path="{row["rel"]}"]').click()
    page.keyboard.press("x")
    page.wait_for_selector(f'.tile[data-path="{row["rel"]}"][data-status="excluded"]')
    page.go_back()
    page.wait_for_selector(f'.result[data-i="{i}"] .state')
    assert "excluded" in page.locator(f'.result[data-i="{i}"] .state').inner_text()

    page.evaluate("location.hash = '#errors=1'")
    page.wait_for_function("n => document.querySelectorAll('.result').length === n", arg=len(_errors(ui_run["run"])))
    assert page.locator("#f-errors").is_checked()
    page.locator(".skip").focus()
    page.keyboard.press("Enter")  # the skip link's #results is no page state
    page.wait_for_function("location.hash === '#results'")
    assert page.locator("#f-errors").is_checked()
    assert page.locator(".result").count() == len(_errors(ui_run["run"]))
