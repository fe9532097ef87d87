"""The whole loop in the browser, never touching the command line: train, open the iteration, fix a label from
Review, quick update, train again, compare (the fixed image listed), publish, /predict answers with the new
iteration, roll back, download the bundle — with the mouse at 1366 px, then every action by touch at 390x844."""
from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import ended, train_app, wait_job
from ui_helpers import make_mislabelled_dataset, no_500_client

from imgclf.serve.server import ServerThread

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A UI over a dataset with mislabelled images and no iteration yet (as `imgclf ui --images DIR` opens it)."""
    base = tmp_path_factory.mktemp("loop")
    images = make_mislabelled_dataset(base / "shapes", n_per_class=10, seed=11)
    with ServerThread(train_app(images, base / "data")) as srv, no_500_client(srv.url) as c:
        yield {"url": srv.url, "client": c, "images": images}


def _context(browser, **kw):
    ctx = browser.new_context(accept_downloads=True, **kw)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(30_000)
    return ctx, pg, errors


def _train(pg, url: str, press, c) -> str:
    """Start a fast training on the Train page and switch to the iteration it makes; its name."""
    before = (c.get("/ui/api/train/job").json()["job"] or {}).get("run_dir")
    pg.goto(f"{url}/ui/train")
    press(pg.locator("#start"))
    job = wait_job(c, lambda a: ended(a) and a["job"]["run_dir"] != before, every_s=0.5)["job"]
    assert job["state"] == "finished", job
    name = Path(job["run_dir"]).name
    pg.wait_for_function("name => document.getElementById('job').innerText.includes(name)", arg=name)
    pg.wait_for_selector("#job-switch:visible")
    press(pg.locator("#job-switch"))
    pg.wait_for_load_state()
    pg.goto(f"{url}/ui/iterations")
    pg.wait_for_selector(f".itrow.chosen[data-name='{name}']")
    return name


def _iterations(c) -> list[dict]:
    return c.get("/ui/api/iterations").json()["iterations"]


def _endpoint(c, images) -> str:
    data = next((images / "circles").glob("*.jpg")).read_bytes()
    r = c.post("/predict", files={"files": ("x.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    return r.json()["iteration"]


@pytest.mark.slow
def test_the_loop_with_the_mouse(studio, browser):
    url, c = studio["url"], studio["client"]
    ctx, pg, errors = _context(browser, viewport={"width": 1366, "height": 860})
    click = lambda loc: loc.click()  # noqa: E731
    first = _train(pg, url, click, c)
    pg.get_by_role("button", name=f"Publish iteration {first}", exact=True).click()
    pg.wait_for_selector(f"#pub-state strong:text('{first}')")
    assert _endpoint(c, studio["images"]) == first

    # fix a label from Review: a test image's finding when there is one (the comparison must then name it)
    pg.goto(f"{url}/ui/dataset?view=review")
    pg.wait_for_selector(".finding")
    if pg.locator("#review-split option[value='test']").count():
        pg.select_option("#review-split", "test")
    finding = pg.locator(".finding").first
    fixed = finding.get_attribute("data-path")
    finding.click()
    pg.locator("[data-review='accept']").click()
    pg.wait_for_selector(f".finding[data-path='{fixed}'][data-done='true']")

    # quick update: a draft on the current labels, scored on train only
    pg.wait_for_selector("#quick-run:visible")
    pg.locator("#quick-run").click()
    pg.wait_for_selector("#quick-switch:visible", timeout=120_000)
    assert "cross-validated" in pg.locator("#quick-text").inner_text()
    pg.locator("#quick-switch").click()
    pg.wait_for_load_state()
    draft = [it for it in _iterations(c) if it["state"] == "draft"]
    assert draft and draft[0]["accuracy"] is None and draft[0]["cv_accuracy"] is not None

    second = _train(pg, url, click, c)
    assert second not in (first, draft[0]["name"])
    pg.select_option("#cmp-before", first)
    pg.select_option("#cmp-after", second)
    pg.locator("#cmp-go").click()
    pg.wait_for_selector("#compare:not([hidden])")
    body = pg.locator("#cmp-body")
    if pg.locator("#cmp-which").count():
        pg.locator("#cmp-which summary").click()
    assert fixed in body.inner_text() or fixed.split("/")[-1] in body.inner_text()

    pg.get_by_role("button", name=f"Publish iteration {second}", exact=True).click()
    pg.wait_for_selector(f"#pub-state strong:text('{second}')")
    assert _endpoint(c, studio["images"]) == second
    pg.locator("#rollback").click()
    pg.wait_for_selector(f"#pub-state strong:text('{first}')")
    assert _endpoint(c, studio["images"]) == first
    with pg.expect_download() as dl:
        pg.locator("#dl-bundle").click()
    assert dl.value.suggested_filename == f"{first}-model.zip"
    ctx.close()
    assert not errors


@pytest.mark.slow
def test_every_action_of_the_loop_by_touch_on_a_phone(studio, browser):
    url, c = studio["url"], studio["client"]
    its = [it for it in _iterations(c) if it["state"] == "finished"]
    if len(its) < 2:
        pytest.skip("needs the iterations the mouse walk trained")
    newest, older = its[0]["name"], its[1]["name"]
    ctx, pg, errors = _context(browser, viewport=PHONE, has_touch=True, is_mobile=True)
    tap = lambda loc: (loc.scroll_into_view_if_needed(), loc.tap())  # noqa: E731

    def reachable(loc) -> None:
        loc.scroll_into_view_if_needed()
        box = loc.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1, loc

    # Train: start by a tap, and Cancel by a tap (a training of its own would only repeat the mouse walk's)
    pg.goto(f"{url}/ui/train")
    reachable(pg.locator("#start"))
    tap(pg.locator("#start"))
    pg.wait_for_selector("#cancel:visible", timeout=60_000)
    tap(pg.locator("#cancel"))
    pg.wait_for_selector("#job-state:has-text('ancel')", timeout=60_000)

    # Review: a finding's suggestion accepted by taps (a label changes: the quick update is offered)
    pg.goto(f"{url}/ui/dataset?view=review")
    pg.wait_for_selector(".finding[data-done='false']")
    tap(pg.locator(".finding[data-done='false']").first)
    accept = pg.locator("[data-review='accept']")
    reachable(accept)
    tap(accept)

    # Quick update by a tap
    pg.wait_for_selector("#quick-run:visible")
    reachable(pg.locator("#quick-run"))
    tap(pg.locator("#quick-run"))
    pg.wait_for_selector("#quick-switch:visible", timeout=120_000)
    tap(pg.locator("#quick-switch"))
    pg.wait_for_load_state()

    # Iterations: show, compare, publish, roll back, download, all by taps
    pg.goto(f"{url}/ui/iterations")
    tap(pg.get_by_role("button", name=f"Show iteration {newest}", exact=True))
    pg.wait_for_selector(f".itrow.chosen[data-name='{newest}']")
    pg.select_option("#cmp-before", older)
    pg.select_option("#cmp-after", newest)
    tap(pg.locator("#cmp-go"))
    pg.wait_for_selector("#compare:not([hidden])")
    tap(pg.get_by_role("button", name=f"Publish iteration {newest}", exact=True))
    pg.wait_for_selector(f"#pub-state strong:text('{newest}')")
    assert _endpoint(c, studio["images"]) == newest
    tap(pg.locator("#rollback"))
    pg.wait_for_selector(f"#pub-state strong:not(:text('{newest}'))")
    reachable(pg.locator("#dl-bundle"))
    with pg.expect_download() as dl:
        tap(pg.locator("#dl-bundle"))
    assert dl.value.suggested_filename.endswith("-model.zip")
    assert pg.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    ctx.close()
    assert not errors
