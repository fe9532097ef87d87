"""Files an upload meets: distinct photos-like images, a re-encoded copy, a non-image, a header over the pixel limit."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def noise_jpeg(seed: int, size: int = 64) -> bytes:
    """A JPEG of random blocks: any two seeds give images far apart in dhash."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((size, size), Image.NEAREST).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def reencoded(path: Path, quality: int = 75) -> bytes:
    """The image at ``path`` saved again as a JPEG of another quality: other bytes, nearly the same image."""
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def huge_png(width: int = 8_000, height: int = 8_000) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` pixels (over the default limit), with no pixel data to speak of."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


NOT_AN_IMAGE = b"name,label\nthis is a CSV file, not an image\n"
