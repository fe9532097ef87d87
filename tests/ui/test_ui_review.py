"""The dataset page's Review view: the data doctor's findings over HTTP and in a real browser."""
from __future__ import annotations

import pytest
from ui_helpers import CLASSES, STRAYS
import web

from imgclf.data.annotations import current_state, read_history
from imgclf.util.files import read_csv


def _strays(ui_run) -> dict[str, str]:
    """rel path of each stray image → the class it really shows (the next class's picture)."""
    return {f"{c}/stray_{j:03d}.jpg": CLASSES[(i + 1) % len(CLASSES)] for i, c in enumerate(CLASSES) for j in range(STRAYS)}


@pytest.mark.slow
def test_review_lists_the_doctors_findings_worst_first_with_neighbours(client, ui_run, dataset):
    data = client.get("/ui/api/review").json()
    issues = read_csv(ui_run["run"] / "label_issues.csv")
    items = {it["path"]: it for it in data["items"]}
    assert [it["path"] for it in data["items"]][:len(issues)] == [r["rel"] for r in issues], "label issues first, by rank"
    strays = _strays(ui_run)
    found = [p for p in strays if p in items]
    assert len(found) >= len(strays) - 2, "the planted strays are among the findings"
    for p in found:
        it = items[p]
        assert it["given"] == p.split("/")[0] and it["suggestion"] == strays[p]
        assert set(it["neighbours"]) == {it["given"], it["suggestion"]}
        for cls, rels in it["neighbours"].items():
            assert 1 <= len(rels) <= 4 and all(r.split("/")[0] == cls or "stray" in r for r in rels)
            assert client.get("/ui/api/thumb", params={"path": rels[0], "size": 256}).status_code == 200
        assert it["item"]["status"] == "unchanged" and it["item"]["checked"] is False


def test_accept_keep_and_exclude_go_to_annotations_with_their_history(client, ui_run, dataset):
    strays = [p for p in _strays(ui_run) if p in {it["path"] for it in client.get("/ui/api/review").json()["items"]}]
    a, k, x = strays[:3]
    r = client.post("/ui/api/review/act", json={"path": a, "action": "accept"}).json()
    assert r["item"]["label"] == _strays(ui_run)[a] and r["item"]["status"] == "relabeled"
    r = client.post("/ui/api/review/act", json={"path": k, "action": "keep"}).json()
    assert r["item"]["label"] == k.split("/")[0] and r["item"]["checked"] is True and r["item"]["status"] == "unchanged"
    client.post("/ui/api/review/act", json={"path": x, "action": "exclude"})
    state = current_state(dataset)
    assert {p: (s.action, s.label) for p, s in state.items()} == {
        a: ("relabel", _strays(ui_run)[a]), k: ("keep", k.split("/")[0]), x: ("exclude", "")}
    assert client.post("/ui/api/undo", json={}).json()["undone"]["path"] == x
    assert x not in current_state(dataset)
    assert (dataset / k).exists() and (dataset / a).exists(), "nothing is moved or deleted"


@pytest.mark.parametrize("body, status", [({"path": "NO_FINDING", "action": "accept"}, 404),
                                          ({"path": "circles/stray_000.jpg", "action": "delete"}, 400),
                                          ({"path": "../x.jpg", "action": "keep"}, 404)])
def test_bad_review_requests_are_refused_with_a_reason(client, dataset, body, status):
    if body["path"] == "NO_FINDING":  # a listed image the doctor found nothing about
        listed = {it["path"] for it in client.get("/ui/api/review").json()["items"]}
        body = {**body, "path": next(it["path"] for it in client.get("/ui/api/images", params={"limit": 500}).json()["items"]
                                     if it["path"] not in listed)}
    r = client.post("/ui/api/review/act", json=body)
    assert r.status_code == status and r.json()["error"]
    assert current_state(dataset) == {}


@pytest.mark.slow
@pytest.mark.browser
def test_review_view_decides_with_one_key_each(page, server, ui_run, dataset, artifacts):
    page.goto(f"{server.url}/ui/dataset?view=review")
    page.wait_for_selector(".finding")
    first = page.locator('.finding[aria-selected="true"]').get_attribute("data-path")
    page.wait_for_selector("#review-detail .neighbours img")
    page.screenshot(path=str(artifacts / "review.png"))
    items = {it["path"]: it for it in web.get(f"{server.url}/ui/api/review").json()["items"]}
    page.keyboard.press("a")  # accept the suggestion; the selection moves on
    page.wait_for_selector(f'.finding[data-path="{first}"][data-done="true"]')
    second = page.locator('.finding[aria-selected="true"]').get_attribute("data-path")
    assert second != first
    page.keyboard.press("k")  # keep the label
    page.wait_for_selector(f'.finding[data-path="{second}"][data-done="true"]')
    third = page.locator('.finding[aria-selected="true"]').get_attribute("data-path")
    page.keyboard.press("x")
    page.wait_for_selector(f'.finding[data-path="{third}"][data-done="true"]')
    state = current_state(dataset)
    want_first = ("exclude", "") if items[first]["suggestion"] == "exclude" else ("relabel", items[first]["suggestion"])
    assert (state[first].action, state[first].label) == want_first
    assert (state[second].action, state[second].label) == ("keep", items[second]["given"])
    assert state[third].action == "exclude"
    page.reload()  # the view and the decisions survive a reload
    page.wait_for_selector(f'.finding[data-path="{second}"][data-done="true"]')
    assert page.locator("#tab-review").get_attribute("aria-selected") == "true"
    page.locator("#tab-images").click()
    page.wait_for_selector(".tile")
    rows = len(read_history(dataset))
    page.keyboard.press("x")  # the Images view's keys work again, and the review keys are off there
    for _ in range(100):  # the exclusion is written before the test ends (the fixture then clears the history)
        if len(read_history(dataset)) > rows:
            break
        page.wait_for_timeout(100)
    assert len(read_history(dataset)) == rows + 1 and current_state(dataset)
    assert "view=review" not in page.url
