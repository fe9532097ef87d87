"""The Train page and the training strip of every page in Chromium: a fast training started with the mouse and
followed from another page to "Switch to it"; the same controls by keyboard alone and by touch at 390x844."""
from __future__ import annotations

import pytest
from datagen import make_dataset
from train_helpers import JOB_LIMIT_S, ended, train_app, wait_job
from ui_helpers import no_500_client

from imgclf.serve.server import ServerThread

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
STAGES = ("prepare", "select", "featurize", "train", "refine", "evaluate", "doctor")


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """Two UIs: ``done`` trains its dataset to the end (the mouse test, or ``finished``), ``scratch`` starts and cancels."""
    base = tmp_path_factory.mktemp("train_browser")
    out = {}
    with ServerThread(train_app(make_dataset(base / "shapes", seed=4), base / "data")) as done, \
            ServerThread(train_app(make_dataset(base / "scratch", seed=5), base / "data")) as scratch, \
            no_500_client(done.url) as c_done, no_500_client(scratch.url) as c_scratch:
        out["done"] = {"url": done.url, "client": c_done}
        out["scratch"] = {"url": scratch.url, "client": c_scratch}
        yield out


@pytest.fixture(scope="module")
def finished(sites):
    """``done``'s newest job, finished: the mouse test's when it ran first, else one started here."""
    c = sites["done"]["client"]
    job = c.get("/ui/api/train/job").json()["job"]
    if job is None or job["state"] not in ("running", "finished"):
        assert c.post("/ui/api/train/start", json={"preset": "fast"}).status_code == 202
    job = wait_job(c, ended, every_s=0.5)["job"]
    assert job["state"] == "finished", job
    return job


def _strip_texts(pg) -> None:
    """Record every text the strip shows (window.stripTexts), however briefly."""
    pg.evaluate("""() => { window.stripTexts = [];
      const t = document.querySelector('#jobstrip .text');
      new MutationObserver(() => window.stripTexts.push(t.textContent)).observe(t, { childList: true, characterData: true, subtree: true }); }""")


def _switch(pg, press) -> None:
    """Operate "Switch to it" with ``press``: the UI switches (reloads), or says it cannot and offers the Train page."""
    with pg.expect_response("**/ui/api/iterations/select") as answer:
        press()
    if answer.value.status == 404:  # a UI without iterations: the strip points to the Train page
        pg.wait_for_selector("#jobstrip-train")
    else:
        assert answer.value.ok
        pg.wait_for_load_state()
        # the reload may still be parsing the new page: no strip there yet is not yet hidden
        pg.wait_for_function("() => document.getElementById('jobstrip')?.hidden === true")


@pytest.mark.slow
def test_train_with_the_mouse_and_follow_it_from_another_page(page, sites, artifacts):
    url = sites["done"]["url"]
    page.goto(f"{url}/ui/train")
    page.click(".preset:has(input[value=balanced])")
    page.click(".preset:has(input[value=fast])")
    assert page.locator("input[value=fast]").is_checked()
    page.click("#start")
    page.wait_for_selector("#job:not([hidden])")
    assert "Running since" in page.locator("#job-state").inner_text()
    page.screenshot(path=str(artifacts / "train-running.png"))

    page.click("nav a[href=dataset]")  # another page: the strip under the top bar follows the job
    page.wait_for_selector("#jobstrip:not([hidden])")
    _strip_texts(page)
    assert page.locator("#jobstrip .text").inner_text().startswith("Training shapes")
    page.wait_for_selector("#jobstrip-switch", timeout=JOB_LIMIT_S * 1000)
    texts = page.evaluate("window.stripTexts")
    assert any(f"Training shapes: {s}" in t for t in texts for s in STAGES), texts
    assert page.locator("#jobstrip .text").inner_text().startswith("Training finished: new iteration ")
    page.screenshot(path=str(artifacts / "train-finished-strip.png"))
    _switch(page, lambda: page.click("#jobstrip-switch"))
    job = sites["done"]["client"].get("/ui/api/train/job").json()["job"]
    if page.locator("#jobstrip-train").count():
        page.click("#jobstrip-train")
        page.wait_for_selector("#switch-note:not([hidden])")
        assert job["run_dir"] in page.locator("#switch-note").inner_text()
    else:  # every page now shows (and Try answers with) the new iteration
        page.wait_for_function("id => (document.getElementById('live-chosen') || {}).textContent === id", arg=job["id"])


def _tab_to(pg, selector: str, back: bool = False, limit: int = 80) -> None:
    for _ in range(limit):
        if pg.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
        pg.keyboard.press("Shift+Tab" if back else "Tab")
    raise AssertionError(f"{selector} cannot be reached with Tab")


