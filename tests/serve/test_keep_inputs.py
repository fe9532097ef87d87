"""serve.keep_inputs: the service keeps the images it is asked about, once each, with its answer, within a quota
and a rate, in the dataset's pool; off by default; nothing from requests that fail authentication."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from datagen import make_dataset
from netutil import free_port
from serve_helpers import jpeg, metric

from imgclf.config.settings import ServeConfig
from imgclf.data.dataset import scan_dataset
from imgclf.data.images import decode_image
from imgclf.data.kept import INDEX, read_kept
from imgclf.serve.app import create_app
from imgclf.serve.keeper import keep_place
from imgclf.serve.server import ServerThread

KEEP = {"keep_inputs": True, "keep_rate_per_min": 0}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A small dataset folder; the kept images go to its pool (_unlabeled)."""
    return make_dataset(tmp_path / "images", n_per_class=2, seed=3)


@contextlib.contextmanager
def keeping(predictor, images: Path, token: str | None = None, ui: bool = False, **serve: object) -> Iterator[tuple[str, object]]:
    """(URL, app) of a real server keeping into ``images``' pool (the default place) with ``serve`` settings."""
    cfg = ServeConfig(**serve)
    place = keep_place(cfg, images) if cfg.keep_inputs else None
    if ui:
        from imgclf.ui import create_ui_app

        app = create_ui_app(predictor, cfg, token=token, keep_into=place, images_dir=str(images), run_dir=None)
    else:
        app = create_app(predictor, cfg, token=token, keep_into=place)
    with ServerThread(app, cfg) as srv:
        yield srv.url, app


def settled(c: httpx.Client, url: str, n: int, headers: dict | None = None) -> str:
    """/metrics once the keeper has dealt with ``n`` answered images (kept, repeated or dropped) and saved its record."""
    until = time.monotonic() + 120
    while True:
        text = c.get(url + "/metrics", headers=headers).text
        dropped = sum(metric(text, "imgclf_keep_dropped_total", reason=r)
                      for r in ("queue_full", "rate", "over_quota", "unusable", "write_failed"))
        done = metric(text, "imgclf_kept_images_total") + metric(text, "imgclf_kept_repeats_total") + dropped
        if done >= n:
            time.sleep(1.5)  # the record is saved within FLUSH_S once the queue is empty
            return c.get(url + "/metrics", headers=headers).text
        assert time.monotonic() < until, f"the keeper dealt with {done} of {n} images"
        time.sleep(0.05)


def kept_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name.startswith("kept-")}


def predict(c: httpx.Client, url: str, data: bytes, **kw) -> httpx.Response:
    return c.post(url + "/predict", files={"files": ("x.jpg", data, "image/jpeg")}, **kw)


@pytest.mark.slow
def test_100_calls_of_50_images_keep_each_once_in_the_pool_within_the_quota(predictor, images, client):
    pictures = [jpeg(seed) for seed in range(50)]
    with keeping(predictor, images, keep_quota_mb=1.0, **KEEP) as (url, _):
        answers = {}
        for i in range(100):
            r = predict(client, url, pictures[i % 50])
            assert r.status_code == 200, r.text
            answers[i % 50] = r.json()["predictions"][0]
        text = settled(client, url, 100)
    pool = images / "_unlabeled"
    files = kept_files(pool)
    assert len(files) == 50
    assert metric(text, "imgclf_kept_images_total") == 50 and metric(text, "imgclf_kept_repeats_total") == 50
    assert sum(map(len, files.values())) <= 1024 * 1024
    assert metric(text, "imgclf_kept_bytes") == sum(map(len, files.values()))
    for name, data in files.items():  # named by content, the bytes sent unchanged
        assert name == f"kept-{hashlib.sha256(data).hexdigest()}.jpg"
    assert sorted(files.values()) == sorted(pictures)
    records = read_kept(pool)
    assert len(records) == 50 and {k.times_asked for k in records.values()} == {2}
    for i, data in enumerate(pictures):
        k = records[f"kept-{hashlib.sha256(data).hexdigest()}.jpg"]
        assert (k.answer, k.score, k.unknown) == (answers[i]["label"], answers[i]["score"], bool(answers[i].get("unknown")))
        assert k.first_asked <= k.last_asked and k.first_asked.endswith("Z")
    ds = scan_dataset(images)  # kept images are pool images, never a class
    assert sorted(Path(it.path).name for it in ds.pool) == sorted(files)
    assert all(not it.from_pool for it in ds.items)


