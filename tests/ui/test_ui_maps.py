"""Class activation maps in the UI: the API over results and dataset images, and the overlay toggle in Chromium."""
from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image
from ui_helpers import CLASSES, files_per_class

from imgclf.fileio import read_csv

@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
        internal = [ln for ln in c.get("/metrics").text.splitlines() if ln.startswith("imgclf_internal_errors_total")]
        assert internal == ["imgclf_internal_errors_total 0.0"], "no request may end in a 500"


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


def _maps_loaded(page, selector: str, which: str) -> None:
    page.wait_for_function(
        "([sel, which]) => { const imgs = [...document.querySelectorAll(sel)]; return imgs.length > 0 && imgs.every(i =>"
        " i.dataset.cam === which && i.src.includes('api/explain') && i.src.includes('which=' + which)"
        " && !i.classList.contains('cam-loading') && i.complete && i.naturalWidth > 0); }", arg=[selector, which], timeout=60_000)


@pytest.mark.browser
def test_overlay_toggles_on_results_cards_viewer_and_try_page(page, server, ui_run, dataset, artifacts):
    page.goto(f"{server.url}/ui/results")
    page.wait_for_selector(".result img.thumb")
    own = _srcs(page, ".result img.thumb")
    assert all("/thumb" in s for s in own)

    page.locator("#cam-on").check()
    _maps_loaded(page, ".result img.thumb", "predicted")
    page.screenshot(path=str(artifacts / "results-maps.png"))
    page.locator("#cam-which").select_option("true")
    _maps_loaded(page, ".result img.thumb", "true")

    page.locator(".result img.thumb").first.click()  # the viewer shows the large map of the same image
    page.wait_for_selector("#viewer[open]")
    _maps_loaded(page, "#viewer-img", "true")
    assert "size=1024" in page.locator("#viewer-img").get_attribute("src")
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('viewer').open")

    page.locator(".result").first.focus()
    page.keyboard.press("m")  # the key switches the maps off again
    page.wait_for_function("() => !document.getElementById('cam-on').checked")
    assert _srcs(page, ".result img.thumb") == own

    image = dataset / "stripes" / "stripes_003.jpg"
    page.goto(f"{server.url}/ui/try")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    page.locator("#file").set_input_files(str(image))
    page.wait_for_selector("#outcome[data-label]")
    uploaded = page.locator("#preview").get_attribute("src")
    page.locator("#cam-on").check()
    page.wait_for_function("() => { const i = document.getElementById('preview'); return i.dataset.cam === 'predicted'"
                           " && i.complete && i.naturalWidth > 0; }", timeout=60_000)
    assert page.locator("#preview").get_attribute("src") != uploaded
    page.screenshot(path=str(artifacts / "try-map.png"))
    page.locator("#cam-on").uncheck()
    page.wait_for_function("src => document.getElementById('preview').getAttribute('src') === src", arg=uploaded)


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
