"""The try page's prediction carries the trust fields: ood_score, unknown, nearest_label ("unknown" as label when it fires)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


def _far_png() -> bytes:
    """A smooth colour ramp: like none of the generated texture classes."""
    ramp = np.linspace(0, 255, 224, dtype=np.float32)
    img = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (224, 1)), np.full((224, 224), 90.0)], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def test_try_predictions_carry_the_unknown_answer(client, predictor, dataset):
    known = client.post("/ui/api/predict", content=(dataset / "circles" / "circles_004.jpg").read_bytes()).json()
    assert known["unknown"] is False and known["label"] == known["nearest_label"] == "circles"
    assert known["ood_score"] <= predictor.unknown_threshold
    far = client.post("/ui/api/predict", content=_far_png()).json()
    assert far["unknown"] is True and far["label"] == "unknown" and far["nearest_label"] in predictor.labels
    assert far["ood_score"] > predictor.unknown_threshold
    assert sum(far["scores"].values()) == pytest.approx(1.0, abs=1e-5)


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
    assert float(ramp.locator('.fact[data-key="ood_score"] b').text_content()) > predictor.unknown_threshold
    assert circle.get_attribute("data-label") == "circles" and circle.locator(".pred-label").text_content() == "circles"
