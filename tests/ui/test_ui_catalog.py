"""The UI's library parts without a server: the catalog, the thumbnail cache, undo in annotations.csv."""
from __future__ import annotations

import shutil
import threading

import pytest
from PIL import Image
from ui_helpers import CLASSES, make_dataset

from imgclf.data.annotations import COLUMNS, annotations_path, current_state, read_history, record, undo_last
from imgclf.data.dataset import scan_dataset
from imgclf.data.images import ImageError
from imgclf.ui.catalog import Catalog
from imgclf.ui.thumbs import ThumbnailCache
from imgclf.util.errors import InvalidRequest
from imgclf.util.files import write_csv


@pytest.fixture
def images(tmp_path):
    return make_dataset(tmp_path / "images", n_per_class=3, size=64)


def test_catalog_views_agree_with_what_prepare_will_scan(images):
    cat = Catalog(images)
    cat.annotate("circles/circles_000.jpg", "relabel", "stripes")
    cat.annotate("squares/squares_001.jpg", "exclude")
    cat.annotate("stripes/stripes_002.jpg", "ambiguous")
    summary = cat.summary()
    ds = scan_dataset(images)
    assert summary["counts"] == ds.counts()
    assert sorted(ds.excluded) == [("squares/squares_001.jpg", "exclude"), ("stripes/stripes_002.jpg", "ambiguous")]
    for label in CLASSES:
        shown = {it["path"] for it in cat.query(label=label)["items"]}
        assert shown == {it.rel for it in ds.items if it.label == label}
    assert [it["path"] for it in cat.query(status="excluded")["items"]] == ["squares/squares_001.jpg"]


def test_new_files_are_found_and_paths_are_checked(images):
    cat = Catalog(images)
    assert len(cat.entries()) == 9
    shutil.copy(images / "circles" / "circles_000.jpg", images / "circles" / "new.jpg")
    cat._scanned_at -= 10  # as if the listing were older than the rescan interval
    assert cat.resolve("circles/new.jpg").original == "circles"
    for bad in ("../images/circles/new.jpg", "/abs.jpg", "a\\b.jpg", "circles/./new.jpg"):
        with pytest.raises(InvalidRequest) as e:
            cat.resolve(bad)
        assert e.value.reason == "bad_request"
    assert cat.rel_of(images / "circles" / "new.jpg") == "circles/new.jpg"
    assert cat.rel_of(images.parent / "elsewhere.jpg") is None


def test_undo_of_one_image_skips_the_others(images):
    record(images, [("circles/circles_000.jpg", "circles", "exclude", "")])
    record(images, [("squares/squares_000.jpg", "squares", "relabel", "circles")])
    assert undo_last(images, "circles/circles_000.jpg").action == "exclude"
    assert {p: a.action for p, a in current_state(images).items()} == {"squares/squares_000.jpg": "relabel"}
    assert undo_last(images, "circles/circles_000.jpg") is None
    assert undo_last(images).path == "squares/squares_000.jpg"
    assert undo_last(images) is None and current_state(images) == {}


def test_history_without_the_undoes_column_still_reads(images):
    old = [c for c in COLUMNS if c != "undoes"]
    write_csv(annotations_path(images), old, [["2024-01-01T00:00:00", "circles/circles_001.jpg", "circles", "relabel", "squares"]])
    assert read_history(images)[0].undoes == ""
    undo_last(images)
    assert current_state(images) == {}
    assert read_history(images)[-1].undoes == "1"


def test_thumbnails_are_keyed_by_content(images, tmp_path):
    cache = ThumbnailCache(tmp_path / "thumbs")
    a, b = images / "circles" / "circles_000.jpg", images / "circles" / "copy.jpg"
    shutil.copy(a, b)
    first = cache.get(a, 128)
    assert cache.get(b, 128) == first and cache.cache_file(a, 128) == cache.cache_file(b, 128)
    made = cache.cache_file(a, 128).stat().st_mtime_ns
    assert cache.get(a, 128) == first and cache.cache_file(a, 128).stat().st_mtime_ns == made, "reused, not remade"
    Image.new("RGB", (64, 64), (0, 200, 0)).save(b)
    assert cache.cache_file(b, 128) != cache.cache_file(a, 128), "an edited image gets a new thumbnail"
    assert cache.get(b, 128) != first
    assert len(list((tmp_path / "thumbs").rglob("*.jpg"))) == 2
    assert not list((tmp_path / "thumbs").rglob("*.tmp"))
    with pytest.raises(ValueError):
        cache.get(a, 100)


def test_concurrent_requests_for_one_thumbnail_agree(images, tmp_path):
    cache = ThumbnailCache(tmp_path / "thumbs")
    path = images / "stripes" / "stripes_001.jpg"
    out: list[bytes] = []
    threads = [threading.Thread(target=lambda: out.append(cache.get(path, 256))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 8 and len(set(out)) == 1
    assert [p.name for p in (tmp_path / "thumbs").rglob("*") if p.is_file()] == [cache.cache_file(path, 256).name]


def test_a_corrupt_image_raises_and_caches_nothing(images, tmp_path):
    cache = ThumbnailCache(tmp_path / "thumbs")
    bad = images / "circles" / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 50)
    with pytest.raises(ImageError):
        cache.get(bad, 128)
    assert not (tmp_path / "thumbs").exists() or not any((tmp_path / "thumbs").rglob("*.jpg"))


def test_a_correction_of_several_images_is_one_batch_and_one_undo(images):
    cat = Catalog(images)
    a, b, c = "circles/circles_000.jpg", "circles/circles_001.jpg", "squares/squares_000.jpg"
    cat.annotate(a, "ambiguous")
    res = cat.annotate_many([a, b, c, b], "relabel", "stripes")
    assert res["changed"] == 3 and [it["label"] for it in res["items"]] == ["stripes"] * 3
    again = cat.annotate_many([a, b], "relabel", "stripes")
    assert again["changed"] == 0 and not any(it["changed"] for it in again["items"]), "nothing written twice"
    history = read_history(images)
    assert len(history) == 4 and len({h.batch for h in history[1:]}) == 1 and history[1].batch and not history[0].batch
    undone = cat.undo()
    assert sorted(it["path"] for it in undone["items"]) == [a, b, c]
    assert {p: x.action for p, x in current_state(images).items()} == {a: "ambiguous"}, "each image back to its own state"
    assert cat.undo()["undone"]["path"] == a and current_state(images) == {}
    assert [h.undoes for h in read_history(images)[4:]] == ["4", "3", "2", "1"]
    assert cat.paths(label="circles") == [a, b, "circles/circles_002.jpg"]
