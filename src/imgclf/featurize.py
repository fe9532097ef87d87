"""Images → pooled CNN features, batched, with threaded decoding and an on-disk cache.

The cache is keyed by (featurizer id, SHA-256 of the file's bytes): a re-run, or a run on a
grown dataset, only computes features of new or changed images. Memory stays flat: images are
decoded a few batches ahead of the engine and never all held at once.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .engines import Engine, cpu_threads
from .fileio import atomic_path, sha256_bytes
from .images import ImageError
from .preprocess import load_and_preprocess


class FeatureCache:
    """One ``.npy`` per image under ``root/<featurizer id>/<hash[:2]>/<hash>.npy``."""

    def __init__(self, root: str | os.PathLike, feature_id: str):
        self.dir = Path(root) / feature_id

    def _path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        p = self._path(digest)
        if not p.exists():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed

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


def _load(path: str, spec: Any, cache: FeatureCache | None) -> tuple[str, np.ndarray | None, np.ndarray | None, str]:
    """(digest, cached feature or None, preprocessed input or None, error)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return "", None, None, f"unreadable: {e.strerror or e}"
    digest = sha256_bytes(data)
    if cache is not None:
        hit = cache.get(digest)
        if hit is not None:
            return digest, hit, None, ""
    try:
        return digest, None, load_and_preprocess(data, spec), ""
    except ImageError as e:
        return digest, None, None, str(e)


def featurize_paths(
    paths: Sequence[str],
    engine: Engine,
    *,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    threads: int = 0,
    progress: bool = True,
    desc: str = "featurize",
) -> FeatureResult:
    """Featurize image files with ``engine``; undecodable files are listed, never fatal."""
    paths = [str(p) for p in paths]
    n = len(paths)
    feats = np.zeros((n, engine.dim), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    errors: list[tuple[str, str]] = []
    cache = FeatureCache(cache_dir, engine.feature_id) if cache_dir else None
    hits = 0
    bar = _progress(n, desc) if progress else None
    pending: deque[tuple[int, Future]] = deque()
    lookahead = 3 * batch_size  # decode ahead of the engine, but never the whole dataset
    with ThreadPoolExecutor(max_workers=cpu_threads(threads), thread_name_prefix="decode") as pool:
        it = iter(range(n))

        def fill() -> None:
            while len(pending) < lookahead:
                i = next(it, None)
                if i is None:
                    return
                pending.append((i, pool.submit(_load, paths[i], engine.spec, cache)))

        fill()
        while pending:
            idx, inputs, digests = [], [], []
            while pending and len(idx) < batch_size:
                i, fut = pending.popleft()
                digest, cached, x, err = fut.result()
                if err:
                    errors.append((paths[i], err))
                elif cached is not None:
                    feats[i], ok[i] = cached, True
                    hits += 1
                else:
                    idx.append(i)
                    inputs.append(x)
                    digests.append(digest)
                if bar is not None:
                    bar.update(1)
            fill()  # keep decoding while the engine runs
            if idx:
                out = engine.run(np.stack(inputs))  # (B, D)
                feats[idx] = out
                ok[idx] = True
                if cache is not None:
                    for d, f in zip(digests, out):
                        cache.put(d, f)
    if bar is not None:
        bar.close()
    return FeatureResult(paths, feats, ok, errors, hits)


def featurize_arrays(inputs: Iterable[np.ndarray], engine: Engine, batch_size: int = 32) -> np.ndarray:
    """Features of already preprocessed inputs ``(3, H, W)``, in batches → (N, D)."""
    inputs = list(inputs)
    if not inputs:
        return np.zeros((0, engine.dim), dtype=np.float32)
    return np.concatenate([engine.run(np.stack(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)])


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True, mininterval=0.5)


def feature_id(backbone: str, resolution: int, weights: str = "imagenet", precision: str = "fp32") -> str:
    """Cache key of a featurizer: engines of the same precision give the same features."""
    return f"{backbone}-r{resolution}-{weights}-{precision}"


def build_featurizer(model_cfg: Any, engine_cfg: Any, *, state_dict: dict | None = None, weights: str = "imagenet", **kw: Any) -> Engine:
    """The backbone of ``model_cfg`` (optionally with refined ``state_dict``) on ``engine_cfg``'s engine."""
    from .backbones import create_backbone
    from .engines import build_engine

    module, spec = create_backbone(model_cfg.backbone, model_cfg.resolution, pretrained=model_cfg.pretrained and state_dict is None)
    if state_dict is not None:
        module.load_state_dict(state_dict)
    fid = feature_id(model_cfg.backbone, model_cfg.resolution, weights, getattr(engine_cfg, "precision", "fp32"))
    return build_engine(module, spec, fid, engine_cfg, **kw)
