"""A run of 14 classes in a real browser: the confusion matrix has room for every column at laptop and
desktop widths and its numbers read at 4.5:1; class colours past the tenth keep white text readable;
Label next reaches every class by its menu; the Results viewer never cuts the prediction short."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from datagen import make_image
from ui_helpers import tiny_config

from imgclf.data.annotations import current_state

pytestmark = pytest.mark.browser
SHAPES = ("circles", "squares", "stripes")
CLASSES = [f"{SHAPES[k % 3]}_{k:02d}" for k in range(14)]
LONG = "photographed_on_a_long_summer_afternoon_beside_the_river_with_a_phone"  # file names the viewer must cut


@pytest.fixture(scope="module")
def many(tmp_path_factory, predictor):
    """The UI over a real run on 14 classes (5 images each, long file names) with 4 pool images."""
    from imgclf.api import run

    base = tmp_path_factory.mktemp("many_classes")
    images = base / "images"
    rng = np.random.default_rng(3)
    for cls in CLASSES:
        (images / cls).mkdir(parents=True)
        for i in range(5):
            make_image(cls.split("_")[0], rng).save(images / cls / f"{LONG}_{i:03d}.jpg", quality=90)
    (images / "_unlabeled").mkdir()
    for i in range(4):
        make_image(SHAPES[i % 3], rng).save(images / "_unlabeled" / f"p{i}.jpg", quality=90)
    run(tiny_config(base / "data", images), base / "run", progress=False)
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    app = create_ui_app(predictor, ServeConfig(), images_dir=str(images), run_dir=str(base / "run"), thumbs_dir=str(base / "thumbs"))
    with ServerThread(app) as srv:
        srv.images = images
        yield srv
    shutil.rmtree(base, ignore_errors=True)


_RGB = re.compile(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)")


def _rgb(css: str, under=(255, 255, 255)) -> tuple[float, float, float]:
    """A computed CSS colour as RGB, a translucent one laid over ``under``."""
    r, g, b, a = _RGB.fullmatch(css.strip()).groups()
    a = 1.0 if a is None else float(a)
    return tuple(a * float(c) + (1 - a) * u for c, u in zip((r, g, b), under))


def _contrast(fg, bg) -> float:
    def lum(c):
        lin = [v / 255 / 12.92 if v / 255 <= 0.03928 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _text_contrasts(pg, selector: str) -> list[tuple[str, float]]:
    styles = pg.eval_on_selector_all(selector, "ns => ns.map(n => [n.textContent, getComputedStyle(n).color, getComputedStyle(n).backgroundColor])")
    return [(text, _contrast(_rgb(fg, _rgb(bg)), _rgb(bg))) for text, fg, bg in styles]


@pytest.mark.slow
@pytest.mark.parametrize("width", [1366, 1920])
def test_confusion_matrix_shows_every_column_and_reads_at_4_5(many, browser, width):
    pg = browser.new_page(viewport={"width": width, "height": 900})
    pg.goto(f"{many.url}/ui/results")
    pg.wait_for_selector("#cm .cell")
    assert pg.locator("#cm tbody tr").count() == len(CLASSES)
    wrap = pg.locator("#cm").bounding_box()
    last = pg.eval_on_selector_all("#cm tbody tr:first-child .cell", "cs => cs.map(c => c.getBoundingClientRect().right)")
    assert len(last) == len(CLASSES)
    assert max(last) <= min(wrap["x"] + wrap["width"], width) + 1, f"columns cut at {width} px: {last} vs {wrap}"
    low = [(t, round(c, 2)) for t, c in _text_contrasts(pg, "#cm .cell") if c < 4.5]
    assert not low, f"cells whose number reads below 4.5:1: {low}"
    pg.close()


@pytest.mark.slow
def test_class_colours_past_the_tenth_keep_white_text_readable(many, page):
    page.goto(f"{many.url}/ui/dataset")
    page.wait_for_selector(".tile .badge")
    shown = {t for t, _ in _text_contrasts(page, ".tile .badge:not(.pool)")}  # pool images show their status
    assert shown == set(CLASSES), "every class has a badge on the first page"
    low = sorted({(t, round(c, 2)) for t, c in _text_contrasts(page, ".tile .badge") if c < 4.5})
    assert not low, f"class badges below 4.5:1: {low}"


@pytest.mark.slow
def test_label_next_gives_any_class_from_its_menu(many, page):
    page.goto(f"{many.url}/ui/label")
    page.wait_for_selector(".ln-card")
    menu = page.locator("#ln-class-menu")
    assert menu.locator("option[value]:not([value=''])").count() == len(CLASSES)
    first = page.locator(".ln-card").first.get_attribute("data-path")
    menu.select_option(CLASSES[-1])  # the 14th class: no digit key reaches it
    page.wait_for_selector(f'.ln-card[data-path="{first}"][data-label="{CLASSES[-1]}"]')
    second = page.locator('.ln-card[aria-selected="true"]').get_attribute("data-path")
    menu.select_option(CLASSES[9])
    page.wait_for_selector(f'.ln-card[data-path="{second}"][data-label="{CLASSES[9]}"]')
    state = current_state(many.images)
    assert {p: a.label for p, a in state.items()} == {first: CLASSES[-1], second: CLASSES[9]}
    page.keyboard.press("u")
    page.keyboard.press("u")
    page.wait_for_function("() => document.querySelectorAll('.ln-card[data-status=\"labelled\"]').length === 0")


@pytest.mark.slow
def test_results_viewer_never_cuts_the_prediction(many, page):
    page.goto(f"{many.url}/ui/results")
    page.wait_for_selector(".result .thumbwrap")
    page.locator(".result .thumbwrap").first.click()
    page.wait_for_selector("dialog#viewer[open]")
    title = page.evaluate("() => { const t = document.getElementById('viewer-title');"
                          " return [t.textContent, t.scrollWidth, t.clientWidth]; }")
    assert "predicted" not in title[0] or title[1] <= title[2], f"the title cuts the prediction: {title}"
    bar = page.locator("#viewer .bar").inner_text()
    card = page.locator('.result[aria-current="true"]').get_attribute("aria-label")
    predicted = re.search(r"predicted (\S+) ([\d.]+%)", card)
    assert predicted and f"{predicted[1]}" in bar and predicted[2] in bar, (bar, card)
