"""The web UI's round-two bugs, each in a real browser (Debian's Chromium) against a live server."""
from __future__ import annotations

import shutil

import httpx
import numpy as np
import pytest
from PIL import Image
from ui_helpers import LONG_CLASS, copy_dataset, files_per_class, make_many_classes_dataset, serve_ui

from imgclf.data.annotations import current_state, read_history
from imgclf.util.files import read_csv, write_csv

pytestmark = pytest.mark.browser


def _errors(run):
    return [(i, r) for i, r in enumerate(read_csv(run / "predictions.csv")) if r["label"] != r["predicted"]]


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
        items = httpx.get(f"{srv.url}/ui/api/results", timeout=30).json()["items"]
        assert [it["dataset_path"] for it in items] == [renamed.replace(".jpg", "_renamed.jpg")] + [r["rel"] for r in rows[1:]]
        for it in items[:3]:
            assert httpx.get(f"{srv.url}/ui/api/results/{it['i']}/thumb").status_code == 200, "a moved run shows the dataset's image"
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


def test_undo_in_the_toast_is_reachable_while_the_viewer_is_open(page, server, dataset):
    rel = files_per_class(dataset)["circles"][0]
    page.goto(f"{server.url}/ui/dataset")
    page.wait_for_selector(".tile")
    page.locator(f'.tile[data-path="{rel}"]').click()
    page.keyboard.press("Enter")
    page.wait_for_selector("dialog#viewer[open]")
    page.keyboard.press("x")
    undo = page.locator("#toast button", has_text="Undo")
    undo.wait_for()
    box = undo.bounding_box()
    hit = page.evaluate("([x, y]) => document.elementFromPoint(x, y).textContent", [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    assert hit == "Undo", "nothing covers the button"
    undo.click()
    page.wait_for_function("document.getElementById('toast').textContent.includes('Undone')")
    assert current_state(dataset) == {}
    assert page.locator("dialog#viewer[open]").count() == 1


def test_try_page_without_a_model_says_so_and_sends_nothing(browser, ui_run, tmp_path):
    with serve_ui(None, ui_run["images"], None, tmp_path / "thumbs") as srv:
        pg = browser.new_page()
        sent = []
        pg.on("request", lambda r: sent.append(r.url) if "api/predict" in r.url else None)
        pg.goto(f"{srv.url}/ui/try")
        pg.wait_for_selector("#no-model:not([hidden])")
        assert "No model loaded" in pg.locator("#no-model").inner_text()
        assert pg.locator("#file").is_disabled()
        assert pg.locator("#pick").get_attribute("aria-disabled") == "true"
        pg.evaluate("""() => { const dt = new DataTransfer(); dt.items.add(new File(['x'], 'a.jpg', { type: 'image/jpeg' }));
                              document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true })); }""")
        pg.wait_for_function("document.getElementById('error').textContent.includes('No model loaded')")
        assert sent == [] and pg.locator(".outcome").count() == 0
        pg.close()


def test_many_classes_get_distinct_colours_and_a_long_name_keeps_its_count_in_view(browser, tmp_path):
    images = make_many_classes_dataset(tmp_path / "many")
    with serve_ui(None, images, None, tmp_path / "thumbs") as srv:
        pg = browser.new_page(viewport={"width": 1366, "height": 860})
        pg.goto(f"{srv.url}/ui/dataset")
        pg.wait_for_selector(".tile")
        colours = pg.eval_on_selector_all(".filter .swatch", "s => s.map(x => getComputedStyle(x).backgroundColor)")
        assert len(colours) == 12 and len(set(colours)) == 12
        for f in pg.locator(".filter").all():
            outer, count = f.bounding_box(), f.locator(".count").bounding_box()
            assert count["width"] > 0 and count["x"] + count["width"] <= outer["x"] + outer["width"] + 0.5
        assert pg.locator(f'.filter[data-label="{LONG_CLASS}"] .count').inner_text() == "2"
        pg.close()


def test_error_texts_say_what_happened_and_what_to_change(browser, predictor, dataset, ui_run, tmp_path):
    big = tmp_path / "big.png"  # noise: about 0.5 MB, over a 0.2 MB limit
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)).save(big)
    huge = tmp_path / "huge.png"  # a small file declaring 50 M pixels
    Image.new("1", (10_000, 5_000)).save(huge)
    bad = dataset / "circles" / "zz_broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    try:
        with serve_ui(predictor, dataset, ui_run["run"], tmp_path / "thumbs", max_body_mb=0.2) as srv:
            r = httpx.post(f"{srv.url}/ui/api/predict", content=big.read_bytes())
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
