"""Exact and near-duplicate images: dhash (16x16, the 2017 sample's method), CNN-feature cosine,
and the one union-find that joins pairs into groups.

Two images are near duplicates when their 256-bit dhashes differ in at most ``max_distance``
bits (or when their features' cosine similarity reaches a threshold). Pairs are found with
vectorised popcounts over blocks of the hash matrix, then joined into groups. Used by the split
(keep duplicates on one side), the leakage check of ``prepare`` and ``imgclf dedup``.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Hashable, Sequence

import numpy as np

from ..util.errors import ImageError
from ..util.progress import progress_bar
from .images import decode_image

if TYPE_CHECKING:
    from PIL import Image

HASH_SIZE = 16  # dhash grid: 16 x 16 = 256 bits
HASH_DRAFT = 256  # big JPEGs decode at 1/2..1/8 scale (>= 256 px) for hashing, several times faster
_BLOCK = 256  # rows compared at once: memory ~ _BLOCK x N x 8 bytes
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def dhash_code(source: str | os.PathLike | bytes) -> np.ndarray:
    """The 256-bit dhash of an image, packed into 32 bytes."""
    return dhash_image(decode_image(source, draft_size=HASH_DRAFT))


def dhash_image(img: "Image.Image") -> np.ndarray:
    """The 256-bit dhash of a decoded RGB image, packed into 32 bytes."""
    import imagehash

    return np.packbits(imagehash.dhash(img, hash_size=HASH_SIZE).hash.reshape(-1))


def groups_from_codes(paths: Sequence[str], codes: np.ndarray, max_distance: int) -> list[list[str]]:
    """Groups (each sorted, size >= 2) of ``paths`` whose packed dhash ``codes`` are within ``max_distance``."""
    groups = connected_groups(len(paths), hamming_pairs(codes, max_distance))
    return sorted(sorted(paths[i] for i in g) for g in groups)


def compute_codes(
    paths: Sequence[str], workers: int = 0, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """(codes (N, 32) uint8, ok (N,) bool, [(path, reason)] of undecodable files)."""
    codes = np.zeros((len(paths), HASH_SIZE * HASH_SIZE // 8), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    errors: list[tuple[str, str]] = []

    def one(i: int) -> None:
        try:
            codes[i] = dhash_code(paths[i])
            ok[i] = True
        except ImageError as e:
            errors.append((paths[i], str(e)))

    bar = progress_bar(len(paths), "hash", leave=True) if progress else None
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="dhash") as pool:
        for _ in pool.map(one, range(len(paths))):
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return codes, ok, sorted(errors)


def popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return _POPCOUNT8[x.view(np.uint8)].reshape(*x.shape, x.itemsize).sum(axis=-1, dtype=np.uint8)


def hamming_pairs(codes: np.ndarray, max_distance: int) -> list[tuple[int, int, int]]:
    """Every pair ``(i, j, distance)`` with i < j whose packed codes differ in <= max_distance bits."""
    n = len(codes)
    if n < 2:
        return []
    words = np.ascontiguousarray(codes).view(np.uint64)  # (N, 4)
    out: list[tuple[int, int, int]] = []
    for s in range(0, n, _BLOCK):
        e = min(s + _BLOCK, n)
        dist = np.zeros((e - s, n - s), dtype=np.uint16)  # (block, remaining)
        for k in range(words.shape[1]):
            dist += popcount(words[s:e, k, None] ^ words[None, s:, k])
        dist[np.tril_indices(e - s, 0, n - s)] = max_distance + 1  # self and lower triangle
        ii, jj = np.nonzero(dist <= max_distance)
        out.extend(zip((ii + s).tolist(), (jj + s).tolist(), dist[ii, jj].tolist()))
    return out


def cosine_pairs(features: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Every pair ``(i, j, cosine)`` with i < j and cosine >= threshold; all-zero rows never pair."""
    x = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    valid = norms[:, 0] > 0
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    n = len(x)
    out: list[tuple[int, int, float]] = []
    for s in range(0, n, _BLOCK):
        e = min(s + _BLOCK, n)
        sim = x[s:e] @ x[s:].T  # (block, remaining)
        sim[np.tril_indices(e - s, 0, n - s)] = -np.inf
        sim[:, ~valid[s:]] = -np.inf
        sim[~valid[s:e]] = -np.inf
        ii, jj = np.nonzero(sim >= threshold)
        out.extend(zip((ii + s).tolist(), (jj + s).tolist(), sim[ii, jj].tolist()))
    return out


class UnionFind:
    """Disjoint sets over hashable items; each set is represented by its smallest member."""

    def __init__(self) -> None:
        self._parent: dict[Hashable, Hashable] = {}

    def find(self, a: Hashable) -> Hashable:
        parent = self._parent
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]  # path halving
            a = parent[a]
        return a

    def union(self, a: Hashable, b: Hashable) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = (ra, rb) if ra < rb else (rb, ra)  # type: ignore[operator]
            self._parent[hi] = lo


def connected_groups(n: int, pairs: Sequence[tuple[int, int, object]]) -> list[list[int]]:
    """The components of ``range(n)`` joined by ``pairs`` that have two or more members,
    each sorted, ordered by first index."""
    uf = UnionFind()
    for i, j, _ in pairs:
        uf.union(i, j)
    comps: dict[Hashable, list[int]] = {}
    for i in range(n):
        comps.setdefault(uf.find(i), []).append(i)
    return sorted((c for c in comps.values() if len(c) > 1), key=lambda c: c[0])


def duplicate_groups(paths: list[str], max_distance: int) -> list[list[str]]:
    """Groups (each sorted, size >= 2) of images whose dhashes are within ``max_distance`` bits.

    Undecodable files are left out. Used by the split to keep near duplicates on one side.
    """
    codes, ok, _ = compute_codes(paths)
    return groups_from_codes([p for p, good in zip(paths, ok) if good], codes[ok], max_distance)


def near_duplicates_by_features(features: np.ndarray, paths: Sequence[str], threshold: float) -> list[list[str]]:
    """Groups (each sorted, size >= 2) of images whose features' cosine similarity >= ``threshold``."""
    if len(features) != len(paths):
        raise ValueError(f"features has {len(features)} rows but {len(paths)} paths were given")
    groups = connected_groups(len(paths), cosine_pairs(features, threshold))
    return sorted(sorted(paths[i] for i in g) for g in groups)
