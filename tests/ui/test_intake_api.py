"""Adding images and classes over HTTP, against a live server on a copy of the dataset: uploads with
each file's outcome, undo of an upload, the pool listed, class rename and merge, the Try page's add."""
from __future__ import annotations


import httpx
import pytest
from intake_files import NOT_AN_IMAGE, huge_png, noise_jpeg
from ui_helpers import copy_dataset, no_500_client, serve_ui

from imgclf.data.annotations import annotations_path
from imgclf.data.intake import REMOVED_DIR


@pytest.fixture(scope="module")
def site(ui_run, tmp_path_factory):
    """A server (body limit 1 MB) over a copy of the UI's dataset, and that copy."""
    images = copy_dataset(ui_run["images"], tmp_path_factory.mktemp("intake") / "images")
    with serve_ui(None, images, None, tmp_path_factory.mktemp("thumbs"), max_body_mb=1.0) as srv:
        with no_500_client(srv.url) as c:
            yield c, images


@pytest.fixture
def api(site):
    """The client; the dataset's annotations and everything added are gone after each test."""
    c, images = site
    before = {p for p in images.rglob("*") if p.is_file()}
    yield c, images
    for p in images.rglob("*"):
        if p.is_file() and p not in before:
            p.unlink()
    annotations_path(images).unlink(missing_ok=True)
    for d in sorted((p for p in images.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    c.get("/ui/api/images", params={"refresh": "true"})


def _error(r: httpx.Response, status: int, reason: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["reason"] == reason and body["error"], body
    return body["error"]


def _upload(c: httpx.Client, files: list[tuple[str, bytes]], **fields) -> httpx.Response:
    return c.post("/ui/api/intake/upload", files=[("files", (n, d, "application/octet-stream")) for n, d in files],
                  data={k: str(v) for k, v in fields.items()})


@pytest.mark.slow
def test_six_files_onto_a_new_class_then_undo(api):
    c, images = api
    dup = next((images / "squares").iterdir())
    files = [("one.jpg", noise_jpeg(1)), ("two.jpg", noise_jpeg(2)), ("three.jpg", noise_jpeg(3)),
             ("same.jpg", dup.read_bytes()), ("readme.jpg", NOT_AN_IMAGE), ("poster.png", huge_png())]

    r = _upload(c, files, label="owls", create=1)

    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["label"], body["added"], body["refused"], body["duplicates"]) == ("owls", 3, 2, 1)
    by = {it["name"]: it for it in body["items"]}
    assert {n: by[n]["status"] for n in by} == {"one.jpg": "added", "two.jpg": "added", "three.jpg": "added",
                                                "same.jpg": "duplicate", "readme.jpg": "refused", "poster.png": "refused"}
    assert by["same.jpg"]["path"] == f"squares/{dup.name}" and by["same.jpg"]["reason"] == "exact"
    assert (by["readme.jpg"]["reason"], by["poster.png"]["reason"]) == ("not_an_image", "too_large")
    assert "owls" in body["summary"]["classes"] and body["summary"]["counts"]["owls"] == 3
    listed = c.get("/ui/api/images", params={"label": "owls"}).json()
    assert sorted(it["path"] for it in listed["items"]) == ["owls/one.jpg", "owls/three.jpg", "owls/two.jpg"]

    forced = _upload(c, [("same.jpg", dup.read_bytes())], label="owls", force=1, batch=body["batch"]).json()
    assert forced["batch"] == body["batch"] and forced["items"][0]["path"] == "owls/same.jpg"

    c.post("/ui/api/annotate", json={"path": "circles/circles_000.jpg", "action": "exclude"})  # a later correction
    undone = c.post("/ui/api/intake/undo", json={"batch": body["batch"]}).json()

    assert sorted(undone["removed"]) == ["owls/one.jpg", "owls/same.jpg", "owls/three.jpg", "owls/two.jpg"]
    assert "owls" not in undone["summary"]["classes"] and not (images / "owls").exists()
    assert undone["summary"]["statuses"]["excluded"] == 1, "the later correction stands"
    assert sorted(p.name for p in (images / REMOVED_DIR).rglob("*.jpg")) == ["one.jpg", "same.jpg", "three.jpg", "two.jpg"]
    assert c.post("/ui/api/intake/undo", json={"batch": body["batch"]}).json()["undone"] is None


def test_pool_images_are_listed_filterable_and_labelled_in_place(api):
    c, images = api
    body = _upload(c, [("p1.jpg", noise_jpeg(11)), ("p2.jpg", noise_jpeg(12))]).json()
    assert body["label"] == "" and [it["path"] for it in body["items"]] == ["_unlabeled/p1.jpg", "_unlabeled/p2.jpg"]
    pool = c.get("/ui/api/images", params={"status": "pool"}).json()
    assert [(it["path"], it["label"], it["pool"]) for it in pool["items"]] == [("_unlabeled/p1.jpg", None, True),
                                                                               ("_unlabeled/p2.jpg", None, True)]
    assert pool["summary"]["statuses"]["pool"] == 2 and "" not in pool["summary"]["classes"]
    item = c.post("/ui/api/annotate", json={"path": "_unlabeled/p1.jpg", "action": "relabel", "label": "circles"}).json()["item"]
    assert (item["label"], item["status"]) == ("circles", "relabeled")
    assert (images / "_unlabeled" / "p1.jpg").exists(), "a pool image given a class is not moved"
    _error(c.post("/ui/api/annotate", json={"path": "_unlabeled/p2.jpg", "action": "keep"}), 400, "no_label")


def test_rename_and_merge_relabel_and_the_page_undo_takes_them_back(api):
    c, _ = api
    r = c.post("/ui/api/classes/rename", json={"old": "circles", "new": "rings"}).json()
    assert r["changed"] > 0 and "rings" in r["summary"]["classes"] and "circles" not in r["summary"]["classes"]
    assert c.get("/ui/api/images", params={"label": "rings"}).json()["total"] == r["changed"]
    _error(c.post("/ui/api/classes/rename", json={"old": "rings", "new": "squares"}), 400, "class_exists")
    _error(c.post("/ui/api/classes/rename", json={"old": "rings", "new": "a/b"}), 400, "bad_class_name")
    c.post("/ui/api/undo", json={})
    assert "circles" in c.get("/ui/api/info").json()["dataset"]["classes"]

    m = c.post("/ui/api/classes/merge", json={"sources": ["squares", "stripes"], "into": "angular"}).json()
    assert m["summary"]["classes"] == ["angular", "circles"]
    _error(c.post("/ui/api/classes/merge", json={"sources": ["nope"], "into": "circles"}), 400, "no_class")


def test_the_try_page_adds_its_image_to_a_class_or_the_pool(api):
    c, _ = api
    data = noise_jpeg(21)
    r = c.post("/ui/api/intake/add", params={"label": "stripes", "name": "photo.jpg"}, content=data).json()
    assert (r["added"], r["items"][0]["path"]) == (1, "stripes/photo.jpg")
    again = c.post("/ui/api/intake/add", params={"name": "photo.jpg"}, content=data).json()
    assert (again["duplicates"], again["items"][0]["path"]) == (1, "stripes/photo.jpg")
    kept = c.post("/ui/api/intake/add", params={"name": "asked.jpg"}, content=noise_jpeg(23)).json()
    assert kept["items"][0]["path"] == "_unlabeled/asked.jpg"
    labelled = c.post("/ui/api/intake/add", params={"label": "circles", "name": "asked.jpg"}, content=noise_jpeg(23)).json()
    assert (labelled["labelled"], labelled["items"][0]["status"], labelled["items"][0]["path"]) == (1, "labelled", "_unlabeled/asked.jpg")
    assert c.get("/ui/api/images", params={"status": "pool"}).json()["total"] == 0
    _error(c.post("/ui/api/intake/add", params={"label": "zebras"}, content=noise_jpeg(22)), 400, "no_class")
    _error(c.post("/ui/api/intake/add", content=b""), 400, "empty")


def test_bad_uploads_get_a_4xx_with_a_json_reason(api):
    c, images = api
    _error(c.post("/ui/api/intake/upload", json={"files": []}), 400, "not_multipart")
    _error(c.post("/ui/api/intake/upload", data={"label": "circles"}, files=[("other", ("x.txt", b"x"))]), 400, "empty")
    _error(_upload(c, [("a.jpg", noise_jpeg(1))], label="..", create=1), 400, "bad_class_name")
    _error(_upload(c, [("a.jpg", noise_jpeg(1))], label="zebras"), 400, "no_class")
    _error(_upload(c, [("a.jpg", noise_jpeg(1))], label="circles", batch="../x"), 400, "bad_request")
    _error(c.post("/ui/api/intake/undo", json={"batch": "nope"}), 400, "bad_request")
    big = _upload(c, [("big.jpg", b"\xff\xd8\xff" + b"\0" * (2 << 20))], label="circles")
    assert big.status_code == 413 and big.json()["reason"]
    assert not (images / "zebras").exists() and not list(images.rglob("a.jpg"))


@pytest.mark.slow
def test_a_folder_without_images_gets_its_first_class(tmp_path):
    images = tmp_path / "empty"
    images.mkdir()
    with serve_ui(None, images, None, tmp_path / "thumbs") as srv, no_500_client(srv.url) as c:
        assert c.get("/ui/api/images").status_code == 404
        body = _upload(c, [("a.jpg", noise_jpeg(1)), ("b.jpg", noise_jpeg(2))], label="cats", create=1).json()
        assert body["added"] == 2 and body["summary"]["counts"] == {"cats": 2}
        assert [it["path"] for it in c.get("/ui/api/images").json()["items"]] == ["cats/a.jpg", "cats/b.jpg"]
