"""The Try page: uploaded images classified (one, several, none without a model), and the trust fields of
its predictions (ood_score, unknown, nearest_label: "unknown" as label when it fires) over HTTP and on the page."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from ui_helpers import CLASSES, serve_ui, wait_images_loaded


def _far_png() -> bytes:
    """A smooth colour ramp: like none of the generated texture classes."""
    ramp = np.linspace(0, 255, 224, dtype=np.float32)
    img = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (224, 1)), np.full((224, 224), 90.0)], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.browser
def test_try_page_classifies_an_uploaded_image(page, server, predictor, dataset, artifacts):
    image = dataset / "stripes" / "stripes_003.jpg"
    expected = predictor.predict([image])[0]
    page.goto(f"{server.url}/ui/try")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    page.locator("#file").set_input_files(str(image))
    page.wait_for_selector(".outcome[data-label]")
    outcome = page.locator(".outcome").first
    assert outcome.locator(".pred-label").inner_text() == expected["label"]
    assert outcome.locator(".pred-score").inner_text() == f"score {100 * expected['score']:.1f}%"
    assert outcome.locator(".barrow").count() == len(CLASSES)
    assert outcome.locator(".barrow.pred").get_attribute("data-label") == expected["label"]
    wait_images_loaded(page, ".outcome .preview")
    page.screenshot(path=str(artifacts / "try.png"))

    bad = dataset.parent / "notes.jpg"
    bad.write_bytes(b"this is not an image")
    page.locator("#file").set_input_files(str(bad))
    page.wait_for_selector('.outcome[data-state="error"]')
    assert "not a usable image" in page.locator('.outcome[data-state="error"]').inner_text()
    assert page.locator(".outcome[data-label]").count() == 1, "the good image's answer stays"


@pytest.mark.slow
@pytest.mark.browser
def test_try_page_classifies_several_images_at_once(page, server, predictor, dataset, artifacts):
    files = [dataset / c / f"{c}_00{k}.jpg" for k, c in enumerate(CLASSES)]
    expected = [r["label"] for r in predictor.predict(files)]
    page.goto(f"{server.url}/ui/try")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    page.locator("#file").set_input_files([str(f) for f in files])
    page.wait_for_function("document.getElementById('try-count').textContent === '3 of 3 images classified'")
    shown = page.eval_on_selector_all(".outcome", "os => os.map(o => [o.querySelector('.name').textContent, o.dataset.label])")
    page.screenshot(path=str(artifacts / "try-several.png"), full_page=True)
    assert sorted(map(tuple, shown)) == sorted(zip([f.name for f in files], expected))
    page.locator("#try-clear").click()
    assert page.locator(".outcome").count() == 0


@pytest.mark.slow
@pytest.mark.browser
def test_try_page_without_a_model_says_so_and_sends_nothing(browser, ui_run, tmp_path):
    with serve_ui(None, ui_run["images"], None, tmp_path / "thumbs") as srv:
        pg = browser.new_page()
        sent = []
        pg.on("request", lambda r: sent.append(r.url) if "api/predict" in r.url else None)
        pg.goto(f"{srv.url}/ui/try")
        pg.wait_for_selector("#no-model:not([hidden])")
        assert "No model loaded" in pg.locator("#no-model").inner_text()
        assert pg.locator("#file").is_disabled()
        assert pg.locator("#pick").get_attribute("aria-disabled") == "true"
        pg.evaluate("""() => { const dt = new DataTransfer(); dt.items.add(new File(['x'], 'a.jpg', { type: 'image/jpeg' }));
                              document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true })); }""")
        pg.wait_for_function("document.getElementById('error').textContent.includes('No model loaded')")
        assert sent == [] and pg.locator(".outcome").count() == 0
        pg.close()


def test_try_predictions_carry_the_unknown_answer(client, predictor, dataset):
    known = client.post("/ui/api/predict", content=(dataset / "circles" / "circles_004.jpg").read_bytes()).json()
    assert known["unknown"] is False and known["label"] == known["nearest_label"] == "circles"
    assert known["ood_score"] <= predictor.compute.unknown_threshold
    far = client.post("/ui/api/predict", content=_far_png()).json()
    assert far["unknown"] is True and far["label"] == "unknown" and far["nearest_label"] in predictor.labels
    assert far["ood_score"] > predictor.compute.unknown_threshold
    assert sum(far["scores"].values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
@pytest.mark.browser
def test_try_page_shows_unknown_with_the_nearest_class(page, server, predictor, dataset, tmp_path):
    far = tmp_path / "ramp.png"
    far.write_bytes(_far_png())
    known = dataset / "circles" / "circles_004.jpg"
    page.goto(f"{server.url}/ui/try")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    page.locator("#file").set_input_files([str(far), str(known)])
    page.wait_for_function("document.getElementById('try-count').textContent === '2 of 2 images classified'")
    outcomes = {o.locator(".name").text_content(): o for o in page.locator(".outcome").all()}
    ramp, circle = outcomes["ramp.png"], outcomes[known.name]
    assert ramp.get_attribute("data-label") == "unknown"
    assert ramp.locator(".pred-label").text_content() == "Unknown"
    nearest = ramp.locator('.fact[data-key="nearest_label"] b').text_content()
    assert nearest in predictor.labels
    assert float(ramp.locator('.fact[data-key="ood_score"] b').text_content()) > predictor.compute.unknown_threshold
    assert circle.get_attribute("data-label") == "circles" and circle.locator(".pred-label").text_content() == "circles"
