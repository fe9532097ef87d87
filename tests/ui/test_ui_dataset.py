"""The Dataset page in a real browser (Debian's Chromium driven by Playwright) against a live server:
every image under its class, corrections by key and by selection, undo, paging, many classes."""
from __future__ import annotations

import pytest
from ui_helpers import (
    CLASSES,
    LONG_CLASS,
    files_per_class,
    make_dataset,
    make_many_classes_dataset,
    serve_ui,
    tiny_config,
    wait_images_loaded,
)

from imgclf.data.annotations import current_state, read_history
from imgclf.util.files import read_csv

pytestmark = pytest.mark.browser


def _open_dataset(page, server, hash_: str = "") -> None:
    page.goto(f"{server.url}/ui/dataset{hash_}")
    page.wait_for_selector(".tile")


def _tile(page, rel: str):
    return page.locator(f'.tile[data-path="{rel}"]')


@pytest.mark.slow
def test_dataset_page_shows_every_image_under_its_class(page, server, dataset, artifacts):
    files = files_per_class(dataset)
    _open_dataset(page, server)
    wait_images_loaded(page, ".tile img")
    for cls, rels in files.items():
        shown = page.eval_on_selector_all(".tile", "(ts, c) => ts.filter(t => t.dataset.label === c).map(t => t.dataset.path)", cls)
        assert sorted(shown) == rels
        counter = page.locator(f'.filter[data-label="{cls}"][data-status=""] .count')
        assert counter.inner_text() == str(len(rels))
    assert [t.split()[0] for t in page.locator(".group").all_inner_texts()] == list(CLASSES)
    page.screenshot(path=str(artifacts / "dataset.png"))

    page.locator(f'.filter[data-label="{CLASSES[1]}"][data-status=""]').click()
    page.wait_for_function("n => document.querySelectorAll('.tile').length === n", arg=len(files[CLASSES[1]]))
    assert "label=squares" in page.url

    page.keyboard.press("Enter")  # enlarge the selected image
    page.wait_for_selector("dialog#viewer[open]")
    wait_images_loaded(page, "#viewer-img")
    assert page.locator("#viewer-title").inner_text() == files[CLASSES[1]][0]
    page.screenshot(path=str(artifacts / "dataset-enlarged.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#viewer:not([open])", state="attached")


@pytest.mark.slow
def test_keyboard_relabel_persists_across_reload_and_is_used_by_prepare(page, server, dataset, ui_run, tmp_path, artifacts):
    from imgclf.pipeline.steps import prepare

    first, second, third = files_per_class(dataset)[CLASSES[0]][:3]
    _open_dataset(page, server)
    _tile(page, first).click()
    page.keyboard.press("2")  # class 2 = squares; the selection moves on to the next image
    page.wait_for_selector(f'.tile[data-path="{first}"][data-status="relabeled"]')
    assert page.evaluate("document.activeElement.dataset.path") == second
    page.keyboard.press("x")
    page.wait_for_selector(f'.tile[data-path="{second}"][data-status="excluded"]')
    page.wait_for_function("p => document.activeElement.dataset.path === p", arg=third)

    state = current_state(dataset)
    assert {p: (a.action, a.label) for p, a in state.items()} == {first: ("relabel", "squares"), second: ("exclude", "")}
    assert page.locator('.filter[data-status="excluded"] .count').inner_text() == "1"

    page.reload()
    page.wait_for_selector(".tile")
    assert _tile(page, first).get_attribute("data-label") == "squares"
    assert _tile(page, first).get_attribute("data-status") == "relabeled"
    assert _tile(page, second).get_attribute("data-status") == "excluded"
    assert page.evaluate("document.activeElement.dataset.path") == third, "the selection survives the reload"
    page.screenshot(path=str(artifacts / "dataset-corrected.png"))

    cfg = tiny_config(ui_run["data"], dataset)
    summary = prepare(cfg, tmp_path / "run")
    rows = {r["path"]: r["label"] for r in read_csv(tmp_path / "run" / "split.csv")}
    assert rows[str(dataset / first)] == "squares"
    assert str(dataset / second) not in rows
    assert summary["excluded_by_annotations"] == 1
    assert summary["classes"]["squares"] == len(files_per_class(dataset)["squares"]) + 1


@pytest.mark.slow
def test_undo_restores_the_previous_label_and_keeps_the_history(page, server, dataset):
    rel = files_per_class(dataset)[CLASSES[2]][0]
    _open_dataset(page, server)
    _tile(page, rel).click()
    page.keyboard.press("1")
    page.wait_for_selector(f'.tile[data-path="{rel}"][data-label="circles"]')
    page.keyboard.press("q")  # the selection moved on: mark the next one ambiguous
    page.wait_for_selector('.tile[data-status="ambiguous"]')
    page.keyboard.press("u")
    page.wait_for_selector('.tile[data-status="ambiguous"]', state="detached")
    page.keyboard.press("u")
    page.wait_for_selector(f'.tile[data-path="{rel}"][data-label="stripes"][data-status="unchanged"]')
    assert page.evaluate("document.activeElement.dataset.path") == rel, "undo selects the image it changed back"
    assert current_state(dataset) == {}
    assert [a.action for a in read_history(dataset)] == ["relabel", "ambiguous", "restore", "restore"]

    page.locator("#undo").click()
    page.wait_for_function("document.getElementById('toast').textContent.includes('Nothing to undo')")
    assert len(read_history(dataset)) == 4


@pytest.mark.slow
def test_shift_click_selects_a_range_and_one_key_corrects_it_with_one_undo(page, server, dataset, artifacts):
    files = files_per_class(dataset)
    page.goto(f"{server.url}/ui/dataset")
    page.wait_for_selector(".tile")
    page.locator(".tile").nth(0).click(modifiers=["Control"])
    page.locator(".tile").nth(3).click(modifiers=["Shift"])
    assert page.locator('.tile[data-picked="true"]').count() == 4
    page.screenshot(path=str(artifacts / "dataset-selection.png"))
    page.keyboard.press("x")
    page.wait_for_function("document.querySelectorAll('.tile[data-status=\"excluded\"]').length === 4")
    picked = files[CLASSES[0]][:4]
    assert {p: a.action for p, a in current_state(dataset).items()} == dict.fromkeys(picked, "exclude")
    assert len({a.batch for a in read_history(dataset)}) == 1
    assert page.locator('.tile[data-picked="true"]').count() == 0, "the selection is spent"
    page.keyboard.press("u")
    page.wait_for_function("document.querySelectorAll('.tile[data-status=\"excluded\"]').length === 0")
    assert current_state(dataset) == {} and len(read_history(dataset)) == 8

    page.locator(f'.filter[data-label="{CLASSES[1]}"][data-status=""]').click()
    page.wait_for_function("n => document.querySelectorAll('.tile').length === n", arg=len(files[CLASSES[1]]))
    page.locator("#pick-all").click()
    page.wait_for_function("n => document.getElementById('picked-count').textContent.startsWith(n + ' selected')",
                           arg=len(files[CLASSES[1]]))
    page.locator(f'#class-buttons [data-label="{CLASSES[0]}"]').click()
    page.wait_for_selector(".empty")  # none of them is in this class any more
    assert {a.label for a in current_state(dataset).values()} == {CLASSES[0]}
    assert len(current_state(dataset)) == len(files[CLASSES[1]])


@pytest.mark.slow
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


@pytest.mark.slow
def test_thousands_of_images_are_paged_and_the_keys_cross_pages(browser, tmp_path):
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    images = make_dataset(tmp_path / "many", n_per_class=77, size=32)
    app = create_ui_app(None, ServeConfig(), images_dir=str(images), run_dir=None, thumbs_dir=str(tmp_path / "thumbs"))
    with ServerThread(app) as srv:
        pg = browser.new_page(viewport={"width": 1366, "height": 860})
        pg.goto(f"{srv.url}/ui/dataset")
        pg.wait_for_selector(".tile")
        selected = "document.activeElement.dataset.path"
        assert pg.locator(".tile").count() == 100
        assert pg.locator("#page-info").inner_text() == "Page 1 of 3 · images 1–100 of 231"
        pg.locator(".tile").first.click()
        per_row = pg.evaluate("(() => { const t = [...document.querySelectorAll('.tile')];"
                              " return t.filter(x => x.offsetTop === t[0].offsetTop).length; })()")
        pg.keyboard.press("ArrowDown")
        assert pg.evaluate(selected) == f"circles/circles_{per_row:03d}.jpg"
        pg.keyboard.press("End")
        pg.keyboard.press("ArrowRight")
        pg.wait_for_function("document.getElementById('page-info').textContent.startsWith('Page 2 of 3')")
        pg.wait_for_function(f"{selected} === 'squares/squares_023.jpg'")
        pg.keyboard.press("PageDown")
        pg.wait_for_function("document.querySelectorAll('.tile').length === 31")
        pg.keyboard.press("Home")
        pg.keyboard.press("ArrowLeft")
        pg.wait_for_function(f"{selected} === 'stripes/stripes_045.jpg'")
        assert "page=1" in pg.url
        pg.close()


@pytest.mark.slow
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


@pytest.mark.slow
def test_thumbnails_still_loading_off_screen_are_not_animated(page, tmp_path):
    """A lazy thumbnail far down the page stays "loading" until it is scrolled to: only frames in view shimmer,
    so a page left open does not keep the browser busy (each shimmering frame costs CPU every frame)."""
    images = make_dataset(tmp_path / "images", n_per_class=60, seed=3)
    with serve_ui(None, images, None, tmp_path / "thumbs") as srv:
        page.goto(f"{srv.url}/ui/dataset")
        page.wait_for_selector(".tile")
        wait_images_loaded(page, ".tile img")
        page.wait_for_timeout(300)  # the observer's first answers
        state = page.evaluate("""() => {
            const below = (f) => f.getBoundingClientRect().top > innerHeight;
            const loading = [...document.querySelectorAll('.thumbwrap.loading')];
            return {offscreen: loading.filter(below).length,
                    animatedOffscreen: document.getAnimations().filter((a) => below(a.effect.target)).length};
        }""")
        assert state["offscreen"] > 0, "the page should hold lazy thumbnails not fetched yet"
        assert state["animatedOffscreen"] == 0
        # scrolled to, a frame shows its image, or shimmers while it loads
        last = page.locator(".tile .thumbwrap").last
        last.scroll_into_view_if_needed()
        page.wait_for_function("f => !f.classList.contains('loading') || (f.classList.contains('inview') && f.getAnimations().length === 1)",
                               arg=last.element_handle())
        page.wait_for_function("f => !f.classList.contains('loading')", arg=last.element_handle())
