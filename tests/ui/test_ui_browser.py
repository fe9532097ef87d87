"""The three pages in a real browser (Debian's Chromium driven by Playwright) against a live server."""
from __future__ import annotations

import pytest
from ui_helpers import CLASSES, files_per_class, make_dataset, tiny_config

from imgclf.data.annotations import current_state, read_history
from imgclf.util.files import read_csv, read_json

pytestmark = pytest.mark.browser


def _open_dataset(page, server, hash_: str = "") -> None:
    page.goto(f"{server.url}/ui/dataset{hash_}")
    page.wait_for_selector(".tile")


def _tile(page, rel: str):
    return page.locator(f'.tile[data-path="{rel}"]')


def _wait_images_loaded(page, selector: str) -> None:
    """Every matching image in view has loaded (lazy ones further down load when scrolled to)."""
    page.wait_for_function(
        "sel => { const imgs = [...document.querySelectorAll(sel)].filter(i => i.getBoundingClientRect().top < innerHeight);"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }", arg=selector)


def test_dataset_page_shows_every_image_under_its_class(page, server, dataset, artifacts):
    files = files_per_class(dataset)
    _open_dataset(page, server)
    _wait_images_loaded(page, ".tile img")
    for cls, rels in files.items():
        shown = page.eval_on_selector_all(".tile", "(ts, c) => ts.filter(t => t.dataset.label === c).map(t => t.dataset.path)", cls)
        assert sorted(shown) == rels
        counter = page.locator(f'.filter[data-label="{cls}"][data-status=""] .count')
        assert counter.inner_text() == str(len(rels))
    assert [t.split()[0] for t in page.locator(".group").all_inner_texts()] == list(CLASSES)
    page.screenshot(path=str(artifacts / "dataset.png"))

    page.locator(f'.filter[data-label="{CLASSES[1]}"][data-status=""]').click()
    page.wait_for_function("n => document.querySelectorAll('.tile').length === n", arg=len(files[CLASSES[1]]))
    assert "label=squares" in page.url

    page.keyboard.press("Enter")  # enlarge the selected image
    page.wait_for_selector("dialog#viewer[open]")
    _wait_images_loaded(page, "#viewer-img")
    assert page.locator("#viewer-title").inner_text() == files[CLASSES[1]][0]
    page.screenshot(path=str(artifacts / "dataset-enlarged.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#viewer:not([open])", state="attached")


def test_keyboard_relabel_persists_across_reload_and_is_used_by_prepare(page, server, dataset, ui_run, tmp_path, artifacts):
    from imgclf.pipeline.steps import prepare

    first, second, third = files_per_class(dataset)[CLASSES[0]][:3]
    _open_dataset(page, server)
    _tile(page, first).click()
    page.keyboard.press("2")  # class 2 = squares; the selection moves on to the next image
    page.wait_for_selector(f'.tile[data-path="{first}"][data-status="relabeled"]')
    assert page.evaluate("document.activeElement.dataset.path") == second
    page.keyboard.press("x")
    page.wait_for_selector(f'.tile[data-path="{second}"][data-status="excluded"]')
    page.wait_for_function("p => document.activeElement.dataset.path === p", arg=third)

    state = current_state(dataset)
    assert {p: (a.action, a.label) for p, a in state.items()} == {first: ("relabel", "squares"), second: ("exclude", "")}
    assert page.locator('.filter[data-status="excluded"] .count').inner_text() == "1"

    page.reload()
    page.wait_for_selector(".tile")
    assert _tile(page, first).get_attribute("data-label") == "squares"
    assert _tile(page, first).get_attribute("data-status") == "relabeled"
    assert _tile(page, second).get_attribute("data-status") == "excluded"
    assert page.evaluate("document.activeElement.dataset.path") == third, "the selection survives the reload"
    page.screenshot(path=str(artifacts / "dataset-corrected.png"))

    cfg = tiny_config(ui_run["data"], dataset)
    summary = prepare(cfg, tmp_path / "run")
    rows = {r["path"]: r["label"] for r in read_csv(tmp_path / "run" / "split.csv")}
    assert rows[str(dataset / first)] == "squares"
    assert str(dataset / second) not in rows
    assert summary["excluded_by_annotations"] == 1
    assert summary["classes"]["squares"] == len(files_per_class(dataset)["squares"]) + 1


def test_undo_restores_the_previous_label_and_keeps_the_history(page, server, dataset):
    rel = files_per_class(dataset)[CLASSES[2]][0]
    _open_dataset(page, server)
    _tile(page, rel).click()
    page.keyboard.press("1")
    page.wait_for_selector(f'.tile[data-path="{rel}"][data-label="circles"]')
    page.keyboard.press("a")  # the selection moved on: mark the next one ambiguous
    page.wait_for_selector('.tile[data-status="ambiguous"]')
    page.keyboard.press("u")
    page.wait_for_selector('.tile[data-status="ambiguous"]', state="detached")
    page.keyboard.press("u")
    page.wait_for_selector(f'.tile[data-path="{rel}"][data-label="stripes"][data-status="unchanged"]')
    assert page.evaluate("document.activeElement.dataset.path") == rel, "undo selects the image it changed back"
    assert current_state(dataset) == {}
    assert [a.action for a in read_history(dataset)] == ["relabel", "ambiguous", "restore", "restore"]

    page.locator("#undo").click()
    page.wait_for_function("document.getElementById('toast').textContent.includes('Nothing to undo')")
    assert len(read_history(dataset)) == 4


def _predictions(run):
    rows = read_csv(run / "predictions.csv")
    return rows, [r for r in rows if r["label"] != r["predicted"]]


def test_results_page_filters_to_the_errors(page, server, ui_run, artifacts):
    rows, errors = _predictions(ui_run["run"])
    assert errors, "the mislabelled images make errors on the test split"
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result")
    _wait_images_loaded(page, ".result img")
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


def test_try_page_classifies_an_uploaded_image(page, server, predictor, dataset, artifacts):
    image = dataset / "stripes" / "stripes_003.jpg"
    expected = predictor.predict_paths([image])[0]
    page.goto(f"{server.url}/ui/try")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    page.locator("#file").set_input_files(str(image))
    page.wait_for_selector(".outcome[data-label]")
    outcome = page.locator(".outcome").first
    assert outcome.locator(".pred-label").inner_text() == expected["label"]
    assert outcome.locator(".pred-score").inner_text() == f"score {100 * expected['score']:.1f}%"
    assert outcome.locator(".barrow").count() == len(CLASSES)
    assert outcome.locator(".barrow.pred").get_attribute("data-label") == expected["label"]
    _wait_images_loaded(page, ".outcome .preview")
    page.screenshot(path=str(artifacts / "try.png"))

    bad = dataset.parent / "notes.jpg"
    bad.write_bytes(b"this is not an image")
    page.locator("#file").set_input_files(str(bad))
    page.wait_for_selector('.outcome[data-state="error"]')
    assert "not a usable image" in page.locator('.outcome[data-state="error"]').inner_text()
    assert page.locator(".outcome[data-label]").count() == 1, "the good image's answer stays"


def test_pages_behind_a_token_open_once_with_it_and_then_use_the_cookie(browser, ui_run, dataset):
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    app = create_ui_app(None, ServeConfig(), token="s3cret", images_dir=str(dataset), run_dir=None,
                        thumbs_dir=str(ui_run["base"] / "thumbs"))
    with ServerThread(app) as srv:
        ctx = browser.new_context()
        pg = ctx.new_page()
        assert pg.goto(f"{srv.url}/ui/dataset").status == 401
        pg.goto(f"{srv.url}/ui/dataset?token=s3cret")
        assert pg.url == f"{srv.url}/ui/dataset", "the token leaves the address bar"
        pg.wait_for_selector(".tile")
        _wait_images_loaded(pg, ".tile img")
        pg.locator(".tile").first.click()
        pg.keyboard.press("x")
        pg.wait_for_selector('.tile[data-status="excluded"]')
        assert len(current_state(dataset)) == 1
        assert pg.goto(f"{srv.url}/ui/results").status == 200
        pg.wait_for_selector(".empty")
        assert "no run is loaded" in pg.locator(".empty").inner_text()
        ctx.close()


def test_thousands_of_images_are_paged_and_the_keys_cross_pages(browser, tmp_path):
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    images = make_dataset(tmp_path / "many", n_per_class=77, size=32)
    app = create_ui_app(None, ServeConfig(), images_dir=str(images), run_dir=None, thumbs_dir=str(tmp_path / "thumbs"))
    with ServerThread(app) as srv:
        pg = browser.new_page(viewport={"width": 1366, "height": 860})
        pg.goto(f"{srv.url}/ui/dataset")
        pg.wait_for_selector(".tile")
        selected = "document.activeElement.dataset.path"
        assert pg.locator(".tile").count() == 100
        assert pg.locator("#page-info").inner_text() == "Page 1 of 3 · images 1–100 of 231"
        pg.locator(".tile").first.click()
        per_row = pg.evaluate("(() => { const t = [...document.querySelectorAll('.tile')];"
                              " return t.filter(x => x.offsetTop === t[0].offsetTop).length; })()")
        pg.keyboard.press("ArrowDown")
        assert pg.evaluate(selected) == f"circles/circles_{per_row:03d}.jpg"
        pg.keyboard.press("End")
        pg.keyboard.press("ArrowRight")
        pg.wait_for_function("document.getElementById('page-info').textContent.startsWith('Page 2 of 3')")
        pg.wait_for_function(f"{selected} === 'squares/squares_023.jpg'")
        pg.keyboard.press("PageDown")
        pg.wait_for_function("document.querySelectorAll('.tile').length === 31")
        pg.keyboard.press("Home")
        pg.keyboard.press("ArrowLeft")
        pg.wait_for_function(f"{selected} === 'stripes/stripes_045.jpg'")
        assert "page=1" in pg.url
        pg.close()
