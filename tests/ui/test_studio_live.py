"""The Studio's live model: the chosen iteration answers Try and the maps, the published one the endpoints;
a publish or rollback swaps the service's model with no failed request; downloads are whole."""
from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import httpx
import pytest
from ui_helpers import make_dataset, no_500_client, tiny_config
import web

from imgclf.bundle.folder import load_bundle
from imgclf.inference.predict import Predictor
from imgclf.ui.catalog import Catalog


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """Two real iterations of one dataset in its runs folder: ``first``, then ``second`` trained after every
    ``stripes`` image was relabelled ``squares`` (so the two models have different classes)."""
    from imgclf.api import run

    base = tmp_path_factory.mktemp("studio")
    images = make_dataset(base / "shapes", n_per_class=10, seed=3)
    cfg = tiny_config(base / "data", images)
    runs = base / "data" / "runs" / "shapes"
    run(cfg, runs / "20261205-100000", progress=False)
    cat = Catalog(images)
    cat.annotate_many(cat.paths(label="stripes"), "relabel", "squares")
    run(cfg, runs / "20261205-110000", progress=False)
    first = runs / "20261205-100000"
    return {"images": images, "runs": runs, "cfg": cfg, "first": first, "second": runs / "20261205-110000", "base": base,
            "predictor": Predictor(first / "model")}  # the first iteration's model, loaded once: nothing changes it


@pytest.fixture
def served(studio):
    """The UI opened on the first iteration (the endpoint answers with it, nothing published yet)."""
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    (studio["runs"] / "published.json").unlink(missing_ok=True)
    app = create_ui_app(studio["predictor"], ServeConfig(), images_dir=str(studio["images"]),
                        run_dir=str(studio["first"]), runs=str(studio["runs"]), cfg=studio["cfg"],
                        thumbs_dir=str(studio["base"] / "thumbs"))
    with ServerThread(app) as srv, no_500_client(srv.url) as c:
        yield c


def _image(studio) -> bytes:
    return next((studio["images"] / "stripes").glob("*.jpg")).read_bytes()


