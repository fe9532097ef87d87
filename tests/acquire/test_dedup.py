"""Dedup on generated images with known duplicates and known non-duplicates."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from acquire_helpers import encode, make_image
from PIL import ImageOps

from imgclf.acquire.dedup import dedup_dataset
from imgclf.acquire.report import write_dedup_report
from imgclf.data.annotations import LOCK_FILENAME, current_state, read_history
from imgclf.data.dataset import scan_dataset
from imgclf.data.duplicates import (
    connected_groups,
    cosine_pairs,
    dhash_code,
    duplicate_groups,
    hamming_pairs,
    near_duplicates_by_features,
)
from imgclf.util.files import read_csv


def distance(a, b) -> int:
    return int(np.unpackbits(dhash_code(a) ^ dhash_code(b)).sum())


@pytest.fixture
def dataset(tmp_path):
    """a/orig.jpg has copies: exact (b/), resized, re-encoded, PNG; a mirrored and 5 other images don't."""
    root = tmp_path / "ds"
    for d in ("a", "b", "c"):
        (root / d).mkdir(parents=True)
    base = make_image(1, (240, 180))
    (root / "a" / "orig.jpg").write_bytes(encode(base, "JPEG", quality=95))
    shutil.copy(root / "a" / "orig.jpg", root / "b" / "copy.jpg")  # exact copy, other class
    (root / "a" / "small.jpg").write_bytes(encode(base.resize((120, 90)), "JPEG", quality=90))
    (root / "c" / "lowq.jpg").write_bytes(encode(base, "JPEG", quality=35))
    (root / "c" / "mirror.jpg").write_bytes(encode(ImageOps.mirror(base), "JPEG", quality=95))
    for s in range(2, 7):
        (root / "b" / f"other{s}.jpg").write_bytes(encode(make_image(s, (240, 180)), "JPEG", quality=90))
    other = make_image(9, (200, 200))  # a second group: byte-identical PNGs
    (root / "c" / "p1.png").write_bytes(encode(other, "PNG"))
    shutil.copy(root / "c" / "p1.png", root / "c" / "p2.png")
    (root / "c" / "broken.jpg").write_bytes(encode(base, "JPEG")[:400])
    return root


def test_distances_of_known_pairs(dataset):
    a = dataset / "a" / "orig.jpg"
    assert distance(a, dataset / "b" / "copy.jpg") == 0
    assert distance(a, dataset / "a" / "small.jpg") <= 10  # resized
    assert distance(a, dataset / "c" / "lowq.jpg") <= 10  # re-encoded at quality 35
    assert distance(a, dataset / "c" / "mirror.jpg") > 40  # mirrored: a different picture to dhash
    assert min(distance(a, dataset / "b" / f"other{s}.jpg") for s in range(2, 7)) > 40


def test_duplicate_groups(dataset):
    paths = sorted(str(p) for p in dataset.rglob("*.*"))
    groups = duplicate_groups(paths, 10)
    rel = [[str(p.relative_to(dataset)) for p in map(type(dataset), g)] for g in groups]
    assert rel == [["a/orig.jpg", "a/small.jpg", "b/copy.jpg", "c/lowq.jpg"], ["c/p1.png", "c/p2.png"]]
    exact = duplicate_groups(paths, 0)
    names = [[type(dataset)(p).name for p in g] for g in exact]
    assert ["orig.jpg", "copy.jpg"] in names and ["p1.png", "p2.png"] in names
    assert all(len({dhash_code(p).tobytes() for p in g}) == 1 for g in exact)
    assert duplicate_groups([], 10) == [] and duplicate_groups(paths[:1], 10) == []


def test_dedup_excludes_all_but_one_per_group(dataset):
    res = dedup_dataset(dataset, 10, progress=False)
    assert res.images == 13
    assert res.unreadable and res.unreadable[0][0] == "c/broken.jpg"  # listed, not fatal
    kinds = [(g.kind, [(m.rel, m.action) for m in g.members]) for g in res.groups]
    # kept: the largest, then the biggest file, then the first path (orig and copy are identical)
    assert kinds[0] == ("near", [("a/orig.jpg", "keep"), ("b/copy.jpg", "exclude"), ("c/lowq.jpg", "exclude"),
                                 ("a/small.jpg", "exclude")])
    assert kinds[1] == ("exact", [("c/p1.png", "keep"), ("c/p2.png", "exclude")])
    assert res.groups[0].members[3].width == 120
    state = current_state(dataset)
    assert {p: (a.action, a.original_label) for p, a in state.items()} == {
        "b/copy.jpg": ("exclude", "b"), "c/lowq.jpg": ("exclude", "c"), "a/small.jpg": ("exclude", "a"),
        "c/p2.png": ("exclude", "c")}
    files = [f for f in dataset.rglob("*.*") if f.name != LOCK_FILENAME]  # the lock between processes stays
    assert len(files) == 13 + 1  # nothing deleted (+ annotations.csv)
    assert len(scan_dataset(dataset).items) == 13 - 4  # the dataset now leaves them out
    assert res.summary().startswith("13 images: 2 duplicate groups (exact 1, near 1, by features 0); 4 images excluded")

    again = dedup_dataset(dataset, 10, progress=False)  # idempotent: excluded images are not re-examined
    assert again.groups == [] and len(read_history(dataset)) == 4


