"""Adding images and classes in a real browser (Chromium via Playwright) against a live server on a copy
of the dataset: six files dropped onto a new class, each outcome listed, the upload undone; the same by
keyboard and by touch on a phone's screen; classes renamed and merged; the Try page's add buttons."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
from playwright.sync_api import expect
from intake_files import NOT_AN_IMAGE, huge_png, noise_jpeg
from ui_helpers import copy_dataset, serve_ui

from imgclf.data.annotations import read_history
from imgclf.data.dataset import scan_dataset
from imgclf.data.intake import REMOVED_DIR

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def site(ui_run, tmp_path):
    """A server over a fresh copy of the UI's dataset (no model), and that copy."""
    images = copy_dataset(ui_run["images"], tmp_path / "images")
    with serve_ui(None, images, None, tmp_path / "thumbs") as srv:
        yield srv, images


def six_files(images: Path, tmp_path: Path) -> list[Path]:
    """Three new images, a copy of one of the dataset's, a text file named .jpg, a PNG over the pixel limit."""
    dup = sorted((images / "squares").iterdir())[0]
    files = {"one.jpg": noise_jpeg(1), "two.jpg": noise_jpeg(2), "three.jpg": noise_jpeg(3), "copy.jpg": dup.read_bytes(),
             "notes.jpg": NOT_AN_IMAGE, "poster.png": huge_png()}
    folder = tmp_path / "upload"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / n for n in files]


def intercept_file_choosers(page) -> None:
    """Have Playwright intercept file choosers before the page opens one: enabled only at the first
    expect_file_chooser, the interception can come after the chooser it waits for."""
    page.on("filechooser", lambda chooser: None)


def drop(page, selector: str, files: list[Path]) -> None:
    """Drop ``files`` onto ``selector`` as a person dragging them from the desktop would."""
    spec = [[p.name, base64.b64encode(p.read_bytes()).decode()] for p in files]
    dt = page.evaluate_handle("""files => { const dt = new DataTransfer();
        for (const [name, b64] of files) { const bin = atob(b64); const a = new Uint8Array(bin.length);
          for (let i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i); dt.items.add(new File([a], name)); }
        return dt; }""", spec)
    page.dispatch_event(selector, "dragenter", {"dataTransfer": dt})
    page.dispatch_event(selector, "drop", {"dataTransfer": dt})


def assert_outcomes(page) -> None:
    """The six files' outcomes, as the page lists them: three added, one duplicate, two refused with their reasons."""
    page.wait_for_selector("#intake-result:not([hidden]) li")
    rows = page.eval_on_selector_all("#intake-result li", "ls => ls.map(l => [l.querySelector('.intake-name').textContent,"
                                                          " l.dataset.status, l.dataset.reason, l.querySelector('.intake-why').textContent])")
    by = {name: (status, reason, why) for name, status, reason, why in rows}
    assert {n: s for n, (s, _, _) in by.items()} == {"one.jpg": "added", "two.jpg": "added", "three.jpg": "added",
                                                     "copy.jpg": "duplicate", "notes.jpg": "refused", "poster.png": "refused"}
    assert by["copy.jpg"][1] == "exact" and "the same file as squares/" in by["copy.jpg"][2]
    assert by["notes.jpg"][1] == "not_an_image" and "not a recognisable image" in by["notes.jpg"][2]
    assert by["poster.png"][1] == "too_large" and "exceeds the limit" in by["poster.png"][2]
    assert page.locator("#intake-summary").inner_text() == "3 images added to class owls · 1 duplicate not added · 2 refused"


def assert_undone(page, images: Path) -> None:
    page.wait_for_selector("#intake-summary:has-text('Upload undone')")
    page.wait_for_function("!document.querySelector('.filter[data-label=\"owls\"]')")
    assert "owls" not in scan_dataset(images).labels and not (images / "owls").exists()
    undone = [a for a in read_history(images) if a.undoes]
    assert sorted(a.path for a in undone) == ["owls/one.jpg", "owls/three.jpg", "owls/two.jpg"]
    assert sorted(p.name for p in (images / REMOVED_DIR).rglob("*.jpg")) == ["one.jpg", "three.jpg", "two.jpg"]


