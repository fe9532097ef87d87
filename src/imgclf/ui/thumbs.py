"""Server-side thumbnails, cached on disk by image content so thousands of tiles load fast.

A thumbnail is the image decoded by the one safe decoder and re-encoded as JPEG: the browser
never receives the original file's bytes. Cache files are named ``<sha256>-<size>.jpg`` after
the image's content (so a renamed or copied image reuses them, and an edited one doesn't) and
are written atomically.
"""
from __future__ import annotations

import io
import os
import threading
from pathlib import Path

from ..data.images import safe_thumbnail
from ..util.files import sha256_file, write_bytes

#: Thumbnail sizes the UI asks for (longest side, pixels); anything else is refused.
SIZES = (128, 256, 512, 1024)
_QUALITY = 85  # JPEG quality: small files, no visible artefacts at tile size
_MAX_HASHES = 200_000  # bound on the in-memory (path, mtime, size) → hash memo


class ThumbnailCache:
    """JPEG thumbnails of image files under ``cache_dir``, keyed by content hash and size."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.cache_dir = Path(cache_dir)
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def cache_file(self, path: str | os.PathLike, size: int) -> Path:
        """Where the thumbnail of ``path`` at ``size`` lives (whether made yet or not)."""
        digest = self._hash(Path(path))
        return self.cache_dir / digest[:2] / f"{digest}-{size}.jpg"

    def get(self, path: str | os.PathLike, size: int) -> bytes:
        """JPEG bytes of the thumbnail, made and cached on first use; raises ImageError."""
        if size not in SIZES:
            raise ValueError(f"thumbnail size must be one of {SIZES}; got {size}")
        target = self.cache_file(path, size)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            pass
        buf = io.BytesIO()
        safe_thumbnail(path, size).save(buf, format="JPEG", quality=_QUALITY)
        data = buf.getvalue()
        try:
            write_bytes(target, data)
        except OSError:
            pass  # a full or read-only cache folder only costs speed: the thumbnail is still served
        return data

    def _hash(self, path: Path) -> str:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self._lock:
            digest = self._hashes.get(key)
        if digest is None:
            digest = sha256_file(path)
            with self._lock:
                if len(self._hashes) >= _MAX_HASHES:
                    self._hashes.clear()
                self._hashes[key] = digest
        return digest


def file_version(path: str | os.PathLike) -> str:
    """Changes whenever the file does: put in a thumbnail URL, it lets the browser cache it for good."""
    try:
        st = os.stat(path)
    except OSError:
        return "0"
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"