def test_off_by_default_keeps_nothing(predictor, images, client):
    assert ServeConfig().keep_inputs is False
    with keeping(predictor, images, keep_dir=str(images / "_unlabeled")) as (url, app):
        for seed in range(5):
            assert predict(client, url, jpeg(seed)).status_code == 200
        text = client.get(url + "/metrics").text
        assert app.state.imgclf.keeper is None
    assert not (images / "_unlabeled").exists()
    assert metric(text, "imgclf_kept_images_total") == 0


@pytest.mark.slow
def test_the_oldest_are_evicted_first_under_a_tiny_quota(predictor, images, client):
    pictures = [jpeg(seed, size=128) for seed in range(10)]
    quota_mb = 3.5 * max(map(len, pictures)) / 2**20
    quota = int(quota_mb * 1024 * 1024)
    with keeping(predictor, images, keep_quota_mb=quota_mb, **KEEP) as (url, _):
        for data in pictures:  # one at a time: the order kept is the order sent
            assert predict(client, url, data).status_code == 200
        text = settled(client, url, len(pictures))
    newest, total = [], 0
    for data in reversed(pictures):
        if total + len(data) > quota:
            break
        newest.append(data)
        total += len(data)
    files = kept_files(images / "_unlabeled")
    assert sorted(files.values()) == sorted(newest) and 2 <= len(newest) < 10
    assert metric(text, "imgclf_kept_evicted_total") == 10 - len(newest)
    assert sorted(k.file for k in read_kept(images / "_unlabeled").values()) == sorted(files)


@pytest.mark.slow
def test_the_rate_cap_drops_new_images_and_counts_them(predictor, images, client):
    with keeping(predictor, images, keep_inputs=True, keep_rate_per_min=3) as (url, _):
        for seed in range(8):
            assert predict(client, url, jpeg(seed)).status_code == 200
        assert predict(client, url, jpeg(0)).status_code == 200  # kept already: its count goes up, nothing dropped
        text = settled(client, url, 9)
    assert metric(text, "imgclf_kept_images_total") == 3
    assert metric(text, "imgclf_keep_dropped_total", reason="rate") == 5
    assert metric(text, "imgclf_kept_repeats_total") == 1
    assert len(kept_files(images / "_unlabeled")) == 3


@pytest.mark.slow
def test_requests_that_fail_authentication_keep_nothing(predictor, images, client):
    with keeping(predictor, images, token="s3cret", **KEEP) as (url, _):
        for seed in range(4):
            assert predict(client, url, jpeg(seed)).status_code == 401
            assert predict(client, url, jpeg(seed), headers={"Authorization": "Bearer wrong"}).status_code == 401
            body = {"input_df": [{"image base64 string": base64.b64encode(jpeg(seed)).decode()}]}
            assert client.post(url + "/score", json=body).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert predict(client, url, jpeg(99), headers=auth).status_code == 200
        text = settled(client, url, 1, headers=auth)
    assert list(kept_files(images / "_unlabeled").values()) == [jpeg(99)]
    assert metric(text, "imgclf_kept_images_total") == 1


