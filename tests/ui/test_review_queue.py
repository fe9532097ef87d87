"""The Review queue: filters, how sure the doctor is, decisions on several findings at once, findings
that stay decided on a new run, and the view by mouse, keyboard and touch at 390x844."""
from __future__ import annotations

import shutil

import pytest
from ui_helpers import CLASSES, copy_dataset, serve_ui, tiny_config
import web

from imgclf.data.annotations import current_state, read_history
from imgclf.util.files import read_csv


def _label_items(client) -> list[dict]:
    return [it for it in client.get("/ui/api/review").json()["items"] if it["findings"][0]["kind"] == "label_issue"]


def test_findings_say_their_type_and_how_sure_the_doctor_is(client, ui_run):
    items = client.get("/ui/api/review").json()["items"]
    assert items and all(it["types"] and set(it["types"]) <= {"label", "outlier", "duplicate", "leakage"} for it in items)
    assert all(it["decided"] == "" for it in items), "nothing was decided in an earlier review"
    oof = {r["rel"]: r for r in read_csv(ui_run["run"] / "oof_predictions.csv")}
    issues = {r["rel"]: r for r in read_csv(ui_run["run"] / "label_issues.csv")}
    labels = _label_items(client)
    assert labels
    for it in labels:
        f = it["findings"][0]
        assert "label" in it["types"]
        assert f["p_given"] == pytest.approx(float(issues[it["path"]]["score"]), abs=1e-5)
        assert f["p_suggested"] == pytest.approx(float(oof[it["path"]][f"p_{it['suggestion']}"]), abs=1e-5)
        votes = it["votes"]
        assert votes["of"] == 10 and 0 <= votes["given"] + votes["suggested"] <= 10
    strays = [it for it in labels if "stray" in it["path"]]
    assert sum(it["votes"]["suggested"] > it["votes"]["given"] for it in strays) >= len(strays) - 1, \
        "a planted stray's nearest train images carry the class it shows"


def test_a_decision_on_several_findings_is_one_correction_and_one_undo(client, dataset):
    labels = _label_items(client)
    chosen = [it for it in labels if "stray" in it["path"]][:4]
    assert len({it["suggestion"] for it in chosen}) >= 2, "the batch mixes suggestions"
    r = client.post("/ui/api/review/act-many", json={"paths": [it["path"] for it in chosen], "action": "accept"})
    assert r.status_code == 200 and r.json()["changed"] == len(chosen)
    assert [v["path"] for v in r.json()["items"]] == [it["path"] for it in chosen]
    state = current_state(dataset)
    assert {p: (s.action, s.label) for p, s in state.items()} == {it["path"]: ("relabel", it["suggestion"]) for it in chosen}
    assert len({a.batch for a in read_history(dataset)}) == 1, "one batch: one correction"
    undone = client.post("/ui/api/undo", json={}).json()
    assert {v["path"] for v in undone["items"]} == {it["path"] for it in chosen}
    assert current_state(dataset) == {}
    kept = client.post("/ui/api/review/act-many", json={"paths": [it["path"] for it in chosen[:2]], "action": "keep"}).json()
    assert all(v["checked"] and v["label"] == v["original"] for v in kept["items"])


@pytest.mark.parametrize("body, status", [({"paths": [], "action": "keep"}, 400),
                                          ({"paths": ["circles/NO_SUCH.jpg"], "action": "keep"}, 404),
                                          ({"paths": "LABEL", "action": "delete"}, 400)])
def test_bad_bulk_decisions_are_refused_with_a_reason(client, dataset, body, status):
    if body["paths"] == "LABEL":
        body = {**body, "paths": [_label_items(client)[0]["path"]]}
    r = client.post("/ui/api/review/act-many", json=body)
    assert r.status_code == status and r.json()["error"]
    assert current_state(dataset) == {}


