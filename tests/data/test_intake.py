"""Images and classes added to a dataset: the safe decoder on every file, duplicates flagged, nothing
overwritten, every addition recorded and undoable, renames and merges as relabels."""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image
from datagen import make_dataset
from intake_files import NOT_AN_IMAGE, huge_png, noise_jpeg, reencoded

from imgclf.data.annotations import read_history, record, undo_last, undo_rows
from imgclf.data.dataset import scan_dataset
from imgclf.data.intake import REMOVED_DIR, Intake, check_class_name, merge_classes, rename_class, take_back
from imgclf.util.errors import InvalidRequest


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "images", n_per_class=4)


def _by_name(up) -> dict[str, object]:
    return {o.name: o for o in up.outcomes}


def test_upload_adds_the_good_files_and_lists_the_others_with_their_reasons(ds: Path):
    existing = ds / "circles" / sorted(p.name for p in (ds / "circles").iterdir())[0]
    files = [("a.jpg", noise_jpeg(1)), ("b.jpg", noise_jpeg(2)), ("copy.jpg", existing.read_bytes()),
             ("near.jpg", reencoded(existing)), ("notes.jpg", NOT_AN_IMAGE), ("huge.png", huge_png()), ("empty.jpg", b"")]
    before = len(scan_dataset(ds).items)

    up = Intake(ds).add(files, label="squares")

    out = _by_name(up)
    assert [out[n].status for n in ("a.jpg", "b.jpg")] == ["added", "added"]
    assert (out["copy.jpg"].status, out["copy.jpg"].reason, out["copy.jpg"].path) == ("duplicate", "exact", f"circles/{existing.name}")
    assert (out["near.jpg"].status, out["near.jpg"].reason, out["near.jpg"].path) == ("duplicate", "near", f"circles/{existing.name}")
    assert 0 < out["near.jpg"].distance <= 20
    assert {n: out[n].reason for n in ("notes.jpg", "huge.png", "empty.jpg")} == \
        {"notes.jpg": "not_an_image", "huge.png": "too_large", "empty.jpg": "empty"}
    assert all(out[n].status == "refused" and out[n].message for n in ("notes.jpg", "huge.png", "empty.jpg"))
    assert (up.count("added"), up.count("duplicate"), up.count("refused")) == (2, 2, 3)
    assert (ds / "squares" / "a.jpg").read_bytes() == noise_jpeg(1)
    after = scan_dataset(ds)
    assert len(after.items) == before + 2 and after.counts()["squares"] == 6
    rows = [a for a in read_history(ds) if a.action == "add"]
    assert sorted(a.path for a in rows) == ["squares/a.jpg", "squares/b.jpg"]
    assert {a.batch for a in rows} == {up.batch} and {a.original_label for a in rows} == {"squares"}
    assert not [p for p in (ds / "squares").iterdir() if p.name.startswith(".")], "no temp file is left behind"


def test_nothing_existing_is_overwritten_and_names_are_made_safe(ds: Path):
    old = (ds / "circles" / "a.jpg")
    old.write_bytes(noise_jpeg(10))
    buf = BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buf, "PNG")
    png = buf.getvalue()

    up = Intake(ds).add([("a.jpg", noise_jpeg(11)), ("../../../etc/a.jpg", noise_jpeg(12)), ("red.jpg", png),
                         ("..hidden name?.jpeg", noise_jpeg(13))], label="circles")

    assert [o.path for o in up.outcomes] == ["circles/a_2.jpg", "circles/a_3.jpg", "circles/red.png",
                                             "circles/hidden name.jpeg"]
    assert old.read_bytes() == noise_jpeg(10)
    assert not (ds.parent / "etc").exists()
    long = Intake(ds).add([("写真" * 100 + ".jpg", noise_jpeg(14))], label="circles").outcomes[0]
    assert long.status == "added" and len(Path(long.path).name.encode()) <= 255, "a name a file system takes"


def test_the_same_file_twice_in_one_upload_is_added_once(ds: Path):
    up = Intake(ds).add([("x.jpg", noise_jpeg(5)), ("y.jpg", noise_jpeg(5))], label="circles")
    assert [(o.status, o.reason, o.path) for o in up.outcomes] == [("added", "", "circles/x.jpg"),
                                                                   ("duplicate", "exact", "circles/x.jpg")]


def test_force_adds_a_duplicate(ds: Path):
    existing = next((ds / "stripes").iterdir())
    up = Intake(ds).add([("again.jpg", existing.read_bytes())], label="stripes", force=True)
    assert up.outcomes[0].status == "added"
    assert (ds / "stripes" / "again.jpg").read_bytes() == existing.read_bytes()


def test_a_new_class_is_made_only_when_asked_and_only_with_a_folder_name(ds: Path):
    intake = Intake(ds)
    with pytest.raises(InvalidRequest, match="no class 'birds'") as e:
        intake.add([("a.jpg", noise_jpeg(1))], label="birds")
    assert e.value.reason == "no_class" and not (ds / "birds").exists()
    up = intake.add([("a.jpg", noise_jpeg(1))], label="birds", create=True)
    assert up.label == "birds" and scan_dataset(ds).counts()["birds"] == 1
    for bad in ("", "  ", "a/b", "..", ".hidden", "train", "Test", "_unlabeled", "x" * 101, "tab\there"):
        with pytest.raises(InvalidRequest) as e:
            check_class_name(bad)
        assert e.value.reason == "bad_class_name"


