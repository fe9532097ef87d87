"""``imgclf dedup``: near-duplicate groups of a dataset (found by :mod:`imgclf.data.duplicates`).

In each group one image is kept — the largest, then the biggest file, then the
first path — and the others are excluded through the dataset's annotations (or moved away);
no file is ever deleted.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..config.settings import DoctorConfig
from ..data.annotations import current_state, record
from ..data.dataset import scan_dataset
from ..data.duplicates import compute_codes, connected_groups, cosine_pairs, hamming_pairs, popcount
from ..data.images import decode_image
from ..util.errors import ImageError, ImgclfError

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
    feature_threshold: float = DoctorConfig.duplicate_cosine,
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
    root = Path(os.path.realpath(dataset_dir))
    state = current_state(root)
    ds = scan_dataset(root, apply_annotations=False)
    items = [it for it in ds.items if state.get(it.rel) is None or state[it.rel].action == "relabel"]
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
    unreadable = [(Path(p).relative_to(root).as_posix(), r) for p, r in ds.skipped] + [(rel_of[p], r) for p, r in errors]
    result = DedupResult(root, len(items), groups, unreadable, dest, dry_run)
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
        m.distance = int(popcount(np.bitwise_xor(codes[i], codes[keeper])).sum())
        m.action = "keep" if i == keeper else "exclude"
    if len({by_hash.get(i, -1 - i) for i in idx}) > 1:
        kind = "features"  # the hashes alone would not join these images
    elif len({codes[i].tobytes() for i in idx}) == 1:
        kind = "exact"
    else:
        kind = "near"
    return DupGroup(kind, [m for _, m in members])


def _check_move_target(root: Path, move_to: str | os.PathLike) -> Path:
    dest = Path(os.path.realpath(move_to))
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
