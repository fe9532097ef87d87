"""The UI's JSON API over HTTP against a live server: paths, corrections, thumbnails, results, predict."""
from __future__ import annotations

import io
import os

import httpx
import pytest
from PIL import Image
from ui_helpers import CLASSES, STRAYS, files_per_class
import web

from imgclf.data.annotations import LOCK_FILENAME, current_state, read_history
from imgclf.util.files import read_csv, read_json, sha256_file


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] and body["reason"]
    return body["error"]


@pytest.mark.parametrize("bad, status", [
    ("../images/circles/circles_000.jpg", 400), ("/etc/passwd", 400), ("circles/../../run/config.json", 400),
    ("circles\\..\\..\\x.jpg", 400), ("./circles/circles_000.jpg", 400), ("", 400), ("circles/\x00.jpg", 400),
    ("circles/missing.jpg", 404), ("annotations.csv", 404), ("circles", 404),
])
def test_paths_that_are_not_listed_images_are_refused(client, dataset, bad, status):
    for r in (client.get("/ui/api/thumb", params={"path": bad}),
              client.post("/ui/api/annotate", json={"path": bad, "action": "exclude"})):
        _error(r, status)
    assert not (dataset / "annotations.csv").exists()


def test_url_encoded_traversal_is_refused(client):
    r = client.get("/ui/api/thumb?path=%2e%2e%2f%2e%2e%2fetc%2fpasswd")
    assert "without '..'" in _error(r, 400)


def test_a_symlink_leading_out_of_the_dataset_is_refused(client, dataset, tmp_path):
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (20, 20), (255, 0, 0)).save(outside)
    link = dataset / "circles" / "zz_link.jpg"
    os.symlink(outside, link)
    try:
        r = client.get("/ui/api/images", params={"refresh": "true", "q": "zz_link"})
        assert r.json()["items"] == [], "the scan leaves it out"
        assert "outside the dataset folder" in _error(client.get("/ui/api/thumb", params={"path": "circles/zz_link.jpg"}), 400)
    finally:
        link.unlink()
        client.get("/ui/api/images", params={"refresh": "true"})


def test_listing_pages_cover_every_image_once_in_folder_order(client, dataset):
    files = files_per_class(dataset)
    seen = []
    for offset in range(0, 60, 20):
        page = client.get("/ui/api/images", params={"offset": offset, "limit": 20}).json()
        assert page["total"] == sum(map(len, files.values()))
        seen += [(it["original"], it["path"]) for it in page["items"]]
    assert seen == [(c, rel) for c in CLASSES for rel in files[c]]
    one = client.get("/ui/api/images", params={"label": "squares", "q": "STRAY"}).json()
    assert [it["path"] for it in one["items"]] == [f"squares/stray_{j:03d}.jpg" for j in range(STRAYS)]
    _error(client.get("/ui/api/images", params={"label": "dogs"}), 400)
    _error(client.get("/ui/api/images", params={"status": "lost"}), 400)
    _error(client.get("/ui/api/images", params={"limit": 0}), 422)
    _error(client.get("/ui/api/images", params={"offset": -1}), 422)


