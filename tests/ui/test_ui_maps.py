"""Class activation maps in the UI: the API over results and dataset images, and the overlay toggle in Chromium."""
from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image
from ui_helpers import CLASSES, files_per_class

from imgclf.util.files import read_csv


def test_explain_api_maps_results_and_dataset_images(client, ui_run, dataset):
    rows = read_csv(ui_run["run"] / "predictions.csv")
    i = next(k for k, r in enumerate(rows) if r["label"] != r["predicted"])  # an error: true and predicted differ
    r = client.get("/ui/api/explain", params={"result": i, "size": 256})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert max(Image.open(io.BytesIO(r.content)).size) <= 256
    body = client.get("/ui/api/explain", params={"result": i, "which": "true", "format": "json"}).json()
    assert body["label"] == rows[i]["predicted"] and set(body["maps"]) == {rows[i]["predicted"], rows[i]["label"]}
    for m in body["maps"].values():
        assert np.mean(m["values"]) + m["bias"] == pytest.approx(m["decision"], abs=1e-4)
    rel = files_per_class(dataset)[CLASSES[0]][0]
    r = client.get("/ui/api/explain", params={"path": rel, "class": CLASSES[1], "format": "json"})
    assert r.status_code == 200 and CLASSES[1] in r.json()["maps"]


