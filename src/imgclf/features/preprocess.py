"""Image → network input, exactly as the backbone's :class:`DataSpec` says: ONE function for every
engine and every caller (featurize, predict, serve, the UI, refinement's validation).

The shorter side is resized to ``resize_size`` and the center ``resolution``² crop is taken, as one
resample of just the crop box of the source (a large photo is never resized whole). The resampler is
the spec's ``interpolation``:

- ``"area"``: OpenCV's anti-aliased area average when shrinking (faster than Pillow's bicubic);
- ``"fast"``: OpenCV's bicubic when the crop shrinks by at most ``FAST_CUBIC_MAX`` (most photos:
  decoding with DCT scaling already brings them close to the network's size, where a cubic kernel
  samples densely enough and costs less than the area average), the area average beyond;
- both enlarge a small image with Pillow's bicubic (there is nothing to average);
- or a Pillow filter (``"bicubic"``, what bundles made before the OpenCV resamplers record,
  ``"bilinear"``, ``"nearest"``).

The crop, (resolution, resolution, 3) uint8 (:func:`load_and_crop`), is what every engine takes; the
mean/std normalisation to the float tensor (:func:`normalize`) is the engine's last step (OpenVINO
compiles it into the network), so the same crop gives the same features on every engine.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np
from PIL import Image

from .backbones import OPENCV_RESAMPLERS, DataSpec
from .decode import decode_rgb

FAST_CUBIC_MAX = 1.25  # "fast": the largest shrink of the crop resized by OpenCV's bicubic (beyond it, the area average)
_PIL = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}


@functools.lru_cache(maxsize=1)
def _cv2():
    import cv2

    cv2.setNumThreads(1)  # images are resized on the decode threads: OpenCV's own pool would oversubscribe the cores
    return cv2


def resize_size(spec: DataSpec) -> int:
    """Shorter side before the center crop (e.g. 256 for 224 at crop_pct 0.875)."""
    return int(math.floor(spec.resolution / spec.crop_pct))


def crop_box(width: int, height: int, spec: DataSpec) -> tuple[float, float, float]:
    """(left, top, side): the square of a ``width`` × ``height`` image, in its pixels, that the network sees."""
    scale = resize_size(spec) / min(width, height)  # output pixels per source pixel
    side = spec.resolution / scale
    return (width - side) / 2.0, (height - side) / 2.0, side


def crop_resize_array(a: np.ndarray, spec: DataSpec) -> np.ndarray:
    """RGB array (H, W, 3) uint8 of any size → its center crop resized to (resolution, resolution, 3) uint8."""
    h, w = a.shape[:2]
    r = spec.resolution
    left, top, side = crop_box(w, h, spec)
    if spec.interpolation in OPENCV_RESAMPLERS and side >= r:  # enlarging has nothing to average: Pillow's bicubic below
        cv2 = _cv2()
        x0, y0 = max(0, int(round(left))), max(0, int(round(top)))
        x1, y1 = min(w, int(round(left + side))), min(h, int(round(top + side)))
        cubic = spec.interpolation == "fast" and side <= FAST_CUBIC_MAX * r
        return cv2.resize(np.ascontiguousarray(a[y0:y1, x0:x1]), (r, r), interpolation=cv2.INTER_CUBIC if cubic else cv2.INTER_AREA)
    box = (max(0.0, left), max(0.0, top), min(float(w), left + side), min(float(h), top + side))
    img = Image.fromarray(np.ascontiguousarray(a))
    return np.asarray(img.resize((r, r), _PIL.get(spec.interpolation, Image.Resampling.BICUBIC), box=box))


def center_crop_resize(img: Image.Image, spec: DataSpec) -> Image.Image:
    """:func:`crop_resize_array` for a Pillow image (refinement's augmentation works on those)."""
    return Image.fromarray(crop_resize_array(np.asarray(img), spec))


def normalize(img: Image.Image | np.ndarray, spec: DataSpec) -> np.ndarray:
    """RGB image or array (..., H, W, 3) uint8 → float32 (..., 3, H, W) normalised by the spec's mean and std
    (one image, or a batch of crops)."""
    u8 = np.asarray(img)  # (..., H, W, 3) uint8, no copy
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None] * 255.0
    inv_std = 1.0 / (np.asarray(spec.std, dtype=np.float32)[:, None, None] * 255.0)
    out = np.empty(u8.shape[:-3] + (3,) + u8.shape[-3:-1], dtype=np.float32)  # (..., 3, H, W)
    np.subtract(np.moveaxis(u8, -1, -3), mean, out=out)  # one pass into the final layout: half the time
    out *= inv_std
    return out


def is_crops(batch: np.ndarray) -> bool:
    """True for uint8 crops (..., H, W, 3) from :func:`load_and_crop`; False for the normalised float input (..., 3, H, W)."""
    return batch.dtype == np.uint8 and batch.shape[-1] == 3


def network_input(batch: np.ndarray, spec: DataSpec) -> np.ndarray:
    """What a network's float input tensor takes, (B, 3, H, W) float32, from an engine's input: a batch
    of uint8 crops (B, H, W, 3) (:func:`load_and_crop`) is normalised here; float input is taken as normalised."""
    batch = np.asarray(batch)
    if is_crops(batch):
        return normalize(batch, spec)
    return np.ascontiguousarray(batch, dtype=np.float32)


def preprocess(img: Image.Image | np.ndarray, spec: DataSpec) -> np.ndarray:
    """A decoded RGB image (or array) of any size → (3, resolution, resolution) float32 network input."""
    return normalize(crop_resize_array(np.asarray(img), spec), spec)


def load_and_crop(source: bytes | str | os.PathLike, spec: DataSpec, *, max_pixels: int | None = None) -> np.ndarray:
    """Safely decode ``source`` (downscaled while decoding where the format allows) → the square the
    network sees, (resolution, resolution, 3) uint8: what every engine takes, normalising it itself
    (OpenVINO inside the compiled network, which spares the decode threads a float pass and 3/4 of
    the buffer memory). ``max_pixels``: the decoder's pixel limit (default ``images.max_pixels``)."""
    return crop_resize_array(decode_rgb(source, resize_size(spec), max_pixels=max_pixels), spec)


def load_and_preprocess(source: bytes | str | os.PathLike, spec: DataSpec) -> np.ndarray:
    """Safely decode ``source`` and preprocess it → (3, H, W) float32 (:func:`load_and_crop`, normalised)."""
    return normalize(load_and_crop(source, spec), spec)
