from collections import Counter
from pathlib import Path

import pytest

from imgclf.config.settings import load_config
from imgclf.data.dataset import scan_dataset
from imgclf.data.split import load_split, make_split, save_split
from imgclf.util.errors import DatasetError


def _touch_images(root: Path, spec: dict[str, int], sub: str = "") -> None:
    from PIL import Image

    for label, n in spec.items():
        for i in range(n):
            d = root / label / (f"{sub}{i % 3}" if sub else "")
            d.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (i, 0, 0)).save(d / f"img {i}.PNG")


@pytest.fixture
def folder(tmp_path):
    _touch_images(tmp_path, {"a": 20, "b": 8, "c": 41})
    return tmp_path


def test_stratified_disjoint_and_reproducible(folder):
    ds = scan_dataset(folder)
    cfg = load_config().data
    rows = make_split(ds, cfg)
    assert len({r.path for r in rows}) == len(rows) == 69
    for label, n in {"a": 20, "b": 8, "c": 41}.items():
        n_train = sum(r.label == label and r.split == "train" for r in rows)
        assert n_train == round(0.75 * n)
    assert make_split(scan_dataset(folder), cfg) == rows
    cfg.seed = 1
    assert make_split(ds, cfg) != rows


def test_adding_a_class_does_not_reshuffle_the_others(folder):
    cfg = load_config().data
    before = {r.path: r.split for r in make_split(scan_dataset(folder), cfg)}
    _touch_images(folder, {"d": 5})
    after = {r.path: r.split for r in make_split(scan_dataset(folder), cfg)}
    assert all(after[p] == s for p, s in before.items())


def test_split_by_subdir_keeps_subfolders_together(tmp_path):
    _touch_images(tmp_path, {"a": 30, "b": 30}, sub="shoot")
    cfg = load_config(None, ["data.split_by=subdir"]).data
    rows = make_split(scan_dataset(tmp_path), cfg)
    sides = {}
    for r in rows:
        sides.setdefault(Path(r.path).parent, set()).add(r.split)
    assert all(len(s) == 1 for s in sides.values())
    assert {r.split for r in rows} == {"train", "test"}


def test_extra_groups_fall_on_one_side(folder):
    ds = scan_dataset(folder)
    a = sorted(it.path for it in ds.items if it.label == "a")
    groups = [a[:5], a[5:9]]
    rows = make_split(ds, load_config().data, extra_groups=groups)
    side = {r.path: r.split for r in rows}
    for g in groups:
        assert len({side[p] for p in g}) == 1


def test_dedicated_test_list(folder, tmp_path):
    lst = tmp_path / "test.tsv"
    lst.write_text("# label<TAB>file\na\timg 0.PNG\nb\tb/img 1.PNG\n\nc\timg 2.PNG\n")
    rows = make_split(scan_dataset(folder), load_config(None, [f'data.test_list="{lst}"']).data)
    test = sorted(Path(r.path).relative_to(folder).as_posix() for r in rows if r.split == "test")
    assert test == ["a/img 0.PNG", "b/img 1.PNG", "c/img 2.PNG"]


def test_test_list_with_unknown_file_is_a_clear_error(folder, tmp_path):
    lst = tmp_path / "test.tsv"
    lst.write_text("a\tmissing.jpg\n")
    with pytest.raises(DatasetError, match="missing.jpg"):
        make_split(scan_dataset(folder), load_config(None, [f'data.test_list="{lst}"']).data)


def test_predefined_train_and_val_folders_are_the_split(tmp_path):
    _touch_images(tmp_path / "train", {"x": 6, "y": 5})
    _touch_images(tmp_path / "val", {"x": 2, "y": 3})
    rows = make_split(scan_dataset(tmp_path), load_config().data)
    assert Counter((r.label, r.split) for r in rows) == {("x", "train"): 6, ("y", "train"): 5, ("x", "test"): 2, ("y", "test"): 3}


def test_class_with_one_image_is_a_clear_error(tmp_path):
    _touch_images(tmp_path, {"a": 5, "lonely": 1})
    with pytest.raises(DatasetError, match="lonely"):
        make_split(scan_dataset(tmp_path), load_config().data)


def test_annotations_relabel_and_exclude(folder):
    from imgclf.data.annotations import record

    record(folder, [("a/img 0.PNG", "a", "relabel", "b"), ("a/img 1.PNG", "a", "exclude", ""), ("c/img 3.PNG", "c", "ambiguous", "")])
    ds = scan_dataset(folder)
    by_rel = {it.rel: it for it in ds.items}
    assert by_rel["a/img 0.PNG"].label == "b"
    assert "a/img 1.PNG" not in by_rel and "c/img 3.PNG" not in by_rel
    assert sorted(ds.excluded) == [("a/img 1.PNG", "exclude"), ("c/img 3.PNG", "ambiguous")]
    assert (folder / "a" / "img 1.PNG").exists()  # never deleted


def test_split_csv_round_trip(folder, tmp_path):
    rows = make_split(scan_dataset(folder), load_config().data)
    save_split(str(tmp_path / "split.csv"), rows)
    assert load_split(str(tmp_path / "split.csv")) == rows
    assert (tmp_path / "split.csv").read_text().splitlines()[0] == "path,label,split,rel"


def test_missing_or_empty_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "nope")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        scan_dataset(tmp_path / "empty")
