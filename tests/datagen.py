"""Small generated datasets for tests, and folders built once for the whole test run (importable as ``datagen``
from any test folder)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    import pytest

CLASSES = ("circles", "squares", "stripes")

# one compute thread: tiny steps gain nothing from two, and a thread team stalls badly when
# another process holds a core (the CPU is shared while tests run)
# refine.backbone/resolution "" / 0: refine model.* (lite0 at 64 px), not the lite2 at 320 px of the defaults
TINY_REFINE = ("model.resolution=64", 'refine.backbone=""', "refine.resolution=0", "refine.batch_size=4", "refine.base_lr=0.003", "refine.val_fraction=0.2", "engine.threads=1",
               "svm.cv_folds=3", "svm.c_values=[0.01, 1.0, 100.0]", "tracking.enabled=false")


def make_image(cls: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    """A noisy picture of ``cls`` with random colours: easy for a CNN, not for a pixel mean."""
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    fg = tuple(int(v) for v in rng.integers(0, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    if cls == "circles":
        for _ in range(int(rng.integers(3, 7))):
            x, y, r = rng.integers(0, size), rng.integers(0, size), rng.integers(6, 16)
            d.ellipse((x - r, y - r, x + r, y + r), fill=fg)
    elif cls == "squares":
        for _ in range(int(rng.integers(3, 7))):
            x, y, r = rng.integers(0, size), rng.integers(0, size), rng.integers(6, 16)
            d.rectangle((x - r, y - r, x + r, y + r), fill=fg)
    else:
        w = int(rng.integers(4, 12))
        for x in range(0, size, 2 * w):
            d.rectangle((x, 0, x + w - 1, size), fill=fg)
        img = img.rotate(float(rng.uniform(-40, 40)), fillcolor=bg)
    arr = np.asarray(img, dtype=np.int16) + rng.integers(-20, 21, (size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_dataset(root: Path, n_per_class: int = 12, seed: int = 0, classes=CLASSES, size: int = 96) -> Path:
    """Write ``root/<class>/<class>_NNN.jpg`` images; returns root."""
    rng = np.random.default_rng(seed)
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            make_image(cls, rng, size).save(root / cls / f"{cls}_{i:03d}.jpg", quality=90)
    return root


SHARED_ENGINES: Path | None = None  # the session's one engine cache (tests/conftest.py sets it)


def shared_engines(data_root: Path) -> Path:
    """Make ``data_root/engines`` (ONNX exports, int8 files) a link to the session's one engine cache, so a
    featurizer is exported once per test session, not once per data root; returns ``data_root``.

    Exports are keyed by featurizer id and written atomically, so runs sharing them stay independent.
    A data root whose ``engines`` exists already keeps it (a test of the cache itself makes its own first).
    """
    link = data_root / "engines"
    if SHARED_ENGINES is not None and not link.exists() and not link.is_symlink():
        data_root.mkdir(parents=True, exist_ok=True)
        link.symlink_to(SHARED_ENGINES, target_is_directory=True)
    return data_root


def tiny_config(data_root: Path, images: Path, *extra: str):
    """A fast config (3 CV folds, 3 C values, no tracking) over ``images``; ``data_root`` shares the session's engines."""
    from imgclf.config.settings import load_config

    shared_engines(data_root)
    return load_config(None, [f'data.root="{data_root}"', f'data.images="{images}"', "svm.cv_folds=3",
                              "svm.c_values=[0.01, 1.0, 100.0]", "tracking.enabled=false", *extra])


def make_object_image(cls: str, rng: np.random.Generator, size: int = 224, obj: int = 96) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One ``obj``-px textured square of ``cls`` at a random place on a plain background → (image, its box x0, y0, x1, y1)."""
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
    x0, y0 = (int(v) for v in rng.integers(0, size - obj, 2))
    img.paste(make_image(cls, rng, obj), (x0, y0))
    return img, (x0, y0, x0 + obj, y0 + obj)


def run_wide_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temp folder of the whole test run: under xdist the parent of the workers' own temp folders."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """``run_wide_temp/name``, made by ``build(folder)`` in the first worker that asks for it; the others wait for
    it under a file lock, then use the same folder. What is built this way is read-only to the tests."""
    from filelock import FileLock

    root = run_wide_temp(tmp_path_factory)
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half way in another worker
            build(folder)
            done.touch()
    return folder