@pytest.fixture(scope="module")
def decided_run(ui_run, tmp_path_factory):
    """A copy of the run and its dataset where a person kept one stray's label and relabelled another,
    then the doctor ran again: (images, run, the kept finding, the accepted finding). Read-only."""
    from imgclf.doctor.step import doctor
    from imgclf.ui.catalog import Catalog
    from imgclf.ui.review import Review

    base = tmp_path_factory.mktemp("decided")
    images = copy_dataset(ui_run["images"], base / "images")
    run = base / "run"
    shutil.copytree(ui_run["run"], run, ignore=shutil.ignore_patterns("model", "class_maps"))
    review = Review(run, Catalog(images))
    strays = [it for it in review.payload()["items"] if "stray" in it["path"] and it["findings"][0]["kind"] == "label_issue"]
    kept, accepted = strays[0], strays[1]
    review.act(kept["path"], "keep")
    review.act(accepted["path"], "accept")
    doctor(tiny_config(ui_run["data"], images), run)
    return images, run, kept, accepted


def test_findings_decided_in_a_review_stay_decided_on_a_new_run(decided_run):
    from imgclf.ui.catalog import Catalog
    from imgclf.ui.review import Review

    images, run, kept, accepted = decided_run
    assert kept["path"] not in {r["rel"] for r in read_csv(run / "label_issues.csv")}, "not listed as open again"
    decided = {r["rel"]: r for r in read_csv(run / "decided_findings.csv")}
    assert (decided[kept["path"]]["kind"], decided[kept["path"]]["decision"]) == ("label", "keep")
    assert decided[kept["path"]]["given_label"] == kept["given"]
    items = {it["path"]: it for it in Review(run, Catalog(images)).payload()["items"]}
    assert items[kept["path"]]["decided"] == "keep" and items[kept["path"]]["types"] == ["label"]
    open_items = [it for it in items.values() if not it["decided"]]
    assert open_items and list(items.values())[: len(open_items)] == open_items, "open findings first"


@pytest.mark.slow
@pytest.mark.browser
def test_review_filters_and_decides_on_a_selection_with_the_mouse(page, server, dataset, ui_run, artifacts):
    page.goto(f"{server.url}/ui/dataset?view=review")
    page.wait_for_selector(".finding")
    items = {it["path"]: it for it in web.get(f"{server.url}/ui/api/review").json()["items"]}
    page.select_option("#review-type", "label")
    shown = page.locator(".finding").evaluate_all("ns => ns.map(n => n.dataset.path)")
    assert shown and all("label" in items[p]["types"] for p in shown)
    page.select_option("#review-class", CLASSES[0])
    shown = page.locator(".finding").evaluate_all("ns => ns.map(n => n.dataset.path)")
    assert shown and all(CLASSES[0] in (items[p]["given"], items[p]["suggestion"]) for p in shown)
    assert "%" in page.locator(".finding .sure").first.inner_text(), "each card says how sure the doctor is"
    page.select_option("#review-class", "")
    splits = page.locator("#review-split option").evaluate_all("os => os.map(o => o.value).filter(Boolean)")
    page.select_option("#review-split", splits[-1])
    assert all(items[p]["split"] == splits[-1] for p in page.locator(".finding").evaluate_all("ns => ns.map(n => n.dataset.path)"))
    page.select_option("#review-split", "")
    rows = page.locator(".finding-row")
    picked = [rows.nth(i).locator(".finding").get_attribute("data-path") for i in (0, 1, 2)]
    for i in (0, 1, 2):
        rows.nth(i).locator(".pick").click()
    assert page.locator("#review-picked").inner_text() == "3 selected"
    assert page.locator("#review-accept").inner_text() == "Accept 3 suggestions"
    page.screenshot(path=str(artifacts / "review_queue_selection.png"))
    page.locator('[data-review="accept"]').click()
    for p in picked:
        page.wait_for_selector(f'.finding[data-path="{p}"][data-done="true"]')
    state = current_state(dataset)
    assert {p: state[p].label for p in picked} == {p: items[p]["suggestion"] for p in picked}
    assert page.locator("#review-picked").inner_text() == ""
    page.locator("#review-undo").click()
    page.wait_for_function("ps => ps.every(p => document.querySelector(`.finding[data-path=\"${p}\"]`).dataset.done === 'false')",
                           arg=picked)
    assert current_state(dataset) == {}