def _endpoint(c: httpx.Client, data: bytes) -> tuple[str, set[str]]:
    r = c.post("/predict", files={"files": ("x.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["iteration"], set(body["predictions"][0]["scores"])


def _try(c: httpx.Client, data: bytes) -> tuple[str, set[str]]:
    r = c.post("/ui/api/predict", content=data)
    assert r.status_code == 200, r.text
    return r.json()["iteration"], set(r.json()["scores"])


def test_iterations_are_listed_newest_first_with_the_labels_changed(served, studio):
    body = served.get("/ui/api/iterations").json()
    names = [it["name"] for it in body["iterations"]]
    assert names == [studio["second"].name, studio["first"].name]
    second, first = body["iterations"]
    assert first["labels_changed"] is None and second["labels_changed"] == 10
    # the relabelling changed the stratified split too: the list says which test images differ
    assert any(p.startswith("stripes/") for p in second["test_changed"])
    assert first["accuracy"] is not None and second["state"] == "finished"
    assert body["live"]["chosen"] == first["name"] and body["live"]["published"] is None and body["rollback_to"] is None


@pytest.mark.slow
def test_choosing_switches_try_and_maps_but_not_the_endpoint(served, studio):
    data = _image(studio)
    three, two = {"circles", "squares", "stripes"}, {"circles", "squares"}
    assert _try(served, data) == (studio["first"].name, three)
    v0 = served.get("/ui/api/live").json()["version"]
    state = served.post("/ui/api/iterations/select", json={"run": str(studio["second"])}).json()
    assert state["chosen"] == studio["second"].name and state["version"] == v0 + 1
    assert _try(served, data) == (studio["second"].name, two)
    rel = next(p for p in Catalog(studio["images"]).paths() if p.startswith("stripes/"))
    cam = served.get("/ui/api/explain", params={"path": rel, "format": "json"}).json()
    assert set(cam["scores"]) == two  # the map is the chosen model's
    results = served.get("/ui/api/results").json()
    assert results["name"] == studio["second"].name and "stripes" not in results["labels"]
    assert _endpoint(served, data) == (studio["first"].name, three)  # chosen is not published


@pytest.mark.slow
def test_publish_and_rollback_switch_every_endpoint_without_a_failed_request(served, studio):
    data = _image(studio)
    first, second = studio["first"].name, studio["second"].name
    failures, answers, stop = [], [], threading.Event()

    def client() -> None:
        with web.client(base_url=str(served.base_url), timeout=60) as c:
            while not stop.is_set():
                r = c.post("/predict", files={"files": ("x.jpg", data, "image/jpeg")})
                if r.status_code != 200:
                    failures.append((r.status_code, r.text))
                else:
                    answers.append(r.json()["iteration"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        state = served.post("/ui/api/publish", json={"run": second}).json()
        assert state["published"] == second and state["chosen"] == second and state["endpoint"] == second
        assert _endpoint(served, data)[0] == second
        assert _try(served, data)[0] == second
        meta = served.get("/v2/models/imgclf").json()
        assert meta["parameters"]["iteration"] == second
        assert served.get("/ui/api/iterations").json()["rollback_to"] is None  # nothing was published before
        assert served.post("/ui/api/publish", json={"run": first}).json()["published"] == first
        assert served.post("/ui/api/rollback").json()["published"] == second
        assert _endpoint(served, data)[0] == second
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert {first, second} <= set(answers)
    its = served.get("/ui/api/iterations").json()["iterations"]
    assert [it["name"] for it in its if it["published"]] == [second]


def test_a_publish_made_elsewhere_is_followed(served, studio):
    import time

    from imgclf.rundir.iterations import publish

    second = studio["second"].name
    publish(studio["runs"], second)  # as another UI on the same runs folder would
    until = time.monotonic() + 60
    while served.get("/ui/api/live").json()["endpoint"] != second:
        assert time.monotonic() < until, "the UI never followed the publish"
        time.sleep(0.2)
    assert _endpoint(served, _image(studio))[0] == second


def test_a_refused_switch_says_why(served, studio):
    for body in ({"run": "nope"}, {"run": "../shapes"}, {"run": str(studio["base"])}):
        r = served.post("/ui/api/iterations/select", json=body)
        assert r.status_code == 404 and r.json()["reason"] == "no_iteration"
    assert served.post("/ui/api/rollback").status_code == 404
    assert served.post("/ui/api/iterations/select", json={"run": ""}).status_code == 400


def test_compare_says_the_test_split_differs(served, studio):
    c = served.get("/ui/api/iterations/compare",
                   params={"before": studio["first"].name, "after": studio["second"].name}).json()
    assert not c["comparable"] and not c["same_images"] and (c["only_before"] or c["only_after"])
    assert all(r["before"] == "stripes" and r["after"] == "squares" for r in c["relabelled"])
    assert c["n_shared"] > 0 and c["accuracy_before"] is not None
    assert {r["class"] for r in c["per_class"]} == {"circles", "squares", "stripes"}


@pytest.mark.slow
def test_downloads_are_whole(served, studio, tmp_path):
    r = served.get("/ui/api/download/bundle", params={"run": studio["first"].name})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path)
    bundle = load_bundle(tmp_path / "model")  # the manifest verifies every byte
    assert list(bundle.labels) == ["circles", "squares", "stripes"]
    onnx = served.get("/ui/api/download/onnx", params={"run": studio["first"].name})
    assert onnx.status_code == 200 and len(onnx.content) > 100_000
    assert Path(onnx.headers["content-disposition"].split("filename=")[1].strip('"')).suffix == ".onnx"
    listing = served.get("/ui/api/download/listing").text.splitlines()
    assert listing[0] == "path,label,folder_label,status" and len(listing) == 31
    assert sum(1 for ln in listing[1:] if ln.startswith("stripes/") and ",squares,stripes," in ln) == 10
    ann = served.get("/ui/api/download/annotations")
    assert ann.status_code == 200 and ann.text.count("relabel") == 10
    assert served.get("/ui/api/download/onnx", params={"run": "nope"}).status_code == 404


def _row(page, name: str):
    return page.locator(f'.itrow[data-name="{name}"]')


@pytest.mark.slow
def test_iterations_page_by_mouse_with_every_page_following(served, studio, browser):
    first, second = studio["first"].name, studio["second"].name
    ctx = browser.new_context(viewport={"width": 1366, "height": 860}, accept_downloads=True)
    errors: list[str] = []
    its, results = ctx.new_page(), ctx.new_page()
    for pg in (its, results):
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.set_default_timeout(20_000)
    base = str(served.base_url)
    results.goto(base + "/ui/results")
    results.wait_for_selector(f"#live-chosen:text('{first}')")
    its.goto(base + "/ui/iterations")
    _row(its, second).get_by_role("button", name=f"Show iteration {second}", exact=True).click()
    its.wait_for_selector(f".itrow.chosen[data-name='{second}']")
    # the other open page follows: it reloads and names the new iteration
    results.wait_for_selector(f"#live-chosen:text('{second}')", timeout=15_000)
    _row(its, first).get_by_role("button", name=f"Publish iteration {first}", exact=True).click()
    its.wait_for_selector(f"#pub-state strong:text('{first}')")
    _row(its, second).get_by_role("button", name=f"Publish iteration {second}", exact=True).click()
    its.wait_for_selector(f"#rollback:text('Roll back to {first}')")
    its.locator("#rollback").click()
    its.wait_for_selector(f"#pub-state strong:text('{first}')")
    its.select_option("#cmp-before", first)
    its.select_option("#cmp-after", second)
    its.locator("#cmp-go").click()
    its.wait_for_selector("#cmp-warning")
    assert "Not tested on the same yardstick" in its.locator("#cmp-warning").inner_text()
    with its.expect_download() as dl:
        its.locator("#dl-bundle").click()
    assert dl.value.suggested_filename == f"{first}-model.zip"
    its.locator("#snippets summary").click()
    assert "/predict" in its.locator("#snip-curl").inner_text()
    ctx.close()
    assert not errors


@pytest.mark.slow
def test_iterations_page_by_touch_on_a_phone_and_by_keyboard(served, studio, browser):
    first, second = studio["first"].name, studio["second"].name
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    pg.goto(str(served.base_url) + "/ui/iterations")
    publish = _row(pg, second).get_by_role("button", name=f"Publish iteration {second}", exact=True)
    publish.scroll_into_view_if_needed()
    box = publish.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 44  # reachable, a finger's size
    publish.tap()
    pg.wait_for_selector(f"#pub-state strong:text('{second}')")
    pg.locator("#cmp-go").tap()
    pg.wait_for_selector("#compare:not([hidden])")
    wide = pg.evaluate("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 390.5"
                       " && !e.closest('.cmp-wrap'))"
                       ".map(e => e.tagName + '.' + e.className + '#' + e.id)")
    assert pg.evaluate("document.documentElement.scrollWidth") <= 390, wide  # nothing hidden sideways
    ctx.close()
    ctx = browser.new_context(viewport={"width": 1366, "height": 860})
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    pg.goto(str(served.base_url) + "/ui/iterations")
    show = _row(pg, first).get_by_role("button", name=f"Show iteration {first}", exact=True)
    show.wait_for()
    pg.keyboard.press("Tab")
    for _ in range(40):  # Tab through the page to the button: keyboard alone reaches it
        if pg.evaluate("document.activeElement && document.activeElement.getAttribute('aria-label')") == f"Show iteration {first}":
            break
        pg.keyboard.press("Tab")
    pg.keyboard.press("Enter")
    pg.wait_for_selector(f".itrow.chosen[data-name='{first}']")
    ctx.close()