@pytest.mark.slow
def test_every_control_by_keyboard_alone(browser, sites, finished):
    ctx = browser.new_context(viewport={"width": 1366, "height": 860})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"{sites['done']['url']}/ui/dataset")
    pg.wait_for_selector("#jobstrip-switch")
    _tab_to(pg, "#jobstrip-switch")
    _switch(pg, lambda: pg.keyboard.press("Enter"))
    if pg.locator("#jobstrip-train").count():
        pg.wait_for_function("() => document.activeElement.id === 'jobstrip-train'")

    pg.goto(f"{sites['scratch']['url']}/ui/train")
    pg.wait_for_selector("#train-form")
    _tab_to(pg, "input[name=preset]:checked")
    pg.keyboard.press("ArrowDown")
    assert pg.locator("input[value=balanced]").is_checked()
    pg.keyboard.press("ArrowUp")
    assert pg.locator("input[value=fast]").is_checked()
    _tab_to(pg, "#time-limit")
    pg.keyboard.type("2")
    _tab_to(pg, "#advanced summary")
    pg.keyboard.press("Enter")
    _tab_to(pg, "#settings")
    pg.keyboard.type("svm.cv_folds=1")
    _tab_to(pg, "#start")
    pg.keyboard.press("Enter")
    pg.wait_for_function("() => document.getElementById('train-error').textContent.includes('svm.cv_folds must be an integer >= 2')")
    assert pg.locator("#job").is_hidden()  # nothing started
    _tab_to(pg, "#settings", back=True)
    pg.keyboard.press("Control+a")
    pg.keyboard.type("svm.cv_folds=3")
    _tab_to(pg, "#start")
    pg.keyboard.press("Enter")
    pg.wait_for_function("() => document.activeElement.id === 'cancel'")  # the job runs; Cancel has the focus
    job = sites["scratch"]["client"].get("/ui/api/train/job").json()["job"]
    assert (job["state"], job["time_limit_s"], job["settings"]) == ("running", 120.0, ["svm.cv_folds=3"])
    _tab_to(pg, "#log summary")
    pg.keyboard.press("Enter")
    pg.wait_for_function("() => document.getElementById('log-text').textContent.length > 0")
    assert pg.locator("#job-command").inner_text().startswith("imgclf run --images ")
    _tab_to(pg, "#cancel", back=True)
    pg.keyboard.press("Enter")
    pg.wait_for_function("() => document.getElementById('job-state').textContent.startsWith('Training cancelled')")

    pg.goto(f"{sites['scratch']['url']}/ui/dataset")  # the strip says so on the other pages, until dismissed
    pg.wait_for_selector("#jobstrip-dismiss")
    assert pg.locator("#jobstrip .text").inner_text().startswith("Training cancelled")
    _tab_to(pg, "#jobstrip-log")
    _tab_to(pg, "#jobstrip-dismiss")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#jobstrip", state="hidden")
    ctx.close()
    assert not errors, errors


@pytest.mark.slow
def test_every_control_by_touch_on_a_phone(browser, sites, finished, artifacts):
    ctx = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"{sites['done']['url']}/ui/dataset")
    pg.wait_for_selector("#jobstrip-switch")
    _switch(pg, lambda: pg.locator("#jobstrip-switch").tap())
    if pg.locator("#jobstrip-train").count():
        pg.locator("#jobstrip-train").tap()
        pg.wait_for_selector("#switch-note:not([hidden])")

    pg.goto(f"{sites['scratch']['url']}/ui/train")
    pg.wait_for_selector("#train-form")
    for control in (".preset:has(input[value=best])", ".preset:has(input[value=fast])", "#time-limit", "#advanced summary",
                    "#settings", "#start"):
        box = pg.locator(control).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"{control} fits the phone's width"
    pg.locator(".preset:has(input[value=best])").tap()
    pg.locator(".preset:has(input[value=fast])").tap()
    assert pg.locator("input[value=fast]").is_checked()
    pg.locator("#advanced summary").tap()
    pg.locator("#settings").fill("svm.cv_folds=3")
    pg.locator("#start").tap()
    pg.wait_for_selector("#cancel:not([hidden])")
    pg.screenshot(path=str(artifacts / "phone-train-running.png"))
    box = pg.locator("#cancel").bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"] and box["height"] >= 40, "Cancel is a tap target on the phone"
    pg.locator("#start").tap()  # a second start says what runs and since when
    pg.wait_for_function("() => document.getElementById('train-error').textContent.includes('is running')")
    job = sites["scratch"]["client"].get("/ui/api/train/job").json()["job"]
    assert job["id"] in pg.locator("#train-error").inner_text() and "started" in pg.locator("#train-error").inner_text()
    pg.locator("#log summary").tap()
    pg.locator("#cancel").tap()
    pg.wait_for_function("() => document.getElementById('job-state').textContent.startsWith('Training cancelled')")
    pg.goto(f"{sites['scratch']['url']}/ui/dataset")
    pg.wait_for_selector("#jobstrip-dismiss")
    pg.locator("#jobstrip-log").tap()
    pg.wait_for_selector("#train-form")
    pg.goto(f"{sites['scratch']['url']}/ui/dataset")
    pg.locator("#jobstrip-dismiss").tap()
    pg.wait_for_selector("#jobstrip", state="hidden")
    ctx.close()
    assert not errors, errors
