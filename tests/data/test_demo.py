"""The demo dataset: layout, determinism, decodability, and that it is not trivially separable."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from imgclf.data.demo import DEMO_CLASSES, demo_image, generate_demo
from imgclf.data.images import decode_image
from imgclf.util.errors import ImgclfError

N = 6
SIZE = 64


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate_demo(root, n_per_class=N, seed=0, size=SIZE)
    return root


@pytest.fixture(scope="module")
def stats_images(tmp_path_factory) -> dict[str, np.ndarray]:
    """20 small images per class as float arrays (n, H, W, 3), enough for rough statistics."""
    root = tmp_path_factory.mktemp("demo_stats")
    generate_demo(root, n_per_class=20, seed=3, size=SIZE)
    return {
        c: np.stack([np.asarray(decode_image(p), dtype=np.float64) for p in sorted((root / c).glob("*.jpg"))])
        for c in DEMO_CLASSES
    }


def test_counts_and_layout(tmp_path):
    counts = generate_demo(tmp_path, n_per_class=N, seed=0, size=SIZE)
    assert DEMO_CLASSES == ("dotted", "striped", "leopard")
    assert counts == {c: N for c in DEMO_CLASSES}
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(DEMO_CLASSES)
    for c in DEMO_CLASSES:
        assert sorted(p.name for p in (tmp_path / c).iterdir()) == [f"{c}_{i:04d}.jpg" for i in range(N)]
    assert not list(tmp_path.rglob("*.tmp")), "atomic writes leave no temp files"


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path, demo_dir):
    again = tmp_path / "again"
    other = tmp_path / "other"
    generate_demo(again, n_per_class=N, seed=0, size=SIZE)
    generate_demo(other, n_per_class=N, seed=1, size=SIZE)
    first, second, third = _files(demo_dir), _files(again), _files(other)
    assert first == second
    assert first.keys() == third.keys()
    assert all(first[k] != third[k] for k in first)
    assert len(set(first.values())) == len(first), "no two images are the same"


def test_images_decode_as_rgb_of_the_asked_size(demo_dir, tmp_path):
    for path in demo_dir.rglob("*.jpg"):
        assert path.read_bytes()[:3] == b"\xff\xd8\xff", "a JPEG file"
        img = decode_image(path)
        assert img.mode == "RGB" and img.size == (SIZE, SIZE)
    generate_demo(tmp_path, n_per_class=1, seed=0, size=100)
    assert decode_image(tmp_path / "striped" / "striped_0000.jpg").size == (100, 100)


def test_each_image_depends_only_on_seed_class_and_index(tmp_path, demo_dir):
    generate_demo(tmp_path, n_per_class=2, seed=0, size=SIZE)
    for c in DEMO_CLASSES:
        for i in range(2):
            name = f"{c}/{c}_{i:04d}.jpg"
            assert (tmp_path / name).read_bytes() == (demo_dir / name).read_bytes()
            buf = io.BytesIO()
            demo_image(c, i, seed=0, size=SIZE).save(buf, format="JPEG", quality=90)
            assert buf.getvalue() == (demo_dir / name).read_bytes()


def test_complete_folder_is_not_rewritten_and_missing_files_are_redrawn(tmp_path):
    generate_demo(tmp_path, n_per_class=3, seed=0, size=SIZE)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.rglob("*.jpg")}
    original = (tmp_path / "leopard" / "leopard_0001.jpg").read_bytes()
    assert generate_demo(tmp_path, n_per_class=3, seed=0, size=SIZE) == {c: 3 for c in DEMO_CLASSES}
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.rglob("*.jpg")} == before

    (tmp_path / "leopard" / "leopard_0001.jpg").unlink()
    generate_demo(tmp_path, n_per_class=3, seed=0, size=SIZE)
    assert (tmp_path / "leopard" / "leopard_0001.jpg").read_bytes() == original
    untouched = tmp_path / "dotted" / "dotted_0000.jpg"
    assert (untouched.stat().st_ino, untouched.stat().st_mtime_ns) == before[untouched]


def test_other_seed_in_same_folder_redraws_everything(tmp_path):
    generate_demo(tmp_path, n_per_class=2, seed=0, size=SIZE)
    old = _files(tmp_path)
    assert generate_demo(tmp_path, n_per_class=2, seed=5, size=SIZE) == {c: 2 for c in DEMO_CLASSES}
    new = _files(tmp_path)
    assert new.keys() == old.keys() and all(new[k] != old[k] for k in old)


@pytest.mark.parametrize(
    "kwargs, word",
    [({"n_per_class": 0}, "n_per_class"), ({"size": 8}, "size"), ({"seed": -1}, "seed")],
)
def test_bad_arguments_are_user_errors(tmp_path, kwargs, word):
    with pytest.raises(ImgclfError) as e:
        generate_demo(tmp_path, **kwargs)
    assert word in str(e.value) and e.value.hint
    assert not any(tmp_path.iterdir()), "nothing written for a refused request"


def test_output_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(ImgclfError, match="not a folder"):
        generate_demo(target, n_per_class=1, size=SIZE)
    with pytest.raises(ImgclfError, match="unknown demo class"):
        demo_image("plaid", 0)


def test_images_vary_within_each_class(stats_images):
    for c, imgs in stats_images.items():
        means = imgs.mean(axis=(1, 2))  # (n, 3) mean colour per image
        assert (means.std(axis=0) > 20).all(), f"{c}: colours barely vary {means.std(axis=0)}"
        assert (imgs.std(axis=(1, 2, 3)) > 8).all(), f"{c}: an image is nearly flat"


def test_classes_are_not_told_apart_by_simple_colour_statistics(stats_images):
    brightness = {c: imgs.mean(axis=(1, 2, 3)) for c, imgs in stats_images.items()}
    for a in DEMO_CLASSES:
        for b in DEMO_CLASSES:
            lo, hi = brightness[b].min(), brightness[b].max()
            assert lo < np.median(brightness[a]) < hi, f"{a} brightness sits outside {b}'s range"

    # Leave-one-out nearest centroid on mean and spread of each channel: near chance (1/3).
    feats = np.concatenate([np.c_[x.mean(axis=(1, 2)), x.std(axis=(1, 2))] for x in stats_images.values()])
    labels = np.repeat(np.arange(len(DEMO_CLASSES)), [len(x) for x in stats_images.values()])
    hits = 0
    for i in range(len(feats)):
        rest = np.arange(len(feats)) != i
        centroids = np.stack([feats[rest & (labels == k)].mean(axis=0) for k in range(len(DEMO_CLASSES))])
        hits += int(np.argmin(((centroids - feats[i]) ** 2).sum(axis=1)) == labels[i])
    assert hits / len(feats) < 0.7