@pytest.mark.slow
@pytest.mark.browser
def test_review_selects_several_with_the_keyboard(page, server, dataset):
    page.goto(f"{server.url}/ui/dataset?view=review")
    page.wait_for_selector('.finding[aria-selected="true"]')
    first = page.locator('.finding[aria-selected="true"]').get_attribute("data-path")
    page.keyboard.press("m")
    page.keyboard.press("ArrowDown")
    second = page.locator('.finding[aria-selected="true"]').get_attribute("data-path")
    page.keyboard.press("m")
    assert page.locator("#review-picked").inner_text() == "2 selected"
    page.keyboard.press("k")
    page.wait_for_selector(f'.finding[data-path="{second}"][data-done="true"]')
    state = current_state(dataset)
    assert {first, second} <= set(state) and state[first].action == state[second].action == "keep"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("m")
    page.keyboard.press("Escape")
    assert page.locator("#review-picked").inner_text() == ""


@pytest.mark.slow
@pytest.mark.browser
def test_decided_findings_are_hidden_until_asked_for(browser, predictor, decided_run, tmp_path):
    images, run, kept, _ = decided_run
    with serve_ui(predictor, images, run, tmp_path / "thumbs") as srv:
        ctx = browser.new_context(viewport={"width": 1366, "height": 860})
        page = ctx.new_page()
        page.goto(f"{srv.url}/ui/dataset?view=review")
        page.wait_for_selector(".finding")
        assert page.locator(f'.finding[data-path="{kept["path"]}"]').count() == 0
        assert page.locator("#review-decided-count").inner_text() != ""
        page.locator("#review-show-decided").check()
        card = page.locator(f'.finding[data-path="{kept["path"]}"]')
        assert card.get_attribute("data-done") == "true" and card.locator(".state").inner_text() == "kept"
        ctx.close()


_CONTRAST = """n => {
  const rgba = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = (c) => { const v = rgba(c).slice(0, 3).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
                       return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const background = (e) => { while (e && (rgba(getComputedStyle(e).backgroundColor)[3] ?? 1) === 0) e = e.parentElement;
                              return e ? getComputedStyle(e).backgroundColor : "rgb(255, 255, 255)"; };
  let opacity = 1; for (let e = n; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
  return [...n.querySelectorAll('.what > span, .sure, .state')].filter(s => s.textContent.trim()).map(s => {
    const f = lum(getComputedStyle(s).color), b = lum(background(s)); const [hi, lo] = f > b ? [f, b] : [b, f];
    return { text: s.textContent, ratio: (hi + 0.05) / (lo + 0.05), opacity };
  });
}"""


@pytest.mark.slow
@pytest.mark.browser
def test_review_on_a_phone_keeps_its_actions_next_to_the_list(browser, server, dataset, artifacts):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = ctx.new_page()
    page.goto(f"{server.url}/ui/dataset?view=review")
    page.wait_for_selector(".finding")
    cards = page.locator(".finding")
    cards.nth(2).tap()
    accept = page.locator('[data-review="accept"]')
    box = accept.bounding_box()
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= 844, "the decisions are on screen beside the list"
    path = cards.nth(2).get_attribute("data-path")
    accept.tap()
    page.wait_for_selector(f'.finding[data-path="{path}"][data-done="true"]')
    page.locator(".finding-row").nth(0).locator(".pick").tap()
    page.locator(".finding-row").nth(1).locator(".pick").tap()
    keep = page.locator('[data-review="keep"]')
    assert keep.inner_text().endswith("Keep 2 labels") and keep.bounding_box()["y"] + keep.bounding_box()["height"] <= 844
    keep.tap()
    page.wait_for_function("() => document.querySelectorAll('.finding[data-done=\"true\"]').length >= 3")
    page.screenshot(path=str(artifacts / "review_queue_phone.png"))
    assert len(current_state(dataset)) == 3
    for spans in page.locator('.finding[data-done="true"]').evaluate_all(f"ns => ns.map({_CONTRAST})"):
        assert spans and all(s["opacity"] == 1 and s["ratio"] >= 4.5 for s in spans), spans
    ctx.close()
