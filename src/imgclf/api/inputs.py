"""What a notebook hands the API, turned into what the pipeline reads.

Images to classify (:func:`image_sources`) may be a path (a folder means every image inside), bytes,
a PIL image, a numpy array (H, W[, C], or a batch N, H, W[, C]), or a list / tuple / pandas Series of
those. Arrays and PIL images are encoded as PNG and then decoded like any file, so every input goes
through the one safe decoder (format allowlist, pixel limit, every mode to RGB).

Labelled data (:func:`labelled_folder`) may be a folder with one subfolder per class, a list of
``(image, label)`` pairs, or a pandas DataFrame with an image column (paths or bytes) and a label
column. Pairs and DataFrames are written once into a class-folder dataset under the data root,
named by the digest of their content and labels, so fitting the same data twice reuses it (and the
feature cache).
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..data.dataset import scan_dataset, walk_images
from ..data.images import is_image_file, read_bytes, sniff_format
from ..util.errors import DatasetError, ImgclfError
from ..util.files import write_json

#: File name extension of each format :func:`imgclf.data.images.sniff_format` names.
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
_DONE = ".imgclf-api.json"


def _png(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _array_png(a: Any) -> bytes:
    import numpy as np
    from PIL import Image

    a = np.asarray(a)
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and float(np.nanmax(a)) <= 1.0 and float(np.nanmin(a)) >= 0.0:
            a = a * 255.0  # floats in [0, 1], as matplotlib and skimage give them
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImgclfError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {a.shape}",
                          hint="pass a batch as (N, H, W, C) or a list of images")
    return _png(Image.fromarray(a))


def image_sources(x: Any) -> tuple[list[str], list[bytes | str]]:
    """(names, sources): one name and one source (a path, or encoded bytes) per image of ``x``.

    Names are the paths as given, or ``<input N>`` for in-memory images."""
    names: list[str] = []
    sources: list[bytes | str] = []
    _collect(x, names, sources)
    return names, sources


def _collect(x: Any, names: list[str], sources: list[bytes | str]) -> None:
    import numpy as np

    if isinstance(x, (str, os.PathLike)):
        p = Path(x)
        if p.is_dir():
            for f in walk_images(p):
                names.append(str(f))
                sources.append(str(f))
        else:
            names.append(str(p))
            sources.append(str(p))
    elif isinstance(x, (bytes, bytearray, memoryview)):
        names.append(f"<input {len(names)}>")
        sources.append(bytes(x))
    elif _is_pil(x):
        names.append(f"<input {len(names)}>")
        sources.append(_png(x))
    elif isinstance(x, np.ndarray):
        if x.ndim == 4 or (x.ndim == 3 and x.shape[2] not in (1, 3, 4)):
            for a in x:
                names.append(f"<input {len(names)}>")
                sources.append(_array_png(a))
        else:
            names.append(f"<input {len(names)}>")
            sources.append(_array_png(x))
    elif _is_series(x) or isinstance(x, (list, tuple)):
        for item in (x.tolist() if _is_series(x) else x):
            _collect(item, names, sources)
    else:
        raise ImgclfError(f"cannot read an image from a {type(x).__name__}",
                          hint="pass a path, a folder, bytes, a PIL image, a numpy array, or a list or pandas Series of them")


def _is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(x, Image.Image)


def _is_series(x: Any) -> bool:
    return type(x).__name__ == "Series" and hasattr(x, "tolist")


def _is_frame(x: Any) -> bool:
    return type(x).__name__ == "DataFrame" and hasattr(x, "columns")


def labelled_pairs(data: Any, image_col: str = "image", label_col: str = "label") -> list[tuple[Any, str]]:
    """``(image, label)`` pairs of a list of pairs or a DataFrame (its ``image_col`` and ``label_col`` columns)."""
    if _is_frame(data):
        missing = [c for c in (image_col, label_col) if c not in data.columns]
        if missing:
            raise DatasetError(f"the DataFrame has no column {', '.join(map(repr, missing))}; its columns are "
                               f"{', '.join(map(str, data.columns))}", hint="name the columns with image_col= and label_col=")
        return list(zip(data[image_col].tolist(), (str(v) for v in data[label_col].tolist())))
    if isinstance(data, (list, tuple)):
        pairs = []
        for i, item in enumerate(data):
            if not (isinstance(item, (list, tuple)) and len(item) == 2):
                raise DatasetError(f"item {i} of the data is not an (image, label) pair: {item!r:.80}",
                                   hint="pass a folder, a list of (image, label) pairs, or a DataFrame")
            pairs.append((item[0], str(item[1])))
        return pairs
    raise DatasetError(f"cannot read labelled images from a {type(data).__name__}",
                       hint="pass a folder with one subfolder per class, a list of (image, label) pairs, or a DataFrame")


def check_label(label: str) -> str:
    """``label`` when it can name a class folder; else a DatasetError that says why."""
    bad = (not label or label in (".", "..") or label.startswith(("_", ".")) or any(c in label for c in "/\\\0")
           or len(label.encode("utf-8")) > 200)
    if bad:
        raise DatasetError(f"the label {label!r} cannot name a class folder (empty, '.', '..', a leading '_' or '.', a "
                           "slash, NUL, or longer than 200 bytes)", hint="rename the class")
    return label


def _content(source: Any) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        return read_bytes(source)
    names, sources = image_sources(source)
    if len(sources) != 1:
        raise DatasetError(f"each labelled item must be one image; got {len(sources)} from a {type(source).__name__}")
    return sources[0] if isinstance(sources[0], bytes) else read_bytes(sources[0])


def _read(i: int, src: Any) -> bytes:
    try:
        return _content(src)
    except OSError as e:
        raise DatasetError(f"cannot read item {i} ({src!s:.120}): {e.strerror or e}") from None


def labelled_folder(data: Any, root: str | os.PathLike, image_col: str = "image", label_col: str = "label") -> Path:
    """The images folder of labelled ``data``: a folder as given, else the class-folder dataset written once
    under ``root/datasets/api-<digest>`` (files copied byte for byte; a file that cannot be read is refused
    here, naming it)."""
    if isinstance(data, (str, os.PathLike)):
        p = Path(data)
        if not p.is_dir():
            raise DatasetError(f"{p} is not a folder", hint="pass a folder with one subfolder per class")
        return p
    pairs = labelled_pairs(data, image_col, label_col)
    if not pairs:
        raise DatasetError("the data holds no images")
    labels = [check_label(label) for _, label in pairs]
    digest = hashlib.sha256()  # first pass: the dataset's name, one image in memory at a time
    for i, ((src, _), label) in enumerate(zip(pairs, labels)):
        digest.update(label.encode("utf-8") + b"\0" + hashlib.sha256(_read(i, src)).digest())
    target = Path(root) / "datasets" / f"api-{digest.hexdigest()[:16]}"
    if (target / _DONE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".api-", dir=target.parent))
    try:  # second pass, only for a dataset not written before
        for i, ((src, _), label) in enumerate(zip(pairs, labels)):
            blob = _read(i, src)
            given = Path(str(src)) if isinstance(src, (str, os.PathLike)) else None
            # unknown bytes keep an image extension so that prepare lists them in skipped.csv with the reason
            ext = _EXTENSIONS.get(sniff_format(blob[:64]) or "") or (given.suffix.lower() if given and is_image_file(given) else ".jpg")
            stem = given.stem if given else "image"
            d = tmp / label
            d.mkdir(exist_ok=True)
            (d / f"{i:06d}_{stem[:80]}{ext}").write_bytes(blob)
        write_json(tmp / _DONE, {"images": len(pairs), "classes": sorted(set(labels))})
        if target.exists():  # an interrupted earlier write: ours (no marker), replaced whole
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def labelled_sources(data: Any, image_col: str = "image", label_col: str = "label") -> tuple[list[str], list[bytes | str], list[str]]:
    """(names, sources, labels) of labelled ``data``: a class-folder dataset (labels as a run reads them),
    a list of (image, label) pairs or a DataFrame."""
    if isinstance(data, (str, os.PathLike)):
        items = scan_dataset(data).items  # labels as a run reads them: class folders corrected by annotations.csv
        return [it.path for it in items], [it.path for it in items], [it.label for it in items]
    names, sources, labels = [], [], []
    for src, label in labelled_pairs(data, image_col, label_col):
        n, s = image_sources(src)
        names.extend(n)
        sources.extend(s)
        labels.extend([label] * len(s))
    return names, sources, labels