@pytest.mark.slow
def test_six_files_dropped_onto_a_new_class_then_undone(page, site, tmp_path, artifacts):
    srv, images = site
    files = six_files(images, tmp_path)
    page.goto(f"{srv.url}/ui/dataset")
    page.wait_for_selector(".tile")
    page.select_option("#intake-target", label="New class…")
    page.fill("#intake-name", "owls")
    drop(page, "#intake-drop", files)

    assert_outcomes(page)
    page.wait_for_selector('.filter[data-label="owls"] .count:text-is("3")')
    assert scan_dataset(images).counts()["owls"] == 3
    assert page.eval_on_selector("#intake-target", "s => s.value") == "owls", "the next files go to the class just made"
    page.screenshot(path=str(artifacts / "intake-dropped.png"))

    page.click("#intake-result li[data-status=duplicate] button:has-text('Add anyway')")
    page.wait_for_selector('#intake-result li[data-status=added]:has-text("copy.jpg")')
    page.wait_for_selector('.filter[data-label="owls"] .count:text-is("4")')
    page.click("#intake-undo")
    page.wait_for_selector("#intake-summary:has-text('Upload undone: 4 images')")
    assert "owls" not in scan_dataset(images).labels and not (images / "owls").exists()


@pytest.mark.slow
def test_a_drop_onto_a_class_of_the_sidebar_adds_to_it_and_the_pool_is_listed(page, site, tmp_path):
    srv, images = site
    (tmp_path / "a.jpg").write_bytes(noise_jpeg(7))
    (tmp_path / "p.jpg").write_bytes(noise_jpeg(8))
    page.goto(f"{srv.url}/ui/dataset")
    page.wait_for_selector(".tile")
    drop(page, '.filter[data-label="stripes"]', [tmp_path / "a.jpg"])
    page.wait_for_selector("#intake-summary:has-text('1 image added to class stripes')")
    assert (images / "stripes" / "a.jpg").exists()
    drop(page, '.filter[data-status="pool"]', [tmp_path / "p.jpg"])
    page.wait_for_selector("#intake-summary:has-text('1 image added to the pool')")
    page.click('.filter[data-status="pool"]')
    page.wait_for_selector('.tile[data-path="_unlabeled/p.jpg"][data-status="pool"]')
    expect(page.locator(".tile")).to_have_count(1)  # the grid is redrawn for the filter: wait for it
    page.keyboard.press("2")  # the second class, as for any image: a pool image gets its class in place
    page.wait_for_selector('.tile[data-path="_unlabeled/p.jpg"][data-status="relabeled"][data-label="squares"]')
    assert (images / "_unlabeled" / "p.jpg").exists()
    assert scan_dataset(images).counts()["squares"] == len(list((images / "squares").iterdir())) + 1
    assert page.locator('.filter[data-status="pool"] .count').inner_text() == "0"


@pytest.mark.slow
def test_the_same_flow_by_keyboard_and_classes_renamed(page, site, tmp_path):
    srv, images = site
    files = six_files(images, tmp_path)
    intercept_file_choosers(page)
    page.goto(f"{srv.url}/ui/dataset")
    page.wait_for_selector(".tile")

    def tab_to(selector: str, limit: int = 60) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
                return
        raise AssertionError(f"{selector} cannot be reached with Tab")

    tab_to("#intake-target")
    page.keyboard.press("End")  # the last choice: a new class
    assert page.eval_on_selector("#intake-target", "s => s.selectedOptions[0].textContent") == "New class…"
    tab_to("#intake-name")
    page.keyboard.type("owls")
    tab_to("#intake-pick")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files([str(p) for p in files])
    assert_outcomes(page)
    tab_to("#intake-undo")
    page.keyboard.press("Enter")
    assert_undone(page, images)

    tab_to("#classes-open")
    page.keyboard.press("Enter")
    page.wait_for_selector("#classes-dialog[open]")
    assert page.evaluate("document.activeElement.id") == "rename-from"
    page.keyboard.press("Home")  # circles
    tab_to("#rename-to", 5)
    page.keyboard.type("rings")
    tab_to("#rename-go", 5)
    page.keyboard.press("Enter")
    page.wait_for_selector('.filter[data-label="rings"]')
    assert "circles" not in scan_dataset(images).labels
    page.keyboard.press("u")
    page.wait_for_selector('.filter[data-label="circles"]')
    assert "rings" not in scan_dataset(images).labels


