"""The UI's Try and map endpoints run through the service's batcher, like /predict: the same queue,
pixel budget, deadline and memory bounds, and no engine call outside the batcher's one thread."""
from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from memutil import peak_rss
from PIL import Image
from ui_helpers import serve_ui
import web


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


BIG_SIDE = 4000  # 16 MP: 48 MB once decoded, 100 times the pixels the model reads
DECODING_AT_ONCE = 2  # the server's decode budget (serve.max_request_pixels) holds two of them at a time


def _big_png(side: int = BIG_SIDE) -> bytes:
    """A PNG of side × side pixels that compresses to some tens of KB (bands of colour)."""
    x = np.zeros((side, side, 3), dtype=np.uint8)
    x[:, :, 0] = (np.arange(side) // 700 * 25).astype(np.uint8)[None, :]
    x[:, :, 2] = (np.arange(side) // 900 * 30).astype(np.uint8)[:, None]
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def live(predictor, ui_run, tmp_path_factory):
    with serve_ui(predictor, ui_run["images"], ui_run["run"], tmp_path_factory.mktemp("thumbs")) as srv:
        yield srv.url


def test_eight_parallel_try_requests_are_all_answered_through_the_batcher(live, predictor):
    images = [_jpeg(i) for i in range(8)]
    before = _metric(web.get(live + "/metrics").text, "imgclf_images_total")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: web.post(live + "/ui/api/predict", content=data, timeout=120), images))
    assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers if r.status_code != 200]
    for data, r in zip(images, answers):
        expected = predictor.predict([data])[0]
        assert r.json()["scores"] == pytest.approx(expected["scores"], abs=1e-4)
        assert r.json()["labels"] == list(predictor.labels)
    after = _metric(web.get(live + "/metrics").text, "imgclf_images_total")
    assert after - before == 8, "every Try image is counted by the batcher, as /predict's are"


@pytest.mark.slow
def test_try_loop_beside_a_predict_loop_never_fails(live):
    failures: list[str] = []

    def loop(path: str, seed: int) -> None:
        with web.client(timeout=120) as c:
            for i in range(12):
                data = _jpeg(seed + i)
                r = c.post(live + path, content=data, headers={"content-type": "image/jpeg"})
                if r.status_code != 200:
                    failures.append(f"{path}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=loop, args=(path, 100 * k)) for k, path in
               enumerate(["/ui/api/predict", "/predict", "/ui/api/predict", "/predict"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    text = web.get(live + "/metrics").text
    assert _metric(text, "imgclf_internal_errors_total") == 0


@pytest.mark.slow
def test_sixteen_parallel_huge_pngs_to_try_keep_memory_bounded(predictor, ui_run, tmp_path):
    """The decode budget bounds the Try path's memory: 16 images decoded at once would take 768 MB, the
    budget lets two at a time take about 100 MB (the bound leaves room for the threads and the allocator)."""
    data = _big_png()
    assert len(data) < 1_000_000
    budget = DECODING_AT_ONCE * BIG_SIDE**2
    with serve_ui(predictor, ui_run["images"], ui_run["run"], tmp_path / "thumbs", max_request_pixels=budget) as srv:
        with peak_rss() as rss, ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: web.post(srv.url + "/ui/api/predict", content=data, timeout=300), range(16)))
    assert [r.status_code for r in answers] == [200] * 16, [r.text[:200] for r in answers if r.status_code != 200]
    assert rss.grew_mb < 512, f"the server grew {rss.grew_mb:.0f} MB over its idle RSS"


@pytest.mark.slow
def test_ui_maps_meet_the_service_limits(predictor, ui_run, tmp_path):
    """The map endpoint admits its image like /explain: over the pixel budget it is a 413, counted."""
    with serve_ui(predictor, ui_run["images"], ui_run["run"], tmp_path / "thumbs", max_request_pixels=5000) as srv:
        r = web.get(srv.url + "/ui/api/explain", params={"result": 0})
        assert r.status_code == 413 and r.json()["reason"] == "pixel_budget", r.text
        assert 'imgclf_rejected_total{reason="pixel_budget"} 1.0' in web.get(srv.url + "/metrics").text
    with serve_ui(predictor, ui_run["images"], ui_run["run"], tmp_path / "thumbs") as srv:
        r = web.get(srv.url + "/ui/api/explain", params={"result": 0, "format": "json"})
        body = r.json()
        assert r.status_code == 200 and body["label"] in (*predictor.labels, "unknown", "uncertain"), r.text
        assert body.get("nearest_label", body["label"]) in predictor.labels  # the map is drawn for a known class
