"""Fast decoding for featurization: JPEGs through libjpeg-turbo with DCT-domain downscaling.

A photo only has to come out at least ``resize_size`` pixels on its shorter side, and libjpeg-turbo
can decode straight to k/8 of the size (``simplejpeg``'s ``min_height``/``min_width``): a 500x375
JPEG asked for >= 256 decodes to 375x282, faster than a full decode, and Pillow's draft mode can
only halve. Everything that is not a plain JPEG (other formats, CMYK, anything
simplejpeg refuses) goes through the one safe decoder, :func:`imgclf.data.images.decode_image`, which
also gives every error its reason. The header checks stay in front of every decode: JPEG
identified by its magic bytes, the pixel limit, EXIF orientation applied. The decode is strict:
a libjpeg warning (data cut short, corrupt) sends the file to the safe decoder, which refuses it
unless the warning is a harmless one (:func:`imgclf.data.images.check_jpeg`).
"""
from __future__ import annotations

import functools
import os

import numpy as np

from ..data.images import decode_image, read_bytes, read_header

_JPEG_MAGIC = b"\xff\xd8\xff"


@functools.lru_cache(maxsize=1)
def _simplejpeg():
    try:
        import simplejpeg

        return simplejpeg
    except ImportError:  # an optional speed-up: Pillow decodes everything without it
        return None


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """``a`` (H, W, 3) turned upright as EXIF ``orientation`` says (what ``ImageOps.exif_transpose`` does)."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return a.transpose(1, 0, 2)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(a, 1)
    return a


def _fast_jpeg(data: bytes, min_side: int, max_pixels: int | None) -> np.ndarray | None:
    """The JPEG decoded by libjpeg-turbo at the smallest k/8 scale keeping both sides >= ``min_side``,
    upright, (H, W, 3) uint8; None when it is not a plain JPEG this path takes."""
    sj = _simplejpeg()
    if sj is None or not data.startswith(_JPEG_MAGIC):
        return None
    header = read_header(data, max_pixels=max_pixels)  # format by magic bytes, pixel limit, EXIF orientation
    if header.format != "JPEG":
        return None
    try:
        if sj.decode_jpeg_header(data)[2] not in ("YCbCr", "Gray"):
            return None  # CMYK / YCCK: Pillow's conversion (Adobe's inverted CMYK included) is the reference
        a = sj.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False, strict=True,
                           min_height=min(min_side, header.height), min_width=min(min_side, header.width))
    except ValueError:
        return None  # damaged, or a libjpeg warning: the safe decoder refuses it or names what is wrong
    return np.ascontiguousarray(_orient(a, header.orientation))


def decode_rgb(source: bytes | str | os.PathLike, min_side: int, *, max_pixels: int | None = None) -> np.ndarray:
    """``source`` as an upright RGB array (H, W, 3) uint8, downscaled while decoding where the format
    allows, never below ``min_side`` on the shorter side (unless the image is smaller). ``max_pixels``
    defaults to ``images.max_pixels``."""
    data = read_bytes(source, max_pixels=max_pixels)
    a = _fast_jpeg(data, min_side, max_pixels)
    if a is not None:
        return a
    return np.asarray(decode_image(data, draft_size=min_side, max_pixels=max_pixels))
