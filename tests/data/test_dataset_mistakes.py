"""A newcomer's folder mistakes and too-small classes: each answered in one line that names the fix."""
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from imgclf.config.settings import load_config
from imgclf.data.dataset import scan_dataset
from imgclf.data.split import MIN_TRAIN_PER_CLASS, make_split
from imgclf.util.errors import DatasetError


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"img{i}.png")


def test_a_file_given_as_the_folder_names_the_dataset_folder(tmp_path):
    _images(tmp_path / "pets" / "cats", 3)
    with pytest.raises(DatasetError, match="is a file; expected a folder with one subfolder per class") as e:
        scan_dataset(tmp_path / "pets" / "cats" / "img0.png")
    assert f"--images {tmp_path / 'pets'}" in e.value.hint


def test_a_class_folder_given_suggests_its_parent(tmp_path):
    for cls in ("ants", "bees"):
        _images(tmp_path / "my_images" / cls, 4)
    with pytest.raises(DatasetError, match=r"looks like one class folder \(4 images") as e:
        scan_dataset(tmp_path / "my_images" / "ants")
    assert "bees" in str(e.value) and e.value.hint == f"pass the parent folder: --images {tmp_path / 'my_images'}"


def test_loose_images_without_class_subfolders_show_the_layout(tmp_path):
    _images(tmp_path / "photos", 5)
    (tmp_path / "other").mkdir()  # a sibling without images: photos is not a class folder of a dataset
    with pytest.raises(DatasetError, match="holds 5 images but no class subfolders; expected one subfolder per class") as e:
        scan_dataset(tmp_path / "photos")
    assert f"{tmp_path / 'photos'}/<class>/<image>" in e.value.hint


def test_a_folder_without_images_still_says_so(tmp_path):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found"):
        scan_dataset(tmp_path / "empty")


def test_two_images_per_class_are_refused_before_training_with_the_number_needed(tmp_path):
    for cls in ("a", "b"):
        _images(tmp_path / cls, 2)
    with pytest.raises(DatasetError, match=r"fewer than 2 training images after the split: a \(1 of 2\), b \(1 of 2\)") as e:
        make_split(scan_dataset(tmp_path), load_config().data)
    assert e.value.hint == "add images: at data.train_ratio 0.75 each class needs at least 3"
    cfg = load_config(None, ["data.train_ratio=0.3"]).data
    with pytest.raises(DatasetError) as e:
        make_split(scan_dataset(tmp_path), cfg)
    assert e.value.hint.endswith("needs at least 5")


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.75, 0.9])
def test_the_number_named_is_enough(tmp_path, ratio):
    cfg = load_config(None, [f"data.train_ratio={ratio}"]).data
    for cls in ("a", "b"):
        _images(tmp_path / cls, 2)
    with pytest.raises(DatasetError) as e:
        make_split(scan_dataset(tmp_path), cfg)
    need = int(e.value.hint.rsplit(" ", 1)[1])
    for cls in ("a", "b"):
        _images(tmp_path / cls, need)
    rows = make_split(scan_dataset(tmp_path), cfg)
    train = Counter(r.label for r in rows if r.split == "train")
    assert min(train.values()) == MIN_TRAIN_PER_CLASS  # the smallest count that works
    assert all(c == need for c in Counter(r.label for r in rows).values())


def test_a_predefined_split_with_one_training_image_says_to_move_test_images(tmp_path):
    _images(tmp_path / "train" / "x", 1)
    _images(tmp_path / "train" / "y", 3)
    _images(tmp_path / "test" / "x", 3)
    _images(tmp_path / "test" / "y", 1)
    with pytest.raises(DatasetError, match=r"x \(1 of 4\)") as e:
        make_split(scan_dataset(tmp_path), load_config().data)
    assert "test/ folder" in e.value.hint


@pytest.mark.parametrize("mistake", ["two_per_class", "file"])
def test_run_answers_in_one_line_and_a_hint(tmp_path, mistake, monkeypatch, capsys):
    from imgclf.cli import main

    for cls in ("a", "b"):
        _images(tmp_path / "images" / cls, 2)
    images = tmp_path / "images" / ("a/img0.png" if mistake == "file" else "")
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--images", str(images), "--run-dir", str(tmp_path / "run"), "-q",
                 "--set", f'data.root="{tmp_path / "data"}"', "--set", "tracking.enabled=false"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    assert ("needs at least 3" if mistake == "two_per_class" else f"--images {tmp_path / 'images'}") in lines[1]