@pytest.mark.parametrize("params, status", [
    ({}, 400), ({"result": 0, "path": "x.jpg"}, 400), ({"result": 10_000}, 404), ({"result": 0, "size": 100}, 400),
    ({"result": 0, "class": "no_such_class"}, 400), ({"path": "../etc/passwd"}, 400), ({"result": -1}, 422),
    ({"result": 0, "format": "gif"}, 422),
])
def test_explain_api_refusals_are_json(client, params, status):
    r = client.get("/ui/api/explain", params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json") and r.json()["error"]


def test_which_true_needs_a_result(client, dataset):
    rel = files_per_class(dataset)[CLASSES[0]][0]
    r = client.get("/ui/api/explain", params={"path": rel, "which": "true"})
    assert r.status_code == 400 and "class=NAME" in r.json()["error"]


def _srcs(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "imgs => imgs.map(i => i.getAttribute('src'))")


_LOADED = "o => o && !o.classList.contains('cam-loading') && o.complete && o.naturalWidth > 0"


def _maps_loaded(page, want: dict) -> None:
    """Every card's frame holds a loaded map of its own image, its URL's parameters as in ``want``
    (``{i}``: the card's row, ``{pred}``: its predicted class)."""
    page.wait_for_function(
        f"([want]) => {{ const loaded = {_LOADED}; const cards = [...document.querySelectorAll('#results .result')];"
        " return cards.length > 0 && cards.every(c => { const o = c.querySelector('.thumbwrap[data-overlay=result] > img.cam-overlay');"
        " if (!loaded(o)) return false; const q = new URL(o.src).searchParams;"
        " const pred = c.querySelectorAll('.line .badge')[1].textContent;"
        " return Object.entries(want).every(([k, v]) => q.get(k) === v.replace('{i}', c.dataset.i).replace('{pred}', pred)); }); }",
        arg=[want], timeout=60_000)


def _no_maps(page, selector: str) -> None:
    page.wait_for_function("sel => document.querySelectorAll(sel + ' img.cam-overlay').length === 0", arg=selector)


@pytest.mark.slow
@pytest.mark.browser
def test_overlay_toggles_on_results_cards_viewer_and_try_page(page, server, ui_run, dataset, artifacts):
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result img.thumb")
    own = _srcs(page, ".result img.thumb")
    assert all("/thumb" in s for s in own)

    page.locator("#cam-on").check()
    _maps_loaded(page, {"result": "{i}", "which": "predicted", "size": "256"})
    page.screenshot(path=str(artifacts / "results-maps.png"))
    page.locator("#cam-which").select_option("true")
    _maps_loaded(page, {"result": "{i}", "which": "true", "size": "256"})
    assert _srcs(page, ".result img.thumb") == own, "the map lies over the card's own thumbnail, which stays"

    first = page.locator(".result").first
    i = first.get_attribute("data-i")
    first.locator("img.thumb").click()  # the viewer shows the large map of the same image
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function(f"() => ({_LOADED})(document.querySelector('#viewer-overlay > img.cam-overlay'))", timeout=60_000)
    big = parse_qs(urlsplit(page.locator("#viewer-overlay > img.cam-overlay").get_attribute("src")).query)
    assert big == {"result": [i], "which": ["true"], "size": ["1024"], "format": ["png"]}
    assert page.eval_on_selector("#viewer-overlay", "s => getComputedStyle(s).display !== 'none' && s.getBoundingClientRect().width > 0")
    assert "api/results/" in page.locator("#viewer-img").get_attribute("src")
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('viewer').open")

    first.focus()
    page.keyboard.press("w")  # the key switches the maps off again
    page.wait_for_function("() => !document.getElementById('cam-on').checked")
    _no_maps(page, "#results")
    _no_maps(page, "#viewer-overlay")
    assert _srcs(page, ".result img.thumb") == own
    assert page.locator(".result.picked").count() == 0, "w is not m: nothing was selected"

    page.keyboard.press("w")  # train images (scored out of fold) are mapped by their path in the dataset
    page.wait_for_function("() => document.getElementById('cam-on').checked")
    page.locator("#side-train").click()
    page.wait_for_function("() => document.querySelector('#results .result') && location.hash.includes('split=train')")
    page.locator("#cam-which").select_option("predicted")
    _maps_loaded(page, {"class": "{pred}", "size": "256"})
    train = page.eval_on_selector_all(".result img.cam-overlay", "os => os.map(o => new URL(o.src).searchParams.get('path'))")
    assert all(train) and set(train) <= {p for ps in files_per_class(dataset).values() for p in ps}
    page.locator("#cam-on").uncheck()
    _no_maps(page, "#results")

    images = [dataset / "stripes" / "stripes_003.jpg", dataset / files_per_class(dataset)[CLASSES[0]][0]]
    page.goto(f"{server.url}/ui/try")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    page.locator("#file").set_input_files([str(p) for p in images])
    page.wait_for_function("() => document.querySelectorAll('.outcome[data-label]').length === 2")
    uploaded = _srcs(page, ".outcome img.preview")
    page.locator("#cam-on").check()
    page.wait_for_function(
        f"() => {{ const loaded = {_LOADED}; const all = [...document.querySelectorAll('.outcome')]; return all.length === 2 && all.every(n =>"
        " loaded(n.querySelector('.thumbwrap[data-overlay=try] > img.cam-overlay')) && n.querySelector('.cam-key')); }", timeout=60_000)
    for node in page.locator(".outcome").all():  # each map is of the class its outcome names, with its colour key
        label = node.get_attribute("data-label")
        named = label if label in CLASSES else node.locator(".fact[data-key=nearest_label] b").inner_text()
        assert f"finds {named}:" in node.locator(".cam-key").inner_text()
        assert node.locator("img.cam-overlay").get_attribute("src").startswith("blob:")
    assert _srcs(page, ".outcome img.preview") == uploaded
    page.screenshot(path=str(artifacts / "try-map.png"))
    page.evaluate("document.activeElement.blur()")  # keys typed into the checkbox are not shortcuts
    page.keyboard.press("w")
    page.wait_for_function("() => !document.getElementById('cam-on').checked")
    _no_maps(page, "#outcomes")
    assert page.locator(".cam-key").count() == 0 and _srcs(page, ".outcome img.preview") == uploaded


def test_report_shows_the_maps_of_the_misclassified_test_images(ui_run):
    run = ui_run["run"]
    rows = read_csv(run / "predictions.csv")
    errors = [i for i, r in enumerate(rows) if r["label"] != r["predicted"]]
    assert errors, "the mislabelled images make errors on the test split"
    assert sorted(p.name for p in (run / "class_maps").iterdir()) == sorted(f"{i}.{w}.png" for i in errors for w in ("predicted", "true"))
    for i in errors:
        pred, true = (Image.open(run / "class_maps" / f"{i}.{w}.png") for w in ("predicted", "true"))
        assert pred.size == true.size and max(pred.size) <= 256
        assert np.abs(np.asarray(pred, float) - np.asarray(true, float)).mean() > 1, "two classes, two maps"
    report = (run / "report.html").read_text()
    section = report.split("Where the model looked", 1)[1]
    assert section.count('<figure class="cam">') == len(errors) and section.count("data:image/png;base64,") >= 2 * len(errors)
    assert all(rows[i]["path"].rsplit("/", 1)[-1] in section for i in errors)