@pytest.mark.slow
def test_the_same_flow_by_touch_on_a_phone(browser, site, tmp_path, artifacts):
    srv, images = site
    files = six_files(images, tmp_path)
    ctx = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(15_000)
    intercept_file_choosers(pg)
    try:
        pg.goto(f"{srv.url}/ui/dataset")
        pg.wait_for_selector(".tile")

        def tap(selector: str) -> None:
            node = pg.locator(selector)
            node.scroll_into_view_if_needed()
            box = node.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, f"{selector} is cut off"
            node.tap()

        tap("#intake-target")
        pg.select_option("#intake-target", label="New class…")
        tap("#intake-name")
        pg.keyboard.type("owls")
        with pg.expect_file_chooser() as chooser:
            tap("#intake-pick")
        chooser.value.set_files([str(p) for p in files])
        assert_outcomes(pg)
        pg.screenshot(path=str(artifacts / "intake-phone.png"), full_page=True)
        tap("#intake-undo")
        assert_undone(pg, images)
        tap("#intake-dismiss")
        assert pg.locator("#intake-result").is_hidden()

        tap("#classes-open")
        tap('#merge-sources input[value="squares"]')
        tap('#merge-sources input[value="stripes"]')
        tap("#merge-into")
        pg.keyboard.type("angular")
        tap("#merge-go")
        pg.wait_for_selector('.filter[data-label="angular"]')
        assert scan_dataset(images).labels == ["angular", "circles"]
    finally:
        ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.mark.slow
def test_the_try_page_adds_its_image_to_a_class_and_to_the_pool(page, ui_run, predictor, tmp_path):
    images = copy_dataset(ui_run["images"], tmp_path / "images")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(noise_jpeg(50, size=96))
    with serve_ui(predictor, images, ui_run["run"], tmp_path / "thumbs") as srv:
        page.goto(f"{srv.url}/ui/try")
        page.wait_for_selector("#model-info:not(:has-text('Loading'))")
        page.set_input_files("#file", str(photo))
        page.wait_for_selector(".outcome[data-state=done] .try-add")
        page.click(".try-add button:has-text('Add to class…')")
        page.click('.try-add-menu button[data-label="stripes"]')
        page.wait_for_selector(".try-add-status:has-text('Added to class stripes as stripes/photo.jpg')")
        assert (images / "stripes" / "photo.jpg").read_bytes() == photo.read_bytes()
        page.click(".try-add button:has-text('Add to pool')")
        page.wait_for_selector(".try-add-status:has-text('the same file as stripes/photo.jpg')")
        page.click(".try-add-status button:has-text('Add anyway')")
        page.wait_for_selector(".try-add-status:has-text('Added to the pool as _unlabeled/photo.jpg')")
        page.focus(".try-add button:has-text('Add to class…')")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.closest('.try-add-menu') !== null")
        page.keyboard.press("Escape")
        assert page.locator(".try-add-menu").is_hidden()


@pytest.mark.slow
def test_a_folder_picked_adds_every_image_in_it(page, site, tmp_path):
    srv, images = site
    folder = tmp_path / "holiday"
    (folder / "day2").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(noise_jpeg(71))
    (folder / "day2" / "b.jpg").write_bytes(noise_jpeg(72))
    intercept_file_choosers(page)
    page.goto(f"{srv.url}/ui/dataset")
    page.wait_for_selector(".tile")
    page.select_option("#intake-target", label="Pool (no class yet)")
    with page.expect_file_chooser() as chooser:
        page.click("#intake-pick-folder")
    chooser.value.set_files(str(folder))
    page.wait_for_selector("#intake-summary:has-text('2 images added to the pool')")
    assert sorted(it.rel for it in scan_dataset(images).pool) == ["_unlabeled/a.jpg", "_unlabeled/b.jpg"]