def test_images_added_to_the_pool_stay_unlabelled(ds: Path):
    up = Intake(ds).add([("p1.jpg", noise_jpeg(21)), ("p2.jpg", noise_jpeg(22))])
    assert up.label == "" and [o.path for o in up.outcomes] == ["_unlabeled/p1.jpg", "_unlabeled/p2.jpg"]
    scanned = scan_dataset(ds)
    assert sorted(it.rel for it in scanned.pool) == ["_unlabeled/p1.jpg", "_unlabeled/p2.jpg"]
    assert "_unlabeled" not in scanned.labels
    again = Intake(ds).add([("p1 again.jpg", noise_jpeg(21))])
    assert (again.outcomes[0].reason, again.outcomes[0].path) == ("exact", "_unlabeled/p1.jpg")


def test_a_predefined_layout_gets_its_files_in_the_train_folder(tmp_path: Path):
    root = tmp_path / "images"
    make_dataset(root / "train", n_per_class=3)
    make_dataset(root / "test", n_per_class=2, seed=1)
    up = Intake(root).add([("n.jpg", noise_jpeg(3))], label="circles")
    assert up.outcomes[0].path == "train/circles/n.jpg"


def test_undo_of_an_upload_moves_its_files_out_and_deletes_nothing(ds: Path):
    intake = Intake(ds)
    first = intake.add([("keep.jpg", noise_jpeg(30))], label="circles")
    up = intake.add([("a.jpg", noise_jpeg(31)), ("b.jpg", noise_jpeg(32))], label="owls", create=True)
    record(ds, [("squares/" + sorted(p.name for p in (ds / "squares").iterdir())[0], "squares", "exclude", "")])  # after the upload

    undone = undo_rows(ds, batch=up.batch)
    moved = take_back(ds, undone)

    assert sorted(moved) == ["owls/a.jpg", "owls/b.jpg"]
    assert not (ds / "owls").exists(), "the class folder left empty is removed"
    kept = sorted((ds / REMOVED_DIR).rglob("*.jpg"))
    assert [p.name for p in kept] == ["a.jpg", "b.jpg"] and kept[0].read_bytes() == noise_jpeg(31)
    scanned = scan_dataset(ds)
    assert "owls" not in scanned.labels and (ds / "circles" / "keep.jpg").exists()
    assert len(scanned.excluded) == 1, "the later correction stands"
    assert undo_rows(ds, batch=up.batch) == [], "an upload is undone once"
    assert undo_rows(ds, batch=first.batch)[0].path == "circles/keep.jpg"
    # the same name is free again, and a new upload takes it without mixing up the history
    again = intake.add([("a.jpg", noise_jpeg(31))], label="owls", create=True)
    assert again.outcomes[0].path == "owls/a.jpg" and scan_dataset(ds).counts()["owls"] == 1


def test_rename_relabels_without_moving_files_and_is_undone_whole(ds: Path):
    files = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*.jpg"))
    rows = rename_class(ds, "circles", "rings")
    assert len(rows) == 4 and {a.batch for a in rows} != {""} and len({a.batch for a in rows}) == 1
    assert sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*.jpg")) == files
    assert scan_dataset(ds).counts() == {"rings": 4, "squares": 4, "stripes": 4}
    with pytest.raises(InvalidRequest, match="exists already"):
        rename_class(ds, "rings", "squares")
    with pytest.raises(InvalidRequest, match="no class 'circles'"):
        rename_class(ds, "circles", "dots")
    undo_last(ds)
    assert scan_dataset(ds).counts() == {"circles": 4, "squares": 4, "stripes": 4}


def test_merge_relabels_many_keeps_left_out_images_out_and_labels_pool_images(ds: Path):
    Intake(ds).add([("p.jpg", noise_jpeg(40))])
    record(ds, [("_unlabeled/p.jpg", "", "label", "stripes")])
    excluded = "squares/" + sorted(p.name for p in (ds / "squares").iterdir())[0]
    record(ds, [(excluded, "squares", "exclude", "")])

    rows = merge_classes(ds, ["squares", "stripes"], "shapes")

    assert len(rows) == 3 + 4 + 1
    scanned = scan_dataset(ds)
    assert scanned.counts() == {"circles": 4, "shapes": 8}
    assert scanned.excluded == [(excluded, "exclude")]
    assert next(a for a in rows if a.path == "_unlabeled/p.jpg").action == "label"
    back = merge_classes(ds, ["shapes"], "circles")
    assert {a.action for a in back} == {"relabel", "label"} and scan_dataset(ds).counts() == {"circles": 12}
    with pytest.raises(InvalidRequest, match="nothing to merge"):
        merge_classes(ds, ["circles"], "circles")


def test_a_file_the_pool_holds_without_a_class_is_labelled_in_place_not_copied(ds: Path):
    intake = Intake(ds)
    kept = intake.add([("asked.jpg", noise_jpeg(60))])  # as the service keeps the images it is asked about
    up = intake.add([("photo.jpg", noise_jpeg(60)), ("new.jpg", noise_jpeg(61))], label="circles")
    assert [(o.status, o.path) for o in up.outcomes] == [("labelled", "_unlabeled/asked.jpg"), ("added", "circles/new.jpg")]
    scanned = scan_dataset(ds)
    assert not scanned.pool and scanned.counts()["circles"] == 6 and not (ds / "circles" / "photo.jpg").exists()
    assert intake.add([("again.jpg", noise_jpeg(60))], label="squares").outcomes[0].status == "duplicate", \
        "a pool image with a class is not relabelled by an upload"
    take_back(ds, undo_rows(ds, batch=up.batch))
    assert [it.rel for it in scan_dataset(ds).pool] == ["_unlabeled/asked.jpg"], "undone: back in the pool, the file kept"
    assert kept.outcomes[0].path == "_unlabeled/asked.jpg"