@pytest.mark.slow
def test_every_route_that_answers_keeps_through_the_one_service_path(predictor, images, client):
    data = {name: jpeg(seed) for seed, name in enumerate(["predict", "score", "v2", "ui"])}
    b64 = {k: base64.b64encode(v).decode() for k, v in data.items()}
    with keeping(predictor, images, ui=True, **KEEP) as (url, _):
        labels = {"predict": predict(client, url, data["predict"]).json()["predictions"][0]["label"],
                  "score": client.post(url + "/score", json={"input_df": [{"image base64 string": b64["score"]}]}).json()["label"]}
        v2 = client.post(url + "/v2/models/imgclf/infer",
                         json={"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64["v2"]]}]}).json()
        labels["v2"] = next(o for o in v2["outputs"] if o["name"] == "label")["data"][0]
        labels["ui"] = client.post(url + "/ui/api/predict", content=data["ui"]).json()["label"]
        assert client.post(url + "/predict", content=b"not an image").status_code == 400  # refused: nothing to keep
        text = settled(client, url, 4)
    records = read_kept(images / "_unlabeled")
    assert metric(text, "imgclf_kept_images_total") == 4 and len(records) == 4
    for route, d in data.items():
        assert records[f"kept-{hashlib.sha256(d).hexdigest()}.jpg"].answer == labels[route], route


@pytest.mark.slow
def test_an_image_the_decoder_refuses_is_not_kept(predictor, images, client):
    """The keeper checks every image with the safe decoder itself, whoever hands it over: a JPEG cut short, offered
    straight to the keeper, is dropped as unusable and never reaches the pool."""
    with keeping(predictor, images, **KEEP) as (url, app):
        ok = jpeg(5)
        cut = ok[: len(ok) // 2]  # its header is whole, its data cut short
        keeper = app.state.imgclf.keeper
        pred = app.state.imgclf.predictor
        rows = pred.compute.rows([pred.compute.prepare(ok)])
        proba, ood = pred.compute.split(rows)
        keeper.offer([cut, ok], proba.repeat(2, axis=0), None if ood is None else ood.repeat(2), pred.compute)
        text = settled(client, url, 2)
    assert metric(text, "imgclf_keep_dropped_total", reason="unusable") == 1
    assert list(kept_files(images / "_unlabeled").values()) == [ok]
    for p in scan_dataset(images).pool:
        decode_image(p.path)
    assert (images / "_unlabeled" / INDEX).is_file()


def test_where_kept_images_go(tmp_path, images, bundle_dir, capsys):
    from imgclf.cli import main
    from imgclf.rundir.layout import RunDir
    from imgclf.util.errors import ConfigError

    cfg = ServeConfig(keep_inputs=True)
    assert keep_place(cfg, images).folder == (images / "_unlabeled").resolve() and (images / "_unlabeled").is_dir()
    assert keep_place(cfg, images, "inbox").folder == (images / "inbox").resolve()
    named = keep_place(ServeConfig(keep_inputs=True, keep_dir=str(tmp_path / "kept")), images)
    assert (named.folder, named.dataset) == ((tmp_path / "kept").resolve(), None)  # outside the dataset: no annotations to read
    with pytest.raises(ConfigError, match="serve.keep_dir is not set") as e:
        keep_place(cfg, None)
    assert "serve.keep_dir" in e.value.hint

    # imgclf serve: the pool of the dataset of the run the bundle lies in; a bundle alone needs serve.keep_dir
    alone = tmp_path / "alone" / "model"
    shutil.copytree(bundle_dir, alone)
    assert main(["serve", str(alone), "--port", str(free_port()), "--set", "serve.keep_inputs=true"]) == 2
    err = capsys.readouterr().err
    assert "serve.keep_inputs is on but serve.keep_dir is not set" in err and "the bundle is not inside a run directory" in err
    saved = RunDir(bundle_dir.parent).saved_config()
    saved.data.images = str(tmp_path / "moved")
    RunDir(tmp_path / "alone").save_config(saved)
    assert main(["serve", str(alone), "--port", str(free_port()), "--set", "serve.keep_inputs=true"]) == 2
    assert f"the model's dataset folder {tmp_path / 'moved'} does not exist here" in capsys.readouterr().err


def test_a_full_queue_drops_and_counts_never_waits(tmp_path):
    """The keeper's queue holds QUEUE_IMAGES images and QUEUE_BYTES bytes at most; beyond, offer drops at once."""
    import numpy as np

    from imgclf.serve.keeper import QUEUE_BYTES, QUEUE_IMAGES, Keeper, KeepPlace
    from imgclf.serve.metrics import Metrics

    for images, dropped in (([jpeg(i) for i in range(QUEUE_IMAGES + 6)], 6),  # too many images
                            ([b"x" * (QUEUE_BYTES // 2)] * 3, 1)):  # too many bytes: the third one
        metrics = Metrics()
        keeper = Keeper(KeepPlace(tmp_path / "kept"), ServeConfig(keep_inputs=True), metrics)  # its worker not started
        keeper.offer(images, np.full((len(images), 3), 1 / 3), None, None)
        assert metric(metrics.render().decode(), "imgclf_keep_dropped_total", reason="queue_full") == dropped
        keeper.close(timeout=0)
