"""Exact and near-duplicate images: dhash (16x16, the 2017 sample's method) and CNN features.

Two images are near duplicates when their 256-bit dhashes differ in at most ``max_distance``
bits (or, optionally, when their features' cosine similarity reaches a threshold). Pairs are
found with vectorised popcounts over blocks of the hash matrix, then joined into groups with
union-find. In each group one image is kept — the largest, then the biggest file, then the
first path — and the others are excluded through the dataset's annotations (or moved away);
no file is ever deleted.
"""
from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..annotations import current_state, record
from ..dataset import scan_dataset
from ..errors import ImgclfError
from ..images import ImageError, decode_image

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

    bar = _progress(len(paths), "hash") if progress else None
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="dhash") as pool:
        for _ in pool.map(one, range(len(paths))):
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return codes, ok, sorted(errors)


def _popcount(x: np.ndarray) -> np.ndarray:
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
            dist += _popcount(words[s:e, k, None] ^ words[None, s:, k])
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


def connected_groups(n: int, pairs: Sequence[tuple[int, int, object]]) -> list[list[int]]:
    """Union-find: the components with two or more members, each sorted, ordered by first index."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(find(i), []).append(i)
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


# ------------------------------------------------------------------ dedup of a dataset


@dataclass
class Member:
    rel: str  # path relative to the dataset folder
    label: str  # the class folder it sits in
    width: int
    height: int
    bytes: int
    distance: int  # dhash bits differing from the kept image
    action: str = "keep"  # keep, exclude or move


@dataclass
class DupGroup:
    kind: str  # "exact": identical hashes; "near": within the distance; "features": joined by features
    members: list[Member]  # the kept image first


@dataclass
class DedupResult:
    dataset_dir: Path
    images: int  # images examined
    groups: list[DupGroup]
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (rel path, reason)
    moved_to: Path | None = None
    dry_run: bool = False

    @property
    def removed(self) -> list[Member]:
        return [m for g in self.groups for m in g.members if m.action != "keep"]

    def summary(self) -> str:
        """One line: groups by kind and what happened to the extra copies."""
        kinds = {k: sum(g.kind == k for g in self.groups) for k in ("exact", "near", "features")}
        if self.dry_run:
            fate = "would be excluded (dry run)"
        else:
            fate = f"moved to {self.moved_to}" if self.moved_to else "excluded in annotations.csv"
        line = (f"{self.images} images: {len(self.groups)} duplicate groups (exact {kinds['exact']}, "
                f"near {kinds['near']}, by features {kinds['features']}); {len(self.removed)} images {fate}")
        return line + (f"; {len(self.unreadable)} unreadable" if self.unreadable else "")


def dedup_dataset(
    dataset_dir: str | os.PathLike,
    max_distance: int = 10,
    *,
    featurize: Callable[[list[str]], np.ndarray] | None = None,
    feature_threshold: float = 0.95,
    move_to: str | os.PathLike | None = None,
    dry_run: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> DedupResult:
    """Find duplicate groups in a dataset, keep one image of each, exclude (or move) the rest.

    ``featurize(paths) -> (N, D) array`` adds groups by cosine similarity of CNN features
    (rows of zeros mark images it could not read). Images already excluded are not examined.
    """
    if max_distance < 0:
        raise ImgclfError(f"the Hamming distance must be >= 0; got {max_distance}")
    root = Path(dataset_dir).resolve()
    state = current_state(root)
    items = [it for it in scan_dataset(root, apply_annotations=False).items
             if state.get(it.rel) is None or state[it.rel].action == "relabel"]
    dest = _check_move_target(root, move_to) if move_to is not None else None
    paths = [it.path for it in items]
    codes, ok, errors = compute_codes(paths, workers, progress)
    rel_of = {it.path: it.rel for it in items}
    pairs = [p for p in hamming_pairs(codes, max_distance) if ok[p[0]] and ok[p[1]]]
    by_hash = {i: g[0] for g in connected_groups(len(items), pairs) for i in g}  # index -> its dhash group
    if featurize is not None:
        feats = np.asarray(featurize(paths), dtype=np.float32)
        pairs = pairs + cosine_pairs(feats, feature_threshold)
    groups = [_make_group(g, items, codes, by_hash) for g in connected_groups(len(items), pairs)]
    result = DedupResult(root, len(items), groups, [(rel_of[p], r) for p, r in errors], dest, dry_run)
    if not dry_run:
        _apply(result)
    return result


def _make_group(idx: list[int], items: list, codes: np.ndarray, by_hash: dict[int, int]) -> DupGroup:
    members = []
    for i in idx:
        try:
            w, h = decode_image(items[i].path).size  # full size: the hash decoded a draft
        except ImageError:
            w = h = 0
        members.append((i, Member(items[i].rel, items[i].label, w, h, Path(items[i].path).stat().st_size, 0)))
    members.sort(key=lambda m: (-m[1].width * m[1].height, -m[1].bytes, m[1].rel))
    keeper = members[0][0]
    for i, m in members:
        m.distance = int(_popcount(np.bitwise_xor(codes[i], codes[keeper])).sum())
        m.action = "keep" if i == keeper else "exclude"
    if len({by_hash.get(i, -1 - i) for i in idx}) > 1:
        kind = "features"  # the hashes alone would not join these images
    elif len({codes[i].tobytes() for i in idx}) == 1:
        kind = "exact"
    else:
        kind = "near"
    return DupGroup(kind, [m for _, m in members])


def _check_move_target(root: Path, move_to: str | os.PathLike) -> Path:
    dest = Path(move_to).resolve()
    if dest == root or root in dest.parents:
        raise ImgclfError(f"--move-to {dest} is inside the dataset {root}; its images would still be read",
                          hint="choose a folder outside the dataset, e.g. next to it")
    return dest


def _apply(result: DedupResult) -> None:
    removed = result.removed
    if not removed:
        return
    if result.moved_to is None:
        record(result.dataset_dir, [(m.rel, m.label, "exclude", "") for m in removed])
        return
    clashes = [m.rel for m in removed if (result.moved_to / m.rel).exists()]
    if clashes:
        raise ImgclfError(f"{len(clashes)} files already exist under {result.moved_to}, e.g. {clashes[0]}; nothing was moved",
                          hint="choose an empty folder for --move-to")
    for m in removed:
        target = result.moved_to / m.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(result.dataset_dir / m.rel), str(target))
        m.action = "move"


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, mininterval=0.5)
