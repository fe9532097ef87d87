"""Helpers shared by the engine tests: real photos and generated images as engine inputs (uint8 crops)."""
from __future__ import annotations

import numpy as np
from datagen import make_image
from PIL import Image

from imgclf.features.preprocess import crop_resize_array


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _photos(spec, n: int = 8) -> np.ndarray:
    """Crops of two real photos (scikit-learn's sample images), (n, H, W, 3) uint8."""
    from sklearn.datasets import load_sample_image

    out = []
    for name in ("china.jpg", "flower.jpg"):
        img = Image.fromarray(load_sample_image(name))
        w, h = img.size
        for k in range(n // 2):
            box = (k * w // 16, k * h // 16, w - k * w // 24, h - k * h // 24)
            out.append(crop_resize_array(np.asarray(img.crop(box)), spec))
    return np.stack(out)


def _generated(spec, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    classes = ("circles", "squares", "stripes")
    return np.stack([crop_resize_array(np.asarray(make_image(classes[i % 3], rng, 160)), spec) for i in range(n)])
