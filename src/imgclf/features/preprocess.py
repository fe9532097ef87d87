"""Image → network input, exactly as the backbone's :class:`DataSpec` says, for every engine."""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from .backbones import DataSpec
from ..images import decode_image

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}


def resize_size(spec: DataSpec) -> int:
    """Shorter side before the center crop (e.g. 256 for 224 at crop_pct 0.875)."""
    return int(math.floor(spec.resolution / spec.crop_pct))


def center_crop_resize(img: Image.Image, spec: DataSpec) -> Image.Image:
    """Resize the shorter side to ``resize_size`` and center-crop ``resolution`` square.

    Done as one resample of just the crop box of the source, so a large photo is never
    resized whole and never becomes a full-size array.
    """
    w, h = img.size
    scale = resize_size(spec) / min(w, h)  # output pixels per source pixel
    side = spec.resolution / scale  # crop side in source pixels
    left, top = (w - side) / 2.0, (h - side) / 2.0
    box = (max(0.0, left), max(0.0, top), min(float(w), left + side), min(float(h), top + side))
    return img.resize((spec.resolution, spec.resolution), _RESAMPLE.get(spec.interpolation, Image.Resampling.BICUBIC), box=box)


def normalize(img: Image.Image, spec: DataSpec) -> np.ndarray:
    """RGB image (resolution²) → float32 array (3, H, W) normalised by the spec's mean and std."""
    u8 = np.asarray(img)  # (H, W, 3) uint8, no copy
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None] * 255.0
    inv_std = 1.0 / (np.asarray(spec.std, dtype=np.float32)[:, None, None] * 255.0)
    out = np.empty((3,) + u8.shape[:2], dtype=np.float32)  # (3, H, W)
    np.subtract(u8.transpose(2, 0, 1), mean, out=out)  # one pass into the final layout: half the time
    out *= inv_std
    return out


def preprocess(img: Image.Image, spec: DataSpec) -> np.ndarray:
    """RGB image of any size → (3, resolution, resolution) float32 network input."""
    return normalize(center_crop_resize(img, spec), spec)


def load_and_preprocess(source: bytes | str | os.PathLike, spec: DataSpec) -> np.ndarray:
    """Safely decode ``source`` (JPEG draft-downscaled when large) and preprocess it."""
    img = decode_image(source, draft_size=resize_size(spec))
    return preprocess(img, spec)
