"""One keymap for every page: ``?`` lists the page's keys (from one table, the same words everywhere),
Escape closes the list and gives the focus back; a, k and x mean the same on every page."""
from __future__ import annotations

import pytest
from test_ui_label_next import pool, pool_server  # noqa: F401  (the served dataset with a pool)
from ui_helpers import files_per_class

from imgclf.data.annotations import current_state
from imgclf.ui.routes import PAGES

pytestmark = pytest.mark.browser
READY = {"dataset": ".tile", "results": ".result", "try": "#model-info", "label": ".ln-card"}


@pytest.mark.slow
def test_question_mark_lists_the_same_keys_on_every_page_and_escape_gives_the_focus_back(pool, page):  # noqa: F811
    meaning: dict[str, dict[str, str]] = {}
    for name in PAGES:
        page.goto(f"{pool.url}/ui/{name}")
        page.wait_for_selector(READY.get(name, "main"))
        page.locator("nav a").first.focus()
        page.keyboard.press("?")
        page.wait_for_selector("dialog#keys-help[open]")
        keys = page.eval_on_selector_all("#keys-help dt", "ds => ds.map(d => [d.innerText, d.nextElementSibling.innerText])")
        assert ("?", "show these keys") in [tuple(k) for k in keys], (name, keys)
        assert name not in READY or len(keys) >= 2, (name, keys)  # the image pages have keys of their own
        meaning[name] = dict(keys)
        page.keyboard.press("Escape")
        page.wait_for_selector("dialog#keys-help[open]", state="detached")
        assert page.evaluate("document.activeElement === document.querySelector('nav a')"), f"{name}: the focus is back"
    for key in ("a", "k", "x", "u", "1–9", "Enter", "←"):
        words = {page_: m[key] for page_, m in meaning.items() if key in m}
        assert len(set(words.values())) <= 1, f"{key!r} means different things: {words}"
    assert {"x", "u"} <= set(meaning["dataset"]) & set(meaning["results"]) & set(meaning["label"])


@pytest.mark.slow
def test_k_keeps_and_a_accepts_wherever_they_are_offered(pool, page):  # noqa: F811
    rel = files_per_class(pool.images)["squares"][0]
    page.goto(f"{pool.url}/ui/dataset#q={rel.split('/')[-1]}")
    page.wait_for_selector(f'.tile[data-path="{rel}"][aria-selected="true"]')
    page.keyboard.press("k")  # keep the label: the Dataset page's k is the Review's k
    page.wait_for_function("r => document.getElementById('toast').textContent.includes('saved')", arg=rel)
    assert (current_state(pool.images)[rel].action, current_state(pool.images)[rel].label) == ("keep", "squares")

    page.goto(f"{pool.url}/ui/results")
    page.wait_for_selector(".result")
    page.keyboard.press("ArrowDown")
    chosen = page.locator('.result[aria-current="true"]').get_attribute("data-i")
    page.keyboard.press("k")  # keep, not "move up"
    page.wait_for_function("() => document.getElementById('toast').textContent.includes('saved')")
    assert page.locator('.result[aria-current="true"]').get_attribute("data-i") == chosen
    assert sum(a.action == "keep" for a in current_state(pool.images).values()) == 2

    page.goto(f"{pool.url}/ui/label")
    page.wait_for_selector(".ln-card")
    first = page.locator(".ln-card").first
    path, predicted = first.get_attribute("data-path"), first.locator(".badge").inner_text()
    page.keyboard.press("a")  # accept the suggestion
    page.wait_for_selector(f'.ln-card[data-path="{path}"][data-label="{predicted}"]')