def test_dedup_dry_run_and_exact_only(dataset):
    res = dedup_dataset(dataset, 0, dry_run=True, progress=False)
    found = {tuple(sorted(m.rel for m in g.members)) for g in res.groups}
    assert {("a/orig.jpg", "b/copy.jpg"), ("c/p1.png", "c/p2.png")} <= found
    assert all(g.kind == "exact" and all(m.distance == 0 for m in g.members) for g in res.groups)
    assert read_history(dataset) == []
    assert "would be excluded" in res.summary()


def test_dedup_move_to(dataset, tmp_path):
    dest = tmp_path / "dups"
    res = dedup_dataset(dataset, 10, move_to=dest, progress=False)
    moved = sorted(m.rel for m in res.removed)
    assert moved == ["a/small.jpg", "b/copy.jpg", "c/lowq.jpg", "c/p2.png"]
    assert all((dest / r).is_file() and not (dataset / r).exists() for r in moved)
    assert read_history(dataset) == []  # moved files leave the dataset: nothing to annotate
    with pytest.raises(Exception, match="inside the dataset"):
        dedup_dataset(dataset, 10, move_to=dataset / "x", progress=False)


def test_report_has_thumbnails_and_escapes_names(dataset):
    (dataset / "a" / "<b>x.jpg").write_bytes((dataset / "a" / "orig.jpg").read_bytes())
    res = dedup_dataset(dataset, 10, dry_run=True, progress=False)
    html_path, csv_path = write_dedup_report(res)
    text = html_path.read_text()
    assert text.count("data:image/jpeg;base64,") == sum(len(g.members) for g in res.groups) == 7
    assert "&lt;b&gt;x.jpg" in text and "<b>x.jpg" not in text
    rows = read_csv(csv_path)
    assert [(r["group"], r["path"], r["action"]) for r in rows][:2] == [("1", "a/<b>x.jpg", "keep"), ("1", "a/orig.jpg", "exclude")]


def test_dedup_with_features(dataset):
    # a featurizer that sees the mirrored image as the original (as a CNN might): it joins the group
    def features(paths):
        out = np.zeros((len(paths), 4), dtype=np.float32)
        for i, p in enumerate(paths):
            if p.endswith("mirror.jpg") or p.endswith("orig.jpg"):
                out[i] = [1, 0.01, 0, 0]
            elif p.endswith("other2.jpg"):
                out[i] = [0, 1, 0, 0]
            elif p.endswith("other3.jpg"):
                out[i] = [0, 0.999, 0.01, 0]
        return out

    res = dedup_dataset(dataset, 10, featurize=features, dry_run=True, progress=False)
    groups = sorted((g.kind, sorted(m.rel for m in g.members)) for g in res.groups)
    assert groups == [
        ("exact", ["c/p1.png", "c/p2.png"]),
        ("features", ["a/orig.jpg", "a/small.jpg", "b/copy.jpg", "c/lowq.jpg", "c/mirror.jpg"]),  # mirror joins
        ("features", ["b/other2.jpg", "b/other3.jpg"]),
    ]


def test_hamming_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(700, 32), dtype=np.uint8)  # 700 > one block of 256
    for i, j, flips in [(3, 650, 4), (300, 301, 10), (10, 511, 11), (600, 20, 0)]:
        codes[j] = codes[i]
        for b in rng.choice(256, flips, replace=False):
            codes[j, b // 8] ^= 1 << (b % 8)
    bits = np.unpackbits(codes, axis=1).astype(np.int32)
    d = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    brute = sorted((i, j, int(d[i, j])) for i in range(700) for j in range(i + 1, 700) if d[i, j] <= 10)
    assert sorted(hamming_pairs(codes, 10)) == brute == [(3, 650, 4), (20, 600, 0), (300, 301, 10)]


def test_hamming_pairs_scale_to_10k_images():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, size=(10_000, 32), dtype=np.uint8)
    codes[9_999] = codes[5]
    t0 = time.perf_counter()
    pairs = hamming_pairs(codes, 10)
    took = time.perf_counter() - t0
    assert pairs == [(5, 9_999, 0)]
    assert took < 15, f"{took:.1f} s for 10k codes"


def test_cosine_groups():
    f = np.array([[1, 0], [0.99, 0.05], [0, 1], [0, 0], [-1, 0], [0.0, 0.98]], dtype=np.float32)
    assert near_duplicates_by_features(f, list("abcdef"), 0.95) == [["a", "b"], ["c", "f"]]
    assert cosine_pairs(f, 1.01) == []
    assert connected_groups(4, [(0, 1, 0), (2, 3, 0), (1, 2, 0)]) == [[0, 1, 2, 3]]
    with pytest.raises(ValueError):
        near_duplicates_by_features(f, ["a"], 0.9)
