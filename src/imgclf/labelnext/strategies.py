"""Selection strategies: which pool images to label next, from the current head's probabilities
and the images' features.

- ``margin``: most uncertain first, uncertainty ``1 - (p1 - p2)`` (the two highest probabilities);
- ``entropy``: most uncertain first, uncertainty = entropy of the probabilities / log K;
- ``kcenter``: greedy k-center (core-set): each pick is the pool image farthest (cosine distance of
  L2-normalised features) from every labelled image and every earlier pick;
- ``density``: margin weighted by representativeness (information density): uncertainty times the
  mean cosine similarity of the image to its ``NEIGHBOURS`` most similar pool images, so an uncertain
  image from a crowded region of the pool goes before an uncertain outlier;
- ``hybrid``: greedy k-center among the ``candidates x n`` most uncertain images (by margin), so a
  batch is uncertain yet not a set of near copies;
- ``random``: a uniform draw, the baseline every strategy is measured against.

Every strategy but ``random`` skips pool images whose cosine similarity to a labelled image
reaches ``duplicate_cosine`` (labelling a copy teaches nothing), and ``margin`` / ``entropy`` /
``density`` also skip an image that near-duplicates one already in the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config.settings import DoctorConfig
from ..data.duplicates import cosine_pairs
from ..util.arrays import l2_normalize
from ..util.errors import ConfigError

STRATEGIES = ("density", "margin", "entropy", "kcenter", "hybrid", "random")
DEFAULT_STRATEGY = "density"  # fewest labels to reach random's final accuracy on 4 sets (BENCHMARKS.md)
NEIGHBOURS = 10  # density: representativeness = mean cosine similarity to this many most similar pool images
CANDIDATES = 4  # hybrid: k-center among the CANDIDATES x n most uncertain images
REASONS = {"density": "uncertain, like many unlabelled images", "margin": "uncertain", "entropy": "uncertain", "kcenter": "unlike the labelled images",
           "hybrid": "uncertain, unlike the labelled images", "random": "random"}
_BLOCK = 1024  # pool rows compared with the labelled images at once


@dataclass(frozen=True)
class Selection:
    """A batch to label: pool rows in the order picked, each with its score and why it was picked."""

    indices: np.ndarray  # (n,) int: rows of the pool
    scores: np.ndarray  # (n,) float: uncertainty in [0, 1] (density: times representativeness; kcenter: cosine distance to the nearest labelled image)
    reason: str  # what made these images worth labelling (REASONS)
    skipped: np.ndarray  # (m,) int: pool rows left out as near duplicates of labelled images


def check_strategy(strategy: str) -> str:
    """``strategy`` when it is one of STRATEGIES, else a ConfigError that lists them."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown selection strategy {strategy!r}; expected one of: {', '.join(STRATEGIES)}")
    return strategy


def uncertainty(proba: np.ndarray, kind: str = "margin") -> np.ndarray:
    """(N,) uncertainty in [0, 1] of probability rows (N, K): ``1 - (p1 - p2)`` or normalised entropy."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"proba must be (N, K) with K >= 2 classes; got shape {p.shape}")
    if kind == "margin":
        top2 = -np.partition(-p, 1, axis=1)[:, :2]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    if kind == "entropy":
        return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1) / np.log(p.shape[1])
    raise ValueError(f"uncertainty kind must be 'margin' or 'entropy'; got {kind!r}")


def nearest_similarity(pool: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """(P,) cosine similarity of each pool row to its most similar labelled row (-1 when none is labelled)."""
    x, c = l2_normalize(np.asarray(pool, np.float32)), l2_normalize(np.asarray(labelled, np.float32))
    if not len(c):
        return np.full(len(x), -1.0)
    return np.concatenate([(x[s:s + _BLOCK] @ c.T).max(axis=1) for s in range(0, len(x), _BLOCK)]) if len(x) else np.zeros(0)


def representativeness(pool: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """(P,) mean cosine similarity of each pool row to its ``neighbours`` most similar other rows (1.0 when the
    pool has no other row): high in a crowded region of the pool, low for an outlier."""
    x = l2_normalize(np.asarray(pool, np.float32))
    k = min(neighbours, len(x) - 1)
    if k < 1:
        return np.ones(len(x))
    out = np.empty(len(x))
    for s in range(0, len(x), _BLOCK):
        sim = x[s:s + _BLOCK] @ x.T
        sim[np.arange(len(sim)), np.arange(s, s + len(sim))] = -np.inf  # not its own neighbour
        out[s:s + _BLOCK] = -np.partition(-sim, k - 1, axis=1)[:, :k].mean(axis=1)
    return out


def kcenter_greedy(pool: np.ndarray, labelled: np.ndarray, n: int, *, allowed: np.ndarray | None = None,
                   start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center: ``n`` rows of ``pool`` (only ``allowed`` ones), each the farthest from the labelled rows
    and the earlier picks → (indices, cosine distance of each when picked). ``start``: the pool's precomputed
    :func:`nearest_similarity` to ``labelled``."""
    x = l2_normalize(np.asarray(pool, np.float32))
    dist = 1.0 - (nearest_similarity(x, labelled) if start is None else start)  # (P,) distance to the nearest center
    if allowed is not None:
        dist = np.where(allowed, dist, -np.inf)
    picked, at = [], []
    for _ in range(min(n, len(x))):
        i = int(np.argmax(dist))
        if dist[i] == -np.inf:
            break
        picked.append(i)
        at.append(float(dist[i]))
        dist = np.minimum(dist, 1.0 - x @ x[i])
        dist[picked] = -np.inf
    return np.array(picked, dtype=int), np.array(at)


