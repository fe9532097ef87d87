"""The pool of unlabelled images: never a class, labelled by annotations, trained on without moving the others."""
from pathlib import Path

import pytest

from imgclf.config.settings import load_config
from imgclf.data.annotations import record, undo_last
from imgclf.data.dataset import scan_dataset
from imgclf.data.split import make_split
from imgclf.util.errors import DatasetError


def _touch(root: Path, spec: dict[str, int]) -> None:
    from PIL import Image

    for folder, n in spec.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i, len(folder), 0)).save(root / folder / f"img {i}.png")


@pytest.fixture
def pooled(tmp_path: Path) -> Path:
    _touch(tmp_path, {"a": 20, "b": 12, "_unlabeled": 30})
    return tmp_path


def _sides(rows) -> dict[str, str]:
    return {r.rel: r.split for r in rows}


def test_the_pool_folder_is_never_a_class(pooled):
    ds = scan_dataset(pooled)
    assert ds.labels == ["a", "b"]
    assert len(ds.items) == 32 and not any(it.rel.startswith("_unlabeled/") for it in ds.items)
    assert len(ds.pool) == 30 and all(it.from_pool and it.label == "" for it in ds.pool)
    rows = make_split(ds, load_config().data)
    assert {r.label for r in rows} == {"a", "b"} and len(rows) == 32


def test_data_pool_names_another_folder_inside_the_images_folder(pooled):
    (pooled / "_unlabeled").rename(pooled / "inbox")
    assert scan_dataset(pooled).labels == ["a", "b", "inbox"]  # without data.pool it is a class folder like any
    ds = scan_dataset(pooled, pool="inbox")
    assert ds.labels == ["a", "b"] and len(ds.pool) == 30
    with pytest.raises(DatasetError, match="inside the images folder"):
        scan_dataset(pooled, pool="../elsewhere")
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(pooled, pool="missing")


def test_a_label_annotation_makes_a_pool_image_an_item_and_undo_returns_it(pooled):
    record(pooled, [("_unlabeled/img 3.png", "", "label", "b"), ("_unlabeled/img 4.png", "", "exclude", "")])
    ds = scan_dataset(pooled)
    labelled = [it for it in ds.items if it.from_pool]
    assert [(it.rel, it.label) for it in labelled] == [("_unlabeled/img 3.png", "b")]
    assert ds.counts() == {"a": 20, "b": 13}
    assert len(ds.pool) == 28 and ("_unlabeled/img 4.png", "exclude") in ds.excluded
    undo_last(pooled)
    undo_last(pooled)
    ds = scan_dataset(pooled)
    assert len(ds.pool) == 30 and not any(it.from_pool for it in ds.items)
    with pytest.raises(ValueError, match="needs the label"):
        record(pooled, [("_unlabeled/img 5.png", "", "label", "")])


def test_labelling_pool_images_moves_no_other_image_and_is_reproducible(pooled):
    cfg = load_config().data
    before = _sides(make_split(scan_dataset(pooled), cfg))
    record(pooled, [(f"_unlabeled/img {i}.png", "", "label", "ab"[i % 2]) for i in range(20)])
    after = _sides(make_split(scan_dataset(pooled), cfg))
    assert {k: v for k, v in after.items() if k in before} == before
    new = {k: v for k, v in after.items() if k not in before}
    assert new == {f"_unlabeled/img {i}.png": "train" for i in range(20)}  # chosen by Label next: never test
    record(pooled, [(f"_unlabeled/img {i}.png", "", "label", "a") for i in range(20, 30)])
    again = _sides(make_split(scan_dataset(pooled), cfg))
    assert {k: v for k, v in again.items() if k in after} == after, "labelling more moves none of the earlier ones"
    assert _sides(make_split(scan_dataset(pooled), cfg)) == again


def test_labelled_pool_images_follow_a_near_duplicate_folder_image(pooled):
    record(pooled, [("_unlabeled/img 0.png", "", "label", "a"), ("_unlabeled/img 1.png", "", "label", "a")])
    ds = scan_dataset(pooled)
    path = {it.rel: it.path for it in ds.items}
    cfg = load_config().data
    plain = _sides(make_split(ds, cfg))
    test_img = next(rel for rel, side in plain.items() if side == "test" and rel.startswith("a/"))
    train_img = next(rel for rel, side in plain.items() if side == "train" and rel.startswith("a/"))
    groups = [[path[test_img], path["_unlabeled/img 0.png"]], [path[train_img], path["_unlabeled/img 1.png"]]]
    sides = _sides(make_split(ds, cfg, groups))
    assert sides["_unlabeled/img 0.png"] == "test" and sides["_unlabeled/img 1.png"] == "train"
    assert {k: v for k, v in sides.items() if not k.startswith("_unlabeled/")} == \
        {k: v for k, v in plain.items() if not k.startswith("_unlabeled/")}


def test_labelled_pool_images_train_beside_a_predefined_test_folder(tmp_path):
    _touch(tmp_path / "train", {"a": 6, "b": 6})
    _touch(tmp_path / "test", {"a": 3, "b": 3})
    _touch(tmp_path, {"_unlabeled": 5})
    record(tmp_path, [(f"_unlabeled/img {i}.png", "", "label", "b") for i in range(5)])
    rows = make_split(scan_dataset(tmp_path), load_config().data)
    assert {r.rel: r.split for r in rows if r.rel.startswith("_unlabeled/")} == {f"_unlabeled/img {i}.png": "train" for i in range(5)}
    assert sum(r.split == "test" for r in rows) == 6
