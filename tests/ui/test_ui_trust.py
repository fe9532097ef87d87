"""The try page's prediction carries the trust fields: ood_score, unknown, nearest_label ("unknown" as label when it fires)."""
from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_try_predictions_carry_the_unknown_answer(client, predictor, dataset):
    known = client.post("/ui/api/predict", content=(dataset / "circles" / "circles_004.jpg").read_bytes()).json()
    assert known["unknown"] is False and known["label"] == known["nearest_label"] == "circles"
    assert known["ood_score"] <= predictor.unknown_threshold
    ramp = np.linspace(0, 255, 224, dtype=np.float32)
    img = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (224, 1)), np.full((224, 224), 90.0)], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    far = client.post("/ui/api/predict", content=buf.getvalue()).json()
    assert far["unknown"] is True and far["label"] == "unknown" and far["nearest_label"] in predictor.labels
    assert far["ood_score"] > predictor.unknown_threshold
    assert sum(far["scores"].values()) == pytest.approx(1.0, abs=1e-5)
