"""A built-in demo dataset: photos of dotted, striped and leopard-print clothes, drawn offline.

It stands in for the 2017 CNTK image-classification sample (clothing textures) so the whole
pipeline can be tried without downloading anything. Each picture is a garment silhouette cut
from a randomly coloured, scaled, rotated and perspective-warped texture, laid over a varied
background, then lit, occluded, blurred, noised and JPEG-compressed, so the task is realistic
rather than trivially separable (the drawing is :mod:`imgclf.data.demotextures`). Image ``i`` of class
``c`` depends only on ``(seed, c, i)``: the same seed gives byte-identical files, and any image can be
drawn on its own. This module writes them: the folder, its manifest, and never a file it did not write.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..util.errors import ImgclfError
from ..util.files import read_json, sha256_bytes, sha256_file, write_bytes, write_json
from .demotextures import picture
from .images import is_image_file

#: The demo's classes, in label order.
DEMO_CLASSES = ("dotted", "striped", "leopard")
#: Bump when the drawing changes, so folders made by an older generator are redrawn.
GENERATOR_VERSION = 1
_MANIFEST = ".imgclf-demo.json"
_JPEG_QUALITY = 90

def generate_demo(
    out_dir: str | os.PathLike, n_per_class: int = 100, seed: int = 0, size: int = 256
) -> dict[str, int]:
    """Write the demo dataset to ``out_dir/<class>/<class>_NNNN.jpg``; return images per class.

    A folder that already holds this dataset (same seed, size and generator) is left as is;
    only missing files are drawn. The demo writes only into a new or empty folder, or one it
    made before (``.imgclf-demo.json`` lists every file it wrote, with its SHA-256): anything
    else is refused before a byte is written, and a file it did not write is never overwritten.
    Counts are the images each class folder holds afterwards.
    """
    _check_args(out_dir, n_per_class, seed, size)
    out = Path(out_dir)
    params = {"generator": "imgclf.demo", "version": GENERATOR_VERSION, "seed": seed, "size": size}
    old = _read_manifest(out / _MANIFEST)
    if old is None and out.is_dir() and any(out.iterdir()):
        raise ImgclfError(f"{out} is not empty and was not made by `imgclf demo` (it has no {_MANIFEST}), e.g. it holds "
                          f"{', '.join(sorted(p.name for p in out.iterdir())[:3])}; the demo writes only into a new or "
                          "empty folder, so your files stay as they are",
                          hint="choose another folder, e.g. --set data.dataset=demo (DATA_ROOT/datasets/demo)")
    owned = _owned(out, old)
    targets = [(ci, i, f"{label}/{label}_{i:04d}.jpg") for ci, label in enumerate(DEMO_CLASSES) for i in range(n_per_class)]
    foreign = [rel for _, _, rel in targets if (out / rel).exists() and not _is_ours(out / rel, owned.get(rel))]
    if foreign:
        raise ImgclfError(f"{len(foreign)} file(s) in {out} where the demo would write were not written by it, e.g. "
                          f"{', '.join(foreign[:3])}; nothing was written",
                          hint="move those files elsewhere, or choose another folder for the demo")
    same = {k: (old or {}).get(k) for k in params} == params
    keep = {rel for _, _, rel in targets if same and owned.get(rel) and _is_ours(out / rel, owned[rel])}
    files = {**owned, **{rel: "" for _, _, rel in targets if rel not in keep}}
    write_json(out / _MANIFEST, {**params, "files": files})  # claim the files before writing them: a kill leaves them ours
    for ci, i, rel in targets:
        if rel in keep:
            continue
        buf = io.BytesIO()
        picture(ci, _rng(seed, ci, i), size).save(buf, format="JPEG", quality=_JPEG_QUALITY)
        write_bytes(out / rel, buf.getvalue())
        files[rel] = sha256_bytes(buf.getvalue())
    write_json(out / _MANIFEST, {**params, "files": files})
    return {label: sum(1 for p in (out / label).iterdir() if is_image_file(p)) for label in DEMO_CLASSES}


def _owned(out: Path, manifest: dict | None) -> dict[str, str]:
    """The files an earlier ``generate_demo`` wrote in ``out``: relative path → SHA-256 ("" = claimed before
    writing, or listed by a manifest older than the file list, which names them by pattern)."""
    if manifest is None:
        return {}
    files = manifest.get("files")
    if isinstance(files, dict):
        return {str(k): str(v) for k, v in files.items()}
    return {f"{label}/{p.name}": "" for label in DEMO_CLASSES if (out / label).is_dir()
            for p in (out / label).iterdir() if re.fullmatch(rf"{label}_\d{{4}}\.jpg", p.name)}


def _is_ours(path: Path, digest: str | None) -> bool:
    """True when ``path`` is a file the demo wrote and nobody changed since (or claimed and maybe half-written)."""
    if digest is None or not path.is_file():
        return False
    return digest == "" or sha256_file(path) == digest


def demo_image(label: str, index: int, seed: int = 0, size: int = 256) -> Image.Image:
    """Draw one demo picture (the one ``generate_demo`` saves, before JPEG) as an RGB image."""
    if label not in DEMO_CLASSES:
        raise ImgclfError(f"unknown demo class {label!r}", hint=f"use one of {', '.join(DEMO_CLASSES)}")
    ci = DEMO_CLASSES.index(label)
    return picture(ci, _rng(seed, ci, index), size)


def _check_args(out_dir: str | os.PathLike, n_per_class: int, seed: int, size: int) -> None:
    if not isinstance(n_per_class, int) or n_per_class < 1:
        raise ImgclfError(f"n_per_class must be a positive integer, got {n_per_class!r}",
                          hint="ask for at least 1 image per class, e.g. 100")
    if not isinstance(seed, int) or seed < 0:
        raise ImgclfError(f"seed must be a non-negative integer, got {seed!r}", hint="use e.g. seed=0")
    if not isinstance(size, int) or not 32 <= size <= 2048:
        raise ImgclfError(f"size must be an integer from 32 to 2048 pixels, got {size!r}",
                          hint="use e.g. size=256")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ImgclfError(f"{out_dir} exists and is not a folder", hint="give a new or existing folder path")


def _read_manifest(path: Path) -> dict | None:
    try:
        manifest = read_json(path)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("generator") == "imgclf.demo" else None


def _rng(seed: int, class_index: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, class_index, index]))
