"""The UI over a dataset with hostile files: a FIFO, a link to /dev/zero, a link loop, links (a file,
a class folder, a pool image) that lead out of the dataset, and a read-only dataset folder.

Every dataset route answers; none of those files is listed, thumbnailed or labelled; a correction
on a read-only folder is refused at once with a 4xx. No request may end in a 500."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from ui_helpers import CLASSES, no_500_client

from imgclf.data.annotations import annotations_path, read_history


@pytest.fixture(scope="module")
def hostile_server(ui_run, predictor, tmp_path_factory):
    """The UI over a copy of the UI run and its dataset, with hostile files in its class folders and its pool."""
    from datagen import make_image

    from imgclf.config.settings import ServeConfig
    from imgclf.serve.server import ServerThread
    from imgclf.ui import create_ui_app

    base = tmp_path_factory.mktemp("hostile_ui")
    images, outside, run = base / "images", base / "outside", base / "run"
    shutil.copytree(ui_run["images"], images, ignore=shutil.ignore_patterns("annotations.csv"))
    shutil.copytree(ui_run["run"], run)  # Label next may write into its run: never into the shared one
    outside.mkdir()
    Image.new("RGB", (40, 40), (250, 0, 0)).save(outside / "secret_outside.jpg")
    os.mkfifo(images / "circles" / "fifo.jpg")
    os.symlink("/dev/zero", images / "circles" / "zero.jpg")
    os.symlink("loop_b.jpg", images / "squares" / "loop_a.jpg")
    os.symlink("loop_a.jpg", images / "squares" / "loop_b.jpg")
    os.symlink(outside / "secret_outside.jpg", images / "stripes" / "out.jpg")
    os.symlink(outside, images / "elsewhere")  # a class folder that is a link to a folder outside
    pool = images / "_unlabeled"
    pool.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        make_image(CLASSES[i], rng).save(pool / f"p{i}.jpg", quality=90)
    os.symlink(outside / "secret_outside.jpg", pool / "outside.jpg")
    os.mkfifo(pool / "fifo.jpg")
    os.symlink("/dev/zero", pool / "zero.jpg")
    app = create_ui_app(predictor, ServeConfig(), images_dir=str(images), run_dir=str(run),
                        thumbs_dir=str(base / "thumbs"))
    with ServerThread(app) as srv:
        srv.images = images
        yield srv


@pytest.fixture(scope="module")
def hc(hostile_server):
    """A client of that server; at the end of the module, no request may have ended in a 500."""
    with no_500_client(hostile_server.url) as c:
        yield c


HOSTILE = ["circles/fifo.jpg", "circles/zero.jpg", "squares/loop_a.jpg", "squares/loop_b.jpg", "stripes/out.jpg"]


@pytest.mark.timeout(120)
def test_every_dataset_route_answers_and_lists_no_hostile_file(hc, hostile_server):
    info = hc.get("/ui/api/info")
    assert info.status_code == 200 and info.json()["dataset"]["classes"] == list(CLASSES)
    listing = hc.get("/ui/api/images", params={"refresh": "true", "limit": 500})
    assert listing.status_code == 200
    paths = hc.get("/ui/api/images/paths").json()["paths"]
    assert sorted(it["path"] for it in listing.json()["items"]) == sorted(paths)
    assert not set(HOSTILE) & set(paths)
    assert not any("secret" in p or p.startswith("elsewhere/") for p in paths), "no name from outside the dataset"
    for c in CLASSES:
        regular = [f for f in (hostile_server.images / c).iterdir() if f.is_file() and not f.is_symlink()]
        assert len([p for p in paths if p.startswith(f"{c}/")]) == len(regular)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", HOSTILE + ["elsewhere/secret_outside.jpg"])
def test_a_hostile_file_gets_no_thumbnail_and_no_correction(hc, hostile_server, path):
    r = hc.get("/ui/api/thumb", params={"path": path})
    assert r.status_code in (400, 404) and r.json()["reason"], r.text
    r = hc.post("/ui/api/annotate", json={"path": path, "action": "exclude"})
    assert r.status_code in (400, 404) and r.json()["reason"], r.text
    assert not annotations_path(hostile_server.images).exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["outside.jpg", "fifo.jpg", "zero.jpg"])
def test_label_next_neither_shows_nor_labels_a_pool_file_that_is_no_image_of_the_dataset(hc, hostile_server, name):
    rel = f"_unlabeled/{name}"
    r = hc.get("/ui/api/label-next/thumb", params={"path": rel})
    assert r.status_code == 404 and r.json()["reason"] == "not_in_pool", r.text
    r = hc.post("/ui/api/label-next/label", json={"path": rel, "label": CLASSES[0]})
    assert r.status_code == 404 and r.json()["reason"] == "not_in_pool", r.text
    assert not annotations_path(hostile_server.images).exists()
    good = hc.get("/ui/api/label-next/thumb", params={"path": "_unlabeled/p0.jpg"})
    assert good.status_code == 200 and good.headers["content-type"] == "image/jpeg"


@pytest.mark.timeout(60)
def test_a_correction_on_a_read_only_dataset_is_refused_at_once_with_a_4xx(hc, hostile_server):
    images = hostile_server.images
    rel = sorted(p.relative_to(images).as_posix() for p in (images / "circles").glob("circles_*.jpg"))[0]
    if subprocess.run(["chattr", "+i", str(images)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        for r in (hc.post("/ui/api/annotate", json={"path": rel, "action": "exclude"}),
                  hc.post("/ui/api/annotate/many", json={"paths": [rel], "action": "ambiguous"}),
                  hc.post("/ui/api/label-next/label", json={"path": "_unlabeled/p1.jpg", "label": CLASSES[1]})):
            assert r.status_code == 400, r.text
            assert r.json()["reason"] == "read_only"
            assert f"corrections cannot be saved here: {images.resolve()} is read-only" in r.json()["error"]
        assert hc.get("/ui/api/images", params={"refresh": "true"}).status_code == 200, "reading still works"
    finally:
        subprocess.run(["chattr", "-i", str(images)], check=True)
    assert read_history(images) == []
