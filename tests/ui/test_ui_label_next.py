"""The Label next page: its API over HTTP, and the page in a real browser (keys, refit as a quick update, next batch)."""
from __future__ import annotations

import shutil

import httpx
import numpy as np
import pytest
from ui_helpers import CLASSES
import web

from imgclf.data.annotations import current_state, read_history, record
from imgclf.data.split import load_split
from imgclf.util.files import read_json

POOL = 12


@pytest.fixture
def pool_server(ui_run, predictor, tmp_path_factory):
    """The UI over a fresh copy of the UI run and its dataset, whose pool holds 12 unlabelled images (4 per class):
    Label next goes on with the drafts its refits make, so each test starts from the run."""
    from datagen import make_image

    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    base = tmp_path_factory.mktemp("label_next_ui")
    images, run = base / "images", base / "run"
    shutil.copytree(ui_run["images"], images, ignore=shutil.ignore_patterns("annotations.csv"))
    shutil.copytree(ui_run["run"], run)
    (images / "_unlabeled").mkdir()
    rng = np.random.default_rng(21)
    for i in range(POOL):
        make_image(CLASSES[i % 3], rng).save(images / "_unlabeled" / f"p{i:02d}_{CLASSES[i % 3]}.jpg", quality=90)
    app = create_ui_app(predictor, ServeConfig(), images_dir=str(images), run_dir=str(run), thumbs_dir=str(base / "thumbs"))
    with ServerThread(app) as srv:
        srv.images, srv.run = images, run
        yield srv


@pytest.fixture
def pool(pool_server):
    """The served dataset with the pool (the other Label next tests import both names)."""
    return pool_server


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json") and r.json()["reason"]
    return r.json()["error"]


@pytest.mark.slow
def test_api_batch_labels_refit_and_refusals(pool):
    with web.client(base_url=pool.url, timeout=60) as c:
        data = c.get("/ui/api/label-next", params={"n": 5}).json()
        assert data["classes"] == list(CLASSES) and len(data["batch"]) == 5
        assert data["progress"] == {**data["progress"], "pool": POOL, "labelled": 0, "left": POOL, "name": "run"}
        [run] = data["progress"]["history"]  # the run itself: its class-averaged accuracy from its C search, no test figure
        assert run["name"] == "run" and not run["draft"] and run["cv_accuracy"] is None and 0 < run["cv_class_avg_accuracy"] <= 1
        first = data["batch"][0]
        assert first["path"].startswith("_unlabeled/") and first["predicted"] in CLASSES and first["status"] == ""
        r = c.get("/ui/api/label-next/thumb", params={"path": first["path"], "v": first["v"]})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"

        for bad in ("circles/circles_000.jpg", "../images/_unlabeled/p00_circles.jpg", "_unlabeled/none.jpg", ""):
            _error(c.post("/ui/api/label-next/label", json={"path": bad, "label": "circles"}), 404)
            _error(c.get("/ui/api/label-next/thumb", params={"path": bad}), 404)
        assert "one of the classes" in _error(c.post("/ui/api/label-next/label", json={"path": first["path"], "label": "dogs"}), 400)
        _error(c.post("/ui/api/label-next/label", json={"path": first["path"], "action": "relabel"}), 400)
        _error(c.get("/ui/api/label-next", params={"strategy": "loudest"}), 400)
        _error(c.post("/ui/api/label-next/refit", json={"n": 0}), 400)
        assert read_history(pool.images) == []

        r = c.post("/ui/api/label-next/label", json={"path": first["path"], "label": "squares"}).json()
        assert r["item"] == {"path": first["path"], "label": "squares", "status": "labelled"} and r["progress"]["labelled"] == 1
        out = c.post("/ui/api/label-next/refit", json={"n": 4, "strategy": "margin"}).json()
        draft = out["refit"]
        assert draft["changes"] == {"relabelled": 0, "added": 1, "removed": 0, "total": 1} and "accuracy" not in draft
        assert [h["name"] for h in out["progress"]["history"]] == ["run", draft["name"]] and out["progress"]["name"] == draft["name"]
        assert out["progress"]["history"][-1]["cv_accuracy"] == draft["cv_accuracy"] and draft["parent"]["name"] == "run"
        assert len(out["batch"]) == 4 and first["path"] not in {it["path"] for it in out["batch"]}
        rest = [it["path"] for it in c.get("/ui/api/label-next", params={"n": POOL}).json()["batch"] if not it["status"]]
        for path in rest:  # label what the batch holds, then refit until the pool is empty
            c.post("/ui/api/label-next/label", json={"path": path, "label": "circles"}).raise_for_status()
        for _ in range(3):
            out = c.post("/ui/api/label-next/refit", json={"n": POOL}).json()
            for it in out["batch"]:
                c.post("/ui/api/label-next/label", json={"path": it["path"], "action": "exclude"}).raise_for_status()
        assert out["batch"] == [] and out["progress"]["left"] == 0
        assert c.get("/ui/api/label-next").json()["batch"] == []
        record(pool.images, [("_unlabeled/p00_circles.jpg", "", "label", "dogs")])  # a new class of one image: too few
        left_out = c.post("/ui/api/label-next/refit", json={}).json()["refit"]["left_out"]
        assert left_out["classes_with_too_few_images"] == {"dogs": 1}
        internal = [ln for ln in c.get("/metrics").text.splitlines() if ln.startswith("imgclf_internal_errors_total")]
        assert internal == ["imgclf_internal_errors_total 0.0"], "no request may end in a 500"


