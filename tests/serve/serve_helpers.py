"""Helpers of the service tests: real servers on 127.0.0.1, generated images, /metrics parsing."""
from __future__ import annotations

import contextlib
import io
import re
import struct
import zlib
from typing import Iterator

import numpy as np
import psutil
from PIL import Image, ImageDraw


@contextlib.contextmanager
def running(predictor, token: str | None = None, **serve: object) -> Iterator[tuple[str, object]]:
    """(base URL, app) of a real server for ``predictor`` with serve settings overridden."""
    from imgclf.config.settings import ServeConfig
    from imgclf.serve.app import create_app
    from imgclf.serve.server import ServerThread

    cfg = ServeConfig(**serve)
    app = create_app(predictor, cfg, token=token)
    with ServerThread(app, cfg) as srv:
        yield srv.url, app


def picture(seed: int = 0, size: int = 96) -> Image.Image:
    """A noisy RGB picture with a few coloured boxes, different for every seed."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = (int(v) for v in rng.integers(0, size - 8, 2))
        draw.rectangle((x, y, x + size // 3, y + size // 4), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


def jpeg(seed: int = 0, size: int = 96) -> bytes:
    """A generated picture as JPEG bytes."""
    return encode(picture(seed, size), "JPEG", quality=90)


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG that declares width × height pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def gif_bomb(width: int = 65535, height: int = 65535) -> bytes:
    """A tiny GIF whose screen and frame declare width × height pixels."""
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b";"


def metric(text: str, name: str, **labels: str) -> float:
    """Value of one sample in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted(x for x in (m.group(2) or "{}")[1:-1].split(",") if x))
        if got == want:
            return float(m.group(3))
    return 0.0


def server_errors(text: str) -> float:
    """Requests answered 5xx (other than 503/504 by design) plus internal errors, from /metrics."""
    total = metric(text, "imgclf_internal_errors_total")
    for line in text.splitlines():
        m = re.search(r'^imgclf_requests_total\{.*status="(5\d\d)".*\}\s+(\S+)$', line)
        if m and m.group(1) not in ("503", "504"):
            total += float(m.group(2))
    return total


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20
