"""The one safe image decoder used everywhere: training, prediction, serving, downloads.

Every input becomes the same thing: an RGB ``PIL.Image`` with EXIF orientation applied,
the first frame of an animation, alpha composited on white, CMYK / palette / grayscale /
16-bit converted. Decompression bombs and formats outside an allowlist are refused
before any pixel is decoded.
"""
from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

from .errors import ImageError, ImageTooLarge, UnsupportedFormat

__all__ = ["ALLOWED_FORMATS", "IMAGE_EXTENSIONS", "MAX_PIXELS", "ImageError", "ImageTooLarge", "UnsupportedFormat",
           "decode_image", "image_size", "is_image_file", "safe_thumbnail"]

#: File extensions a dataset may hold (compared lower-case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: Pillow decoders we trust; recent Pillow CVEs live in the others (PSD, EPS, FITS, ...).
ALLOWED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
#: Refuse images with more pixels than this (Pillow's own default is ~89.5 M).
MAX_PIXELS = 89_478_485

# Truncated files must be errors, never silently grey-padded images.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has an accepted image extension (any letter case)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def _open(fp: BinaryIO, max_pixels: int) -> Image.Image:
    # Pillow's own bomb check reads a process-wide global and warns below 2x its limit; we leave
    # that global alone (decoding runs in threads) and refuse at the warning level ourselves below.
    try:
        img = Image.open(fp, formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge("too_large", str(e)) from None
    except Image.UnidentifiedImageError:
        fp.seek(0)
        try:  # is it a real image of a refused format, or not an image at all?
            fmt = Image.open(fp).format
        except Exception:
            fmt = None
        if fmt:
            raise UnsupportedFormat(
                "unsupported_format", f"{fmt} images are not accepted; use one of {', '.join(ALLOWED_FORMATS)}"
            ) from None
        raise ImageError("not_an_image", "the data is not a recognisable image") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:  # cut off inside the header
        msg = str(e) or type(e).__name__
        raise ImageError("truncated" if "truncated" in msg.lower() else "corrupt", msg) from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageError("corrupt", f"invalid size {w}x{h}")
    if w * h > max_pixels:
        raise ImageTooLarge("too_large", f"{w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}")
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if getattr(img, "is_animated", False):
        img.seek(0)
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def decode_image(
    source: bytes | str | os.PathLike | BinaryIO,
    *,
    draft_size: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Decode ``source`` (bytes, a path or a binary file) into an RGB image.

    ``draft_size`` lets JPEG decoding downscale by 1/2, 1/4 or 1/8 while keeping both sides
    at least ``draft_size`` pixels: a large photo decodes several times faster.
    Raises :class:`ImageError` (or a subclass) with a ``reason`` for anything unusable.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("empty", "zero bytes")
        fp: BinaryIO = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ImageError("unreadable", f"{e.strerror or e}") from None
        if not data:
            raise ImageError("empty", "zero bytes")
        fp = io.BytesIO(data)
    else:
        fp = source
    img = _open(fp, max_pixels)
    try:
        if draft_size and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        img.load()
        return _to_rgb(img)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        msg = str(e) or type(e).__name__
        reason = "truncated" if "truncated" in msg.lower() else "corrupt"
        raise ImageError(reason, msg) from None
    except Image.DecompressionBombError as e:
        raise ImageTooLarge("too_large", str(e)) from None


def safe_thumbnail(source: bytes | str | os.PathLike, size: int = 256) -> Image.Image:
    """An RGB thumbnail no larger than ``size`` on either side, decoded safely."""
    img = decode_image(source, draft_size=size)
    img.thumbnail((size, size))
    return img


def image_size(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image file from its header alone (no pixel is decoded), with the
    decoder's allowlist and bomb check; raises :class:`ImageError` like :func:`decode_image`."""
    try:
        with open(path, "rb") as f:
            return _open(f, max_pixels).size
    except OSError as e:
        raise ImageError("unreadable", f"{e.strerror or e}") from None
