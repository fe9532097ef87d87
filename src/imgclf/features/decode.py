"""Fast decoding for featurization: JPEGs through libjpeg-turbo with DCT-domain downscaling.

A photo only has to come out at least ``resize_size`` pixels on its shorter side, and libjpeg-turbo
can decode straight to k/8 of the size (``simplejpeg``'s ``min_height``/``min_width``): a 500x375
JPEG asked for >= 256 decodes to 375x282 in ~20% less time than a full decode, and Pillow's draft
mode can only halve. Everything that is not a plain JPEG (other formats, CMYK, anything
simplejpeg refuses) goes through the one safe decoder, :func:`imgclf.images.decode_image`, which
also gives every error its reason. The header checks stay in front of every decode: JPEG
identified by its magic bytes, the pixel limit, EXIF orientation applied.
"""
from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ImageError, ImageTooLarge
from ..images import MAX_PIXELS, decode_image

_JPEG_MAGIC = b"\xff\xd8\xff"
_ORIENTATION = 0x0112  # EXIF tag


@functools.lru_cache(maxsize=1)
def _simplejpeg():
    try:
        import simplejpeg

        return simplejpeg
    except ImportError:  # an optional speed-up: Pillow decodes everything without it
        return None


def read_source(source: bytes | str | os.PathLike) -> bytes:
    """The bytes of ``source``; ImageError with reason ``unreadable`` / ``empty`` when there are none."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ImageError("unreadable", f"{e.strerror or e}") from None
    if not data:
        raise ImageError("empty", "zero bytes")
    return data


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


def _fast_jpeg(data: bytes, min_side: int, max_pixels: int) -> np.ndarray | None:
    """The JPEG decoded by libjpeg-turbo at the smallest k/8 scale keeping both sides >= ``min_side``,
    upright, (H, W, 3) uint8; None when it is not a plain JPEG this path takes."""
    sj = _simplejpeg()
    if sj is None or not data.startswith(_JPEG_MAGIC):
        return None
    try:
        h, w, colorspace, _ = sj.decode_jpeg_header(data)
    except ValueError:
        return None  # the safe decoder names what is wrong
    if w * h > max_pixels:
        raise ImageTooLarge("too_large", f"{w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}")
    if colorspace not in ("YCbCr", "Gray"):
        return None  # CMYK / YCCK: Pillow converts those
    orientation = 1
    if b"Exif" in data[:65536]:
        try:
            orientation = int(Image.open(io.BytesIO(data), formats=["JPEG"]).getexif().get(_ORIENTATION, 1))
        except Exception:  # a damaged EXIF block: the safe decoder decides
            return None
    try:
        a = sj.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False,
                           min_height=min(min_side, h), min_width=min(min_side, w))
    except ValueError:
        return None
    return np.ascontiguousarray(_orient(a, orientation))


def decode_rgb(source: bytes | str | os.PathLike, min_side: int, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``source`` as an upright RGB array (H, W, 3) uint8, downscaled while decoding where the format
    allows, never below ``min_side`` on the shorter side (unless the image is smaller)."""
    data = read_source(source)
    a = _fast_jpeg(data, min_side, max_pixels)
    if a is not None:
        return a
    return np.asarray(decode_image(data, draft_size=min_side, max_pixels=max_pixels))
