"""Images → pooled CNN features, batched, with threaded decoding and an on-disk cache.

The cache is keyed by (featurizer id, SHA-256 of the file's bytes): a re-run, or a run on a
grown dataset, only computes features of new or changed images. Memory stays flat: images are
decoded a few batches ahead of the engine and never all held at once.
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config.settings import EngineConfig, ModelConfig
from ..data.images import read_bytes
from ..util.arrays import l2_normalize
from ..util.errors import ImageError
from ..util.files import atomic_path, sha256_bytes
from ..util.progress import progress_bar
from .backbones import OPENCV_RESAMPLERS
from .engines import Engine, build_engine, cpu_threads, engine_from_cache, resolve_engine
from .ids import FeatureId
from .preprocess import load_and_crop

STALE_TMP_S = 3600.0  # a cache temp file older than this is a killed writer's leftover


class FeatureCache:
    """One ``.npy`` per image under ``root/<featurizer id>/<hash[:2]>/<hash>.npy``."""

    def __init__(self, root: str | os.PathLike, feature_id: FeatureId | str):
        self.dir = Path(root) / str(feature_id)
        self._remove_stale_temp_files()

    def _remove_stale_temp_files(self) -> None:
        """Delete temp files a killed process left (``.<hash>.npy.*.tmp``) once they are older than
        STALE_TMP_S: a younger one may be another process's write in progress."""
        if not self.dir.is_dir():
            return
        cutoff = time.time() - STALE_TMP_S
        for tmp in self.dir.glob("*/.*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:  # gone already, or not ours to delete
                pass

    def _path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.npy"

    def has(self, digest: str) -> bool:
        """Whether the image of content hash ``digest`` has an entry (not whether it still loads)."""
        return self._path(digest).exists()

    def get(self, digest: str) -> np.ndarray | None:
        p = self._path(digest)
        if not p.exists():
            return None
        try:
            value = np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed
        if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != np.float32:
            return None  # not what put() writes (an .npz, say): recomputed too
        return value

    def put(self, digest: str, feature: np.ndarray) -> None:
        with atomic_path(self._path(digest)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(feature, dtype=np.float32), allow_pickle=False)


@dataclass
class FeatureResult:
    """Features of ``paths`` (rows of failed images are zero and ``ok`` False)."""

    paths: list[str]
    features: np.ndarray  # (N, D) float32
    ok: np.ndarray  # (N,) bool
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    cache_hits: int = 0


def _load_into(path: str, spec: Any, cache: FeatureCache | None, out: np.ndarray) -> tuple[str, np.ndarray | None, str]:
    """Decode ``path`` into ``out``, its crop (H, W, 3) uint8 → (digest, cached feature or None, error)."""
    try:
        data = read_bytes(path)  # a regular file only: a FIFO or a device is refused, never read
    except ImageError as e:
        return "", None, str(e)
    digest = ""
    if cache is not None:
        digest = sha256_bytes(data)
        hit = cache.get(digest)
        if hit is not None:
            return digest, hit, ""
    try:
        out[...] = load_and_crop(data, spec)
    except ImageError as e:
        return digest, None, str(e)
    return digest, None, ""


def featurize_paths(
    paths: Sequence[str],
    engine: Engine,
    *,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    threads: int = 0,
    progress: bool = True,
    desc: str = "featurize",
    ahead: int = 2,
) -> FeatureResult:
    """Featurize image files with ``engine``; undecodable files are listed, never fatal.

    ``threads`` decode threads (0 = all cores) fill batch buffers ``ahead`` batches in front of
    the engine, so decoding overlaps inference; memory stays at ``ahead + 1`` batch buffers
    whatever the number of images. Feature-cache writes run on the decode threads too.
    """
    paths = [str(p) for p in paths]
    n = len(paths)
    feats = np.zeros((n, engine.dim), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    errors: list[tuple[str, str]] = []
    cache = FeatureCache(cache_dir, engine.feature_id) if cache_dir else None
    hits = 0
    bar = progress_bar(n, desc, show=progress)
    r = engine.spec.resolution
    buffers = [np.empty((batch_size, r, r, 3), dtype=np.uint8) for _ in range(ahead + 1)]  # (B, H, W, 3) crops
    starts = range(0, n, batch_size)
    with ThreadPoolExecutor(max_workers=cpu_threads(threads), thread_name_prefix="decode") as pool:
        pending: deque[list[Future]] = deque()

        def submit(k: int) -> None:
            if k < len(starts):
                buf = buffers[k % len(buffers)]
                first = starts[k]
                pending.append([pool.submit(_load_into, paths[i], engine.spec, cache, buf[j])
                                for j, i in enumerate(range(first, min(first + batch_size, n)))])

        for k in range(ahead + 1):
            submit(k)
        for k, first in enumerate(starts):
            rows, idx, digests = [], [], []
            for j, fut in enumerate(pending.popleft()):
                i = first + j
                digest, cached, err = fut.result()
                if err:
                    errors.append((paths[i], err))
                elif cached is not None:
                    feats[i], ok[i] = cached, True
                    hits += 1
                else:
                    rows.append(j)
                    idx.append(i)
                    digests.append(digest)
            if idx:
                buf = buffers[k % len(buffers)]
                x = buf[: len(rows)] if rows[-1] == len(rows) - 1 else buf[rows]  # contiguous unless rows failed
                out = engine.run(x)  # (B, D)
                feats[idx] = out
                ok[idx] = True
                if cache is not None:
                    pool.submit(_put_all, cache, digests, out)
            submit(k + ahead + 1)  # this batch's buffer is free again
            bar.update(min(batch_size, n - first))
    bar.close()
    return FeatureResult(paths, feats, ok, errors, hits)


def _put_all(cache: FeatureCache, digests: list[str], features: np.ndarray) -> None:
    for d, f in zip(digests, features):
        cache.put(d, f)


def concat_features(parts: Sequence[np.ndarray]) -> np.ndarray:
    """One featurizer's features as they are; several: each part L2-normalised, then side by side
    (each featurizer weighs the same whatever its feature scale)."""
    if len(parts) == 1:
        return parts[0]
    return np.hstack([l2_normalize(p) for p in parts]).astype(np.float32)


def featurize_many(paths: Sequence[str], engines: Sequence[Engine], **kw: Any) -> FeatureResult:
    """:func:`featurize_paths` with each engine, the features concatenated (:func:`concat_features`);
    an image is usable only when every featurizer read it."""
    results = [featurize_paths(paths, e, **kw) for e in engines]
    if len(results) == 1:
        return results[0]
    ok = np.logical_and.reduce([r.ok for r in results])
    errors = list(dict(e for r in reversed(results) for e in r.errors).items())
    feats = concat_features([r.features for r in results])
    feats[~ok] = 0.0
    return FeatureResult(results[0].paths, feats, ok, errors, sum(r.cache_hits for r in results))


def feature_id_of(model_cfg: ModelConfig, engine_cfg: EngineConfig, weights: str = "imagenet") -> FeatureId:
    """The id of the features ``model_cfg``'s network gives on the (resolved) ``engine_cfg`` (int8: before calibration)."""
    return FeatureId(model_cfg.backbone, model_cfg.resolution, weights, engine_cfg.precision,
                     resampler=model_cfg.resampler if model_cfg.resampler in OPENCV_RESAMPLERS else "")


def build_featurizer(model_cfg: ModelConfig, engine_cfg: EngineConfig, *, state_dict: dict | None = None,
                     weights: str = "imagenet", cache_dir: str | os.PathLike | None = None, **kw: Any) -> Engine:
    """The backbone of ``model_cfg`` (optionally with refined ``state_dict``) on ``engine_cfg``'s engine.

    ``cache_dir`` keeps exported engines between runs; when it already holds this featurizer's
    export, neither torch nor the weights are loaded at all.
    """
    from .backbones import model_backbone

    if state_dict is None and not model_cfg.pretrained:
        weights = "random"
    engine_cfg = resolve_engine(engine_cfg)
    fid = feature_id_of(model_cfg, engine_cfg, weights)
    if state_dict is None and cache_dir is not None:
        engine = engine_from_cache(fid, engine_cfg, cache_dir, **kw)
        if engine is not None:
            return engine
    module, spec = model_backbone(model_cfg, pretrained=model_cfg.pretrained and state_dict is None)
    if state_dict is not None:
        module.load_state_dict(state_dict)
    return build_engine(module, spec, fid, engine_cfg, cache_dir=cache_dir, **kw)
