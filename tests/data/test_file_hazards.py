"""Hostile files in the images folder: only regular files inside the dataset are ever opened, JPEGs
are decoded strictly, refused formats are named right, CSV cells never run in a spreadsheet, and
a read-only dataset refuses corrections at once.

Hangs (a FIFO opened for reading blocks until a writer comes) are caught by the tests' timeout."""
from __future__ import annotations

import csv
import io
import os
import socket
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset, tiny_config
from PIL import Image, ImageFile

from imgclf.data.annotations import READ_ONLY, annotations_path, read_history, record
from imgclf.data.dataset import scan_dataset
from imgclf.data.images import ImageError, ImageTooLarge, UnsupportedFormat, decode_image, read_header, safe_thumbnail
from imgclf.features.decode import decode_rgb
from imgclf.util.errors import DatasetError
from imgclf.util.files import NotRegularFile, read_csv, read_regular, sha256_file, write_csv


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _photo(w: int = 320, h: int = 240) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A dataset whose class folders also hold a FIFO, a link to /dev/zero, a link loop, a broken link,
    a link to an image outside the folder, and a class folder that is a link to a folder outside."""
    images = make_dataset(tmp_path / "images", n_per_class=6)
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (40, 40), (250, 0, 0)).save(outside / "secret_outside.jpg")
    os.mkfifo(images / "circles" / "fifo.jpg")
    os.symlink("/dev/zero", images / "circles" / "zero.jpg")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(images / "circles" / "socket.png"))  # the socket file stays after the socket is closed
    (images / "circles" / "folder.jpg").mkdir()  # a folder named like an image is a subfolder, never opened
    os.symlink("loop_b.jpg", images / "squares" / "loop_a.jpg")
    os.symlink("loop_a.jpg", images / "squares" / "loop_b.jpg")
    os.symlink("gone.jpg", images / "squares" / "broken.jpg")
    os.symlink(outside / "secret_outside.jpg", images / "stripes" / "out.jpg")
    os.symlink(outside, images / "elsewhere")
    os.symlink("stripes_000.jpg", images / "stripes" / "inside_link.jpg")  # a link inside the dataset is an image
    return images


HAZARDS = {"circles/fifo.jpg": "FIFO", "circles/zero.jpg": "outside the dataset", "circles/socket.png": "socket",
           "squares/loop_a.jpg": "loop",
           "squares/loop_b.jpg": "loop", "squares/broken.jpg": "broken", "stripes/out.jpg": "outside the dataset",
           "elsewhere": "outside the dataset"}


# ------------------------------------------------------------------ only regular files are opened

@pytest.mark.timeout(60)
@pytest.mark.parametrize("name, kind", [("fifo.jpg", "a FIFO"), ("zero.jpg", "a character device"),
                                        ("socket.png", "a socket"), ("folder.jpg", "a folder")])
def test_a_fifo_a_device_a_socket_or_a_folder_is_refused_by_every_reader_without_being_opened(hostile, name, kind):
    path = hostile / "circles" / name
    for read in (decode_image, read_header, safe_thumbnail, lambda p: decode_rgb(p, 224)):
        with pytest.raises(ImageError) as e:
            read(path)
        assert e.value.reason == "not_a_file" and f"is {kind}" in e.value.detail, e.value.detail
    for read in (read_regular, sha256_file):
        with pytest.raises(NotRegularFile):
            read(path)


def test_a_file_larger_than_any_image_within_the_pixel_limit_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "huge.jpg"
    big.write_bytes(_jpeg(Image.new("RGB", (8, 8))))
    os.truncate(big, 200 << 20)  # sparse: 200 MB on paper, nothing on disk
    with pytest.raises(ImageTooLarge) as e:
        decode_image(big, max_pixels=10_000)
    assert e.value.reason == "too_large" and "209,715,200 bytes" in e.value.detail
    assert decode_image(big).size == (8, 8), "within the default limit it is read (and the JPEG ends where it ends)"


@pytest.mark.timeout(60)
def test_the_scan_lists_only_regular_files_inside_the_dataset_and_says_why_it_left_the_rest_out(hostile):
    ds = scan_dataset(hostile)
    rels = {it.rel for it in ds.items}
    assert len(ds.items) == 3 * 6 + 1 and "stripes/inside_link.jpg" in rels
    assert ds.labels == ["circles", "squares", "stripes"], "a class folder linked to outside is no class"
    assert not any("secret" in it.rel or "secret" in it.path for it in ds.items)
    skipped = {Path(p).relative_to(hostile).as_posix(): why for p, why in ds.skipped}
    assert set(skipped) == set(HAZARDS)
    for rel, word in HAZARDS.items():
        assert word in skipped[rel], (rel, skipped[rel])
    assert all(Path(it.path).is_relative_to(hostile.resolve()) for it in ds.items)


@pytest.mark.timeout(120)
def test_prepare_skips_the_hostile_files_and_lists_them_in_skipped_csv(hostile, tmp_path):
    from imgclf.prepare.step import prepare
    from imgclf.rundir.layout import RunDir

    summary = prepare(tiny_config(tmp_path / "data", hostile), tmp_path / "run")
    rd = RunDir(tmp_path / "run")
    assert summary["images"] == 3 * 6 + 1 and summary["skipped"] == len(HAZARDS)
    skipped = {Path(p).relative_to(hostile).as_posix(): why for p, why, stage in rd.skipped_rows()}
    assert set(skipped) == set(HAZARDS)
    assert {r.label for r in rd.split_rows()} == {"circles", "squares", "stripes"}


@pytest.mark.timeout(120)
def test_dedup_runs_on_a_dataset_with_a_link_loop_and_lists_what_it_could_not_read(hostile):
    from imgclf.acquire.dedup import dedup_dataset

    result = dedup_dataset(hostile, dry_run=True, progress=False)
    assert result.images == 3 * 6 + 1
    assert dict(result.unreadable).keys() == HAZARDS.keys()
    assert [sorted(m.rel for m in g.members) for g in result.groups] == [["stripes/inside_link.jpg", "stripes/stripes_000.jpg"]]


@pytest.mark.timeout(180)
def test_predict_answers_a_fifo_and_a_device_given_as_inputs_with_an_error_row(trained_run, tmp_path):
    from imgclf.inference.predict import Predictor, expand_inputs

    folder = tmp_path / "inputs"
    folder.mkdir()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(folder / "ok.jpg")
    os.mkfifo(folder / "fifo.jpg")
    os.symlink("/dev/zero", folder / "zero.png")
    os.symlink("loop2.jpg", folder / "loop1.jpg")
    os.symlink("loop1.jpg", folder / "loop2.jpg")
    rows = {Path(r["path"]).name: r for r in Predictor(trained_run / "model").predict(expand_inputs([folder]))}
    assert set(rows) == {"ok.jpg", "fifo.jpg", "zero.png", "loop1.jpg", "loop2.jpg"}
    assert "label" in rows["ok.jpg"] and "error" not in rows["ok.jpg"]
    assert rows["fifo.jpg"]["error"].startswith("not_a_file") and "FIFO" in rows["fifo.jpg"]["error"]
    assert rows["zero.png"]["error"].startswith("not_a_file")
    assert rows["loop1.jpg"]["error"].startswith("unreadable") and "symbolic links" in rows["loop1.jpg"]["error"]


# ------------------------------------------------------------------ strict JPEG

def _cut_with_end_marker(data: bytes) -> bytes:
    return data[: len(data) // 3] + b"\xff\xd9"


def _claims(data: bytes, width: int, height: int) -> bytes:
    """``data`` with its frame header (SOF0) claiming ``width`` x ``height``."""
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def test_pillows_truncated_images_switch_stays_off():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("damage", ["cut_with_end_marker", "header_claims_6000x6000", "cut_progressive"])
def test_a_jpeg_cut_short_or_smaller_than_its_header_is_refused_by_both_decoders(damage):
    if damage == "cut_with_end_marker":
        data = _cut_with_end_marker(_jpeg(_photo(), quality=90))
    elif damage == "cut_progressive":
        data = _cut_with_end_marker(_jpeg(_photo(), quality=90, progressive=True)[:-2])
    else:
        data = _claims(_jpeg(Image.new("RGB", (16, 16), (40, 90, 200))), 6000, 6000)
    with pytest.raises(ImageError) as e:
        decode_image(data)
    assert e.value.reason in ("truncated", "corrupt") and "JPEG" in e.value.detail
    for min_side in (64, 256):  # the libjpeg-turbo path with DCT scaling, which falls back to the safe decoder
        with pytest.raises(ImageError):
            decode_rgb(data, min_side)


def test_a_whole_jpeg_decodes_as_before_and_stray_bytes_before_its_end_marker_are_harmless():
    data = _jpeg(_photo(), quality=90)
    reference = np.asarray(decode_image(data))
    assert reference.shape == (240, 320, 3)
    stray = data[:-2] + b"\x00\x00\x00\xff\xd9"  # some cameras write these; libjpeg warns, the pixels are whole
    assert np.array_equal(np.asarray(decode_image(stray)), reference)
    assert np.array_equal(decode_rgb(stray, 240), decode_rgb(data, 240))
    jfif = data.index(b"JFIF\x00") + 5
    newer = data[:jfif] + b"\x02" + data[jfif + 1:]  # "unknown JFIF revision number 2.01": a header detail
    assert np.array_equal(np.asarray(decode_image(newer)), reference)
    cmyk = _jpeg(_photo().convert("CMYK"), quality=90)
    assert decode_image(cmyk).size == (320, 240)
    with pytest.raises(ImageError):
        decode_image(_cut_with_end_marker(cmyk))


# ------------------------------------------------------------------ refused formats named right

def test_a_tga_is_named_tga_not_cur_with_or_without_its_footer():
    data = io.BytesIO()
    Image.new("RGB", (16, 16), (9, 99, 199)).save(data, "TGA")
    tga = data.getvalue()
    assert tga[:4] == b"\x00\x00\x02\x00", "the header starts like a CUR file's"
    footer = tga.index(b"TRUEVISION-XFILE") - 8  # TGA 1.0: no footer at all
    for variant in (tga, tga[:footer]):
        with pytest.raises(UnsupportedFormat) as e:
            decode_image(variant)
        assert e.value.detail.startswith("TGA images are not accepted"), e.value.detail


def test_icons_and_cursors_are_still_named_by_their_own_format():
    ico = io.BytesIO()
    Image.new("RGB", (16, 16)).save(ico, "ICO")
    cur = b"\x00\x00\x02\x00\x01\x00" + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 1, 40, 22) + b"\x00" * 40
    for data, name in ((ico.getvalue(), "ICO"), (cur, "CUR")):
        with pytest.raises(UnsupportedFormat) as e:
            decode_image(data)
        assert e.value.detail.startswith(f"{name} images are not accepted")


# ------------------------------------------------------------------ CSV cells

TRICKY = ["=1+1", "@SUM(A1)", "+33 1", "-x", "\tcmd", "\rcmd", "'=already quoted", "''@", "=", "plain", "",
          "a=b", "'plain quote", "-0.5", "+3", "1e-05", "-inf"]


def test_every_csv_cell_a_spreadsheet_would_execute_is_neutralised_and_read_back_exactly(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(path, ["value", "=header"], [[v, v] for v in TRICKY] + [[-0.25, 3]])
    with open(path, newline="", encoding="utf-8") as f:
        raw = list(csv.reader(f))
    executable = [c for row in raw for c in row if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert executable == ["-0.5", "-0.5", "+3", "+3", "-inf", "-inf", "-0.25"], "numbers are left alone"
    assert raw[1] == ["'=1+1", "'=1+1"] and raw[0] == ["value", "'=header"]
    back = read_csv(path)
    assert [r["value"] for r in back] == TRICKY + ["-0.25"]
    assert list(back[0]) == ["value", "=header"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_class_named_like_a_formula_stays_text_in_every_csv_of_a_run_and_keeps_its_label(tmp_path):
    from imgclf.api import run
    from imgclf.bundle.folder import load_bundle
    from imgclf.rundir.layout import RunDir

    images = make_dataset(tmp_path / "images", n_per_class=8, classes=("=1+1", "@cmd", "plain"))
    run(tiny_config(tmp_path / "data", images), tmp_path / "run", progress=False)
    rd = RunDir(tmp_path / "run")
    for name in ("split.csv", "predictions.csv", "oof_predictions.csv"):
        with open(rd.root / name, newline="", encoding="utf-8") as f:
            cells = [c for row in csv.reader(f) for c in row]
        assert not any(c[:1] in ("=", "@") for c in cells), name
        assert "'=1+1" in cells and "'@cmd" in cells, name
    assert {r.label for r in rd.split_rows()} == {"=1+1", "@cmd", "plain"}
    assert {p["label"] for p in rd.read_predictions(["=1+1", "@cmd", "plain"])} == {"=1+1", "@cmd", "plain"}
    assert rd.read_oof_predictions()[0] == ["=1+1", "@cmd", "plain"]
    assert list(load_bundle(rd.root / "model").labels) == ["=1+1", "@cmd", "plain"]


# ------------------------------------------------------------------ a read-only dataset

@pytest.fixture
def immutable(tmp_path: Path):
    """A dataset folder made really read-only (``chattr +i``: even root cannot create a file in it)."""
    images = make_dataset(tmp_path / "ro", n_per_class=6)
    if subprocess.run(["chattr", "+i", str(images)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        yield images
    finally:
        subprocess.run(["chattr", "-i", str(images)], check=True)


@pytest.mark.timeout(60)
def test_a_correction_on_a_read_only_dataset_is_refused_at_once_and_a_run_on_it_still_prepares(immutable, tmp_path):
    from imgclf.prepare.step import prepare

    with pytest.raises(DatasetError) as e:
        record(immutable, [("circles/circles_000.jpg", "circles", "exclude", "")])
    assert e.value.reason == READ_ONLY and f"corrections cannot be saved here: {immutable.resolve()} is read-only" in str(e.value)
    assert not annotations_path(immutable).exists() and read_history(immutable) == []
    assert prepare(tiny_config(tmp_path / "data", immutable), tmp_path / "run")["images"] == 18


@pytest.mark.timeout(60)
def test_a_dataset_made_read_only_after_its_first_correction_refuses_the_next(tmp_path):
    images = make_dataset(tmp_path / "ro", n_per_class=4)
    record(images, [("circles/circles_000.jpg", "circles", "exclude", "")])  # the lock file exists from now on
    if subprocess.run(["chattr", "+i", str(images)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        with pytest.raises(DatasetError) as e:
            record(images, [("circles/circles_001.jpg", "circles", "exclude", "")])
        assert e.value.reason == READ_ONLY
        assert [a.path for a in read_history(images)] == ["circles/circles_000.jpg"]
    finally:
        subprocess.run(["chattr", "-i", str(images)], check=True)
