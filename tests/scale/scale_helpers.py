"""Hostile files for the Ray tests (importable as ``scale_helpers``)."""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG that declares width x height pixels and holds almost nothing: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def write_hostile(folder: Path) -> list[Path]:
    """Eight files no decoder may accept: random bytes, a cut JPEG, a JPEG header alone, a decompression bomb,
    text, an empty file, a TGA (outside the allowlist) named .png, and a FIFO, which must be refused unopened."""
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    tga = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tga, "TGA")
    files = {"random.jpg": os.urandom(2048), "cut.jpg": jpeg[: len(jpeg) // 3] + b"\xff\xd9",
             "bomb.png": _png_header(20000, 20000), "text.png": b"not an image at all\n", "empty.jpg": b"",
             "disguised.png": tga.getvalue(), "header_only.jpg": jpeg[:20]}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    os.mkfifo(folder / "fifo.jpg")
    return sorted(folder.iterdir())
