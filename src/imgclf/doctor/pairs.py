"""Near-duplicate pairs by feature cosine and by dhash, sorted into what they mean.

Pairs come from :mod:`imgclf.data.duplicates` (the same dhash and cosine searches that ``prepare`` and
``dedup`` use). A pair is ``within_class`` (the same label: one copy is redundant) or
``cross_class`` (the same picture with two labels: a label issue), and ``leak`` when one image is
in train and the other in test (the test figure is then flattered).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..data.duplicates import cosine_pairs, hamming_pairs


@dataclass(frozen=True)
class DuplicatePair:
    a: int  # image indices, a < b
    b: int
    kind: str  # "within_class" or "cross_class"
    leak: bool  # one image in train, the other in test
    cosine: float | None  # feature cosine similarity (None: found by dhash alone, below the cosine threshold)
    dhash_distance: int | None  # dhash bits differing (None: no hash, or above the dhash distance)


def find_duplicates(features: np.ndarray, labels: Sequence[str], splits: Sequence[str], *, cosine: float,
                    codes: np.ndarray | None = None, max_distance: int = 20) -> list[DuplicatePair]:
    """Pairs whose features' cosine reaches ``cosine`` or whose dhash ``codes`` (N, 32) differ in
    at most ``max_distance`` bits; sorted cross-class first, then leaks, then by similarity."""
    by_cos = {(i, j): s for i, j, s in cosine_pairs(features, cosine)}
    by_hash = {(i, j): d for i, j, d in hamming_pairs(codes, max_distance)} if codes is not None else {}
    pairs = []
    for i, j in sorted(set(by_cos) | set(by_hash)):
        kind = "within_class" if labels[i] == labels[j] else "cross_class"
        leak = {splits[i], splits[j]} == {"train", "test"}
        pairs.append(DuplicatePair(i, j, kind, leak, by_cos.get((i, j)), by_hash.get((i, j))))
    pairs.sort(key=lambda p: (p.kind != "cross_class", not p.leak, -(p.cosine or 0.0), p.dhash_distance or 0, p.a, p.b))
    return pairs