@pytest.mark.slow
@pytest.mark.browser
def test_keys_label_the_batch_and_refit_shows_accuracy_and_the_next_batch(pool, page, artifacts):
    page.goto(f"{pool.url}/ui/label")
    page.wait_for_selector(".ln-card")
    cards = page.locator(".ln-card")
    assert cards.count() == POOL  # the batch (20) is larger than the pool
    paths = [cards.nth(i).get_attribute("data-path") for i in range(3)]
    predicted = page.evaluate("() => [...document.querySelectorAll('.ln-card')].slice(0, 1).map(c => c.querySelector('.badge').textContent)")[0]
    assert page.evaluate("document.activeElement.dataset.path") == paths[0]

    page.keyboard.press("Enter")  # accept the predicted class; the selection moves on
    page.wait_for_selector(f'.ln-card[data-path="{paths[0]}"][data-status="labelled"][data-label="{predicted}"]')
    page.wait_for_function("p => document.activeElement.dataset.path === p", arg=paths[1])
    page.keyboard.press("2")  # class 2 = squares
    page.wait_for_selector(f'.ln-card[data-path="{paths[1]}"][data-label="squares"]')
    page.wait_for_function("p => document.activeElement.dataset.path === p", arg=paths[2])
    page.keyboard.press("x")  # drop from the pool
    page.wait_for_selector(f'.ln-card[data-path="{paths[2]}"][data-status="excluded"]')
    state = {p: (a.action, a.label) for p, a in current_state(pool.images).items()}
    assert state == {paths[0]: ("label", predicted), paths[1]: ("label", "squares"), paths[2]: ("exclude", "")}
    assert "2 labelled of 12 in the pool" in page.locator("#progress").inner_text()

    page.keyboard.press("u")  # undo the drop
    page.wait_for_selector(f'.ln-card[data-path="{paths[2]}"][data-status=""]')
    assert paths[2] not in current_state(pool.images)

    page.locator("#batch-size").fill("5")
    steps = page.locator("#history li").count()
    page.locator("#refit").click()
    page.wait_for_selector("#refit-result[data-after]")
    result = page.locator("#refit-result")
    run = pool.run.parent / result.get_attribute("data-run")
    draft = read_json(run / "metrics.json")
    assert draft["draft"] and "accuracy" not in draft
    rows = {r.rel: (r.label, r.split) for r in load_split(str(run / "split.csv"))}
    assert {p: rows[p] for p in paths[:2]} == {paths[0]: (predicted, "train"), paths[1]: ("squares", "train")}
    key = "cv_class_avg_accuracy" if draft["parent"]["cv_accuracy"] is None else "cv_accuracy"  # what the parent can compare
    assert float(result.get_attribute("data-after")) == pytest.approx(draft[key])
    assert float(result.get_attribute("data-before")) == pytest.approx(draft["parent"][key])
    text = result.inner_text()
    assert "cross-validated" in text and "test results only for full iterations" in text and "Test accuracy" not in text
    page.wait_for_function("n => document.querySelectorAll('.ln-card').length === n", arg=5)
    shown = {cards.nth(i).get_attribute("data-path") for i in range(5)}
    assert not shown & set(paths[:2]), "the next batch holds only unlabelled images"
    assert page.locator("#history li").count() == steps + 1  # the draft joins the iterations listed
    assert page.locator("#history li").last.get_attribute("data-run") == run.name
    page.screenshot(path=str(artifacts / "label-next.png"))