def select(strategy: str, proba: np.ndarray, pool: np.ndarray, labelled: np.ndarray, n: int, *, seed: int = 0,
           duplicate_cosine: float = DoctorConfig.duplicate_cosine, candidates: int = CANDIDATES) -> Selection:
    """The ``n`` pool images to label next by ``strategy`` (see the module docstring).

    ``proba`` (P, K): the current head's probabilities of the pool images; ``pool`` (P, D) and
    ``labelled`` (L, D): features of the pool and of the labelled images.
    """
    check_strategy(strategy)
    proba, pool = np.asarray(proba), np.asarray(pool)
    if len(proba) != len(pool):
        raise ValueError(f"proba has {len(proba)} rows but pool has {len(pool)}")
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    if strategy == "random":
        pick = np.random.default_rng(seed).permutation(len(pool))[:n]
        return Selection(pick, np.zeros(len(pick)), REASONS[strategy], np.zeros(0, int))
    near = nearest_similarity(pool, labelled)
    eligible = near < duplicate_cosine
    skipped = np.flatnonzero(~eligible)
    if strategy == "kcenter":
        pick, dist = kcenter_greedy(pool, labelled, n, allowed=eligible, start=near)
        return Selection(pick, dist, REASONS[strategy], skipped)
    u = uncertainty(proba, "entropy" if strategy == "entropy" else "margin")
    if strategy == "density":
        u = u * np.clip(representativeness(pool), 0.0, None)
    order = [int(i) for i in np.lexsort((_log_gap(proba), -u)) if eligible[i]]
    if strategy == "hybrid":
        allowed = np.zeros(len(pool), bool)
        allowed[order[: max(n, candidates * n)]] = True
        pick, _ = kcenter_greedy(pool, labelled, n, allowed=allowed, start=near)
    else:
        pick = _without_copies(order, pool, n, duplicate_cosine)
    return Selection(pick, u[pick], REASONS[strategy], skipped)


def _log_gap(proba: np.ndarray) -> np.ndarray:
    """(N,) log p1 - log p2: orders images whose probabilities are saturated (p1 == 1.0 in floating point)."""
    top2 = -np.partition(-np.asarray(proba, np.float64), 1, axis=1)[:, :2]
    return np.log(np.clip(top2[:, 0], 1e-300, None)) - np.log(np.clip(top2[:, 1], 1e-300, None))


def _without_copies(order: list[int], pool: np.ndarray, n: int, duplicate_cosine: float) -> np.ndarray:
    """The first ``n`` of ``order``, passing over a row that near-duplicates one already taken."""
    head = order[: 4 * n]  # near copies are few: the batch is found among the first rows
    twins: dict[int, set[int]] = {}
    for a, b, _ in cosine_pairs(pool[head], duplicate_cosine):
        twins.setdefault(head[a], set()).add(head[b])
        twins.setdefault(head[b], set()).add(head[a])
    taken: list[int] = []
    for i in order:
        if len(taken) == n:
            break
        if not twins.get(i, set()).intersection(taken):
            taken.append(i)
    return np.array(taken, dtype=int)