def test_corrections_are_recorded_with_history_and_counted(client, dataset):
    a, b = files_per_class(dataset)["circles"][:2]
    r = client.post("/ui/api/annotate", json={"path": a, "action": "relabel", "label": "stripes"}).json()
    assert r["item"] == {**r["item"], "path": a, "original": "circles", "label": "stripes", "status": "relabeled"}
    assert r["summary"]["counts"] == {"circles": 16, "squares": 17, "stripes": 18}
    client.post("/ui/api/annotate", json={"path": a, "action": "relabel", "label": "stripes"})  # the same again: no new row
    r = client.post("/ui/api/annotate", json={"path": b, "action": "ambiguous"}).json()
    assert r["item"]["label"] is None and r["item"]["status"] == "ambiguous"
    assert r["summary"]["statuses"] == {"unchanged": 49, "relabeled": 1, "excluded": 0, "ambiguous": 1, "pool": 0}
    r = client.post("/ui/api/annotate", json={"path": a, "action": "relabel", "label": "circles"}).json()
    assert r["item"]["status"] == "unchanged", "relabelling to the folder's class restores it"

    rows = read_csv(dataset / "annotations.csv")
    assert [(x["path"], x["original_label"], x["action"], x["label"]) for x in rows] == [
        (a, "circles", "relabel", "stripes"), (b, "circles", "ambiguous", ""), (a, "circles", "restore", "")]
    assert all(x["timestamp"] for x in rows)
    assert {p: x.action for p, x in current_state(dataset).items()} == {b: "ambiguous"}
    assert [x["path"] for x in client.get("/ui/api/history", params={"limit": 2}).json()["rows"]] == [a, b]

    assert "one of the classes" in _error(client.post("/ui/api/annotate", json={"path": a, "action": "relabel", "label": "dogs"}), 400)
    assert "action must be" in _error(client.post("/ui/api/annotate", json={"path": a, "action": "delete"}), 400)
    _error(client.post("/ui/api/annotate", json={"path": a}), 422)
    _error(client.post("/ui/api/annotate", content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert len(read_history(dataset)) == 3, "refused requests write nothing"
    kept = sorted(p.name for p in dataset.iterdir() if p.name != LOCK_FILENAME)  # the lock between processes stays
    assert kept == ["annotations.csv", *CLASSES], "no temp files, nothing moved"


def test_undo_walks_back_through_the_history(client, dataset):
    a, b = files_per_class(dataset)["squares"][:2]
    client.post("/ui/api/annotate", json={"path": a, "action": "relabel", "label": "circles"})
    client.post("/ui/api/annotate", json={"path": a, "action": "exclude"})
    client.post("/ui/api/annotate", json={"path": b, "action": "relabel", "label": "stripes"})
    states = []
    for _ in range(4):
        r = client.post("/ui/api/undo", json={}).json()
        states.append(None if r["undone"] is None else (r["item"]["path"], r["item"]["status"], r["item"]["label"]))
    assert states == [(b, "unchanged", "squares"), (a, "relabeled", "circles"), (a, "unchanged", "squares"), None]
    assert current_state(dataset) == {}
    assert [(x.action, x.undoes) for x in read_history(dataset)] == [
        ("relabel", ""), ("exclude", ""), ("relabel", ""), ("restore", "3"), ("relabel", "2"), ("restore", "1")]
    _error(client.post("/ui/api/undo", json={"path": "../x"}), 400)


def test_thumbnails_are_cached_by_content_and_never_the_original_bytes(client, dataset, ui_run):
    rel = files_per_class(dataset)["stripes"][0]
    r = client.get("/ui/api/thumb", params={"path": rel, "size": 128, "v": "1"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "immutable" in r.headers["cache-control"]
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "JPEG" and max(img.size) == 96, "small images are not enlarged"
    digest = sha256_file(dataset / rel)
    cached = ui_run["base"] / "thumbs" / digest[:2] / f"{digest}-128.jpg"
    assert cached.read_bytes() == r.content
    assert r.content != (dataset / rel).read_bytes()
    assert client.get("/ui/api/thumb", params={"path": rel, "size": 128}).headers["cache-control"] == "no-cache"
    assert "size must be one of" in _error(client.get("/ui/api/thumb", params={"path": rel, "size": 300}), 400)


def test_an_unreadable_image_gets_a_json_error_and_stays_listed(client, dataset):
    bad = dataset / "circles" / "zz_broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    try:
        items = client.get("/ui/api/images", params={"refresh": "true", "q": "zz_broken"}).json()["items"]
        assert [it["path"] for it in items] == ["circles/zz_broken.jpg"]
        assert "not a usable image" in _error(client.get("/ui/api/thumb", params={"path": "circles/zz_broken.jpg"}), 400)
        assert bad.exists(), "never deleted"
    finally:
        bad.unlink()
        client.get("/ui/api/images", params={"refresh": "true"})


def test_results_match_the_runs_predictions_and_metrics(client, ui_run, dataset):
    preds = read_csv(ui_run["run"] / "predictions.csv")
    metrics = read_json(ui_run["run"] / "metrics.json")
    body = client.get("/ui/api/results").json()
    assert body["labels"] == metrics["labels"] and body["confusion_matrix"] == metrics["confusion_matrix"]
    assert body["metrics"]["accuracy"] == metrics["accuracy"]
    assert len(body["items"]) == len(preds)
    for item, row in zip(body["items"], preds):
        assert (item["label"], item["predicted"], item["dataset_path"]) == (row["label"], row["predicted"], row["rel"])
        assert item["correct"] == (row["label"] == row["predicted"])
        assert sum(item["scores"].values()) == pytest.approx(1.0, abs=1e-6)
        assert max(item["scores"], key=item["scores"].get) == row["predicted"]
        assert "path" not in item, "absolute paths stay on the server"
    r = client.get(f"/ui/api/results/{len(preds) - 1}/thumb")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    for bad in (len(preds), -1):
        _error(client.get(f"/ui/api/results/{bad}/thumb"), 404)
    _error(client.get("/ui/api/results/abc/thumb"), 422)


def test_predict_answers_like_the_predictor(client, predictor, dataset):
    path = dataset / "circles" / "circles_004.jpg"
    r = client.post("/ui/api/predict", content=path.read_bytes(), headers={"content-type": "image/jpeg"}).json()
    expected = predictor.predict([path])[0]
    assert r["label"] == expected["label"] and r["labels"] == list(CLASSES)
    assert r["scores"] == pytest.approx(expected["scores"], abs=1e-4)
    assert "not a usable image" in _error(client.post("/ui/api/predict", content=b"hello"), 400)
    _error(client.post("/ui/api/predict", content=b""), 400)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="ICO")
    assert _error(client.post("/ui/api/predict", content=buf.getvalue()), 415)


def test_pages_and_static_files_are_served(client):
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/dataset"
    for name in ("dataset", "results", "try"):
        r = client.get(f"/ui/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert 'src="static/common.js"' in r.text and "http" not in r.text.replace("http-equiv", ""), "no CDN"
        assert f'src="static/{name}.js"' in r.text and "$" not in r.text, "the shared frame is filled in"
        assert r.text.count('aria-current="page"') == 1 and f'<a href="{name}" aria-current="page">' in r.text
    for name in ("ui.css", "common.js", "dataset.js", "results.js", "try.js"):
        assert client.get(f"/ui/static/{name}").status_code == 200
    r = client.get("/ui/results?token=abc&x=1", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/ui/results?x=1")


def test_without_dataset_or_run_the_api_says_what_to_pass(tmp_path):
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    app = create_ui_app(None, ServeConfig(), images_dir=None, run_dir=None, thumbs_dir=str(tmp_path))
    with ServerThread(app) as srv, web.client(base_url=srv.url) as c:
        assert "--images" in _error(c.get("/ui/api/images"), 404)
        assert "--run" in _error(c.get("/ui/api/results"), 404)
        assert "no model" in _error(c.post("/ui/api/predict", content=b"x"), 404)
        info = c.get("/ui/api/info").json()
        live = info.pop("live")
        assert info == {"dataset": None, "dataset_error": None, "run": None, "model": None,
                        "model_loading": False, "max_body_mb": ServeConfig().max_body_mb}
        assert live["chosen"] is None and live["published"] is None and live["runs"] is None
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    app = create_ui_app(None, ServeConfig(), images_dir=str(tmp_path / "empty"), run_dir=None, thumbs_dir=str(tmp_path))
    with ServerThread(app) as srv, web.client(base_url=srv.url) as c:
        assert "no images found" in _error(c.get("/ui/api/images"), 404)
        info = c.get("/ui/api/info").json()
        assert info["dataset"] is None and "one subfolder per class" in info["dataset_error"]
        internal = [ln for ln in c.get("/metrics").text.splitlines() if ln.startswith("imgclf_internal_errors_total")]
        assert internal == ["imgclf_internal_errors_total 0.0"]


def test_a_run_from_before_keeps_working_on_the_results_page(ui_run, tmp_path):
    import shutil

    from imgclf.ui.results import RunResults
    from imgclf.util.errors import NotFound
    from imgclf.util.files import write_json

    old = tmp_path / "run"  # evaluated before per-class figures were kept, doctor never run
    shutil.copytree(ui_run["run"], old, ignore=shutil.ignore_patterns("model", "oof_predictions.csv"))
    m = read_json(old / "metrics.json")
    now = RunResults(ui_run["run"]).payload()["per_class"]
    write_json(old / "metrics.json", {k: v for k, v in m.items() if not k.startswith("per_class_") or k == "per_class_accuracy"})
    results = RunResults(old)
    assert results.payload()["per_class"] == now, "the same figures, from the confusion matrix"
    with pytest.raises(NotFound, match="imgclf doctor --run-dir"):
        results.payload("train")
    assert results.payload()["train_scores"] is False
