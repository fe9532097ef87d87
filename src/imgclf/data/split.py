"""Train/test split: stratified by class, reproducible for a seed, groups kept together.

Modes, in order of precedence: a dedicated test list (``data.test_list``), a predefined
``train/`` (+ ``validation/``) + ``test/`` layout (see :mod:`imgclf.data.dataset`: validation images are
split ``val``), else a stratified split at ``data.train_ratio``
of files (``split_by = "file"``) or of whole subfolders (``"subdir"``). Optional extra
groups (e.g. near-duplicate images) are merged so each group falls on one side.

Images of the pool labelled by an annotation (``Item.from_pool``, chosen by Label next because the
model was unsure of them) train: the folder images are split as if they were not there, so the test
split stays a random sample of the class folders and labelling moves no other image. The one
exception keeps a near-duplicate group whole (``data.group_duplicates``): a labelled pool image
grouped with a test folder image goes to test with it.
"""
from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..config.settings import DataConfig
from ..util.errors import DatasetError
from ..util.files import read_csv, write_csv
from .dataset import Dataset, Item
from .duplicates import UnionFind

#: The fewest training images of a class the pipeline can fit: the SVM's C and temperature come from a
#: stratified k-fold cross-validation of the train split, and k >= 2 needs every class in every fold.
MIN_TRAIN_PER_CLASS = 2


@dataclass(frozen=True)
class SplitRow:
    path: str
    label: str
    split: str  # "train" | "val" | "test" ("val": from a validation/ folder; trains the SVM, validates refinement)
    rel: str = ""


def _read_test_list(path: str) -> list[tuple[str, str]]:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"data.test_list file {p} does not exist", hint="give a TSV of label<TAB>filename lines")
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DatasetError(f"{p}:{n}: expected label<TAB>filename, got {line!r}")
        rows.append((parts[0].strip(), parts[1].strip()))
    return rows


def _test_set_from_list(items: list[Item], entries: list[tuple[str, str]], list_path: str) -> set[str]:
    by_rel = {it.rel: it for it in items}
    by_name: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_name[Path(it.rel).name].append(it)
    chosen, missing = set(), []
    for label, name in entries:
        name = name.replace("\\", "/")
        it = by_rel.get(name) or by_rel.get(f"{label}/{name}")
        if it is None:
            cands = [c for c in by_name.get(Path(name).name, []) if c.label == label] or by_name.get(Path(name).name, [])
            it = cands[0] if len(cands) == 1 else None
        if it is None:
            missing.append(name)
        else:
            chosen.add(it.path)
    if missing:
        raise DatasetError(
            f"{len(missing)} file(s) of the test list {list_path} are not in the dataset, e.g. {missing[:3]}",
            hint="names are matched as label/filename, a path relative to the images folder, or a unique file name",
        )
    return chosen


def _merge_groups(items: list[Item], extra_groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """Each item's group after joining its own group with the extra groups (lists of paths)."""
    uf = UnionFind()
    for it in items:
        uf.union(it.path, "g:" + it.group)
    for group in extra_groups:
        group = list(group)
        for other in group[1:]:
            uf.union(group[0], other)
    return {it.path: str(uf.find(it.path)) for it in items}


def _stratified(items: list[Item], ratio: float, seed: int, group_of: dict[str, str]) -> set[str]:
    """Paths of the test side: per class, whole groups drawn until the test share is reached."""
    test: set[str] = set()
    by_label: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_label[it.label].append(it)
    for label in sorted(by_label):
        members = by_label[label]
        groups: dict[str, list[Item]] = defaultdict(list)
        for it in members:
            groups[group_of[it.path]].append(it)
        keys = sorted(groups)
        # a stable per-class stream: adding a class never reshuffles the others
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        order = [keys[i] for i in rng.permutation(len(keys))]
        n_test = _test_count(len(members), ratio)
        count = 0
        for key in order:
            if count >= n_test:
                break
            if count + len(groups[key]) > len(members) - 1 and count > 0:
                continue  # keep at least one train image
            for it in groups[key]:
                test.add(it.path)
            count += len(groups[key])
    return test


def _pool_test_side(pool: list[Item], extra_groups: list[list[str]], test: set[str], group_of: dict[str, str]) -> set[str]:
    """Test paths among labelled pool images: those in an extra group with a test folder image (the rest train)."""
    pool_paths = {it.path for it in pool}
    return {p for g in extra_groups if any(q in test for q in g if q in group_of) for p in g if p in pool_paths}


def make_split(ds: Dataset, data_cfg: DataConfig, extra_groups: Iterable[Iterable[str]] = ()) -> list[SplitRow]:
    """Split ``ds`` into train and test as ``data_cfg`` says (see module docstring)."""
    counts = ds.counts()
    small = {k: v for k, v in counts.items() if v < data_cfg.min_images_per_class}
    if small:
        raise DatasetError(
            f"class(es) with fewer than {data_cfg.min_images_per_class} usable images: "
            + ", ".join(f"{k} ({v})" for k, v in small.items()),
            hint="add images to those classes or remove their folders",
        )
    if len(counts) < 2:
        raise DatasetError(f"need at least 2 classes, found {len(counts)}: {list(counts)}", hint="one subfolder per class")
    if data_cfg.test_list:
        test = _test_set_from_list(ds.items, _read_test_list(data_cfg.test_list), data_cfg.test_list)
    elif ds.predefined_split:
        test = {it.path for it in ds.items if it.split == "test"}
    else:
        extra_groups = [list(g) for g in extra_groups]
        folder = [it for it in ds.items if not it.from_pool]
        folder_paths = {it.path for it in folder}
        units = folder if data_cfg.split_by == "subdir" else [Item(it.path, it.rel, it.label, it.rel, "") for it in folder]
        group_of = _merge_groups(units, [[p for p in g if p in folder_paths] for g in extra_groups])
        test = _stratified(folder, data_cfg.train_ratio, data_cfg.seed, group_of)
        test |= _pool_test_side([it for it in ds.items if it.from_pool], extra_groups, test, group_of)
    if ds.predefined_split and not data_cfg.test_list:
        rows = [SplitRow(it.path, it.label, it.split, it.rel) for it in ds.items]
    else:
        rows = [SplitRow(it.path, it.label, "test" if it.path in test else "train", it.rel) for it in ds.items]
    for side in ("train", "test"):
        if not any(r.split == side for r in rows):
            raise DatasetError(f"the {side} split is empty", hint="check data.test_list or the train/ and test/ folders")
    _check_train_counts(rows, counts, data_cfg, chosen=bool(data_cfg.test_list or ds.predefined_split))
    return rows


def _check_train_counts(rows: list[SplitRow], counts: dict[str, int], data_cfg: DataConfig, chosen: bool) -> None:
    """Every class must have ``MIN_TRAIN_PER_CLASS`` training images; checked here, before any image is featurized."""
    train: dict[str, int] = defaultdict(int)
    for r in rows:
        train[r.label] += r.split != "test"
    short = {k: train[k] for k in counts if train[k] < MIN_TRAIN_PER_CLASS}
    if not short:
        return
    need = _images_needed(data_cfg.train_ratio)
    fix = (f"move images of those classes from the test split into train ({'data.test_list' if data_cfg.test_list else 'the test/ folder'})"
           if chosen else f"add images: at data.train_ratio {data_cfg.train_ratio:g} each class needs at least {need}")
    raise DatasetError(
        f"class(es) with fewer than {MIN_TRAIN_PER_CLASS} training images after the split: "
        + ", ".join(f"{k} ({v} of {counts[k]})" for k, v in short.items())
        + f"; training needs {MIN_TRAIN_PER_CLASS} per class (the SVM's cross-validation and calibration)", hint=fix)


def _images_needed(ratio: float) -> int:
    """The fewest images of a class for which the stratified split leaves ``MIN_TRAIN_PER_CLASS`` in train."""
    n = MIN_TRAIN_PER_CLASS
    while n - _test_count(n, ratio) < MIN_TRAIN_PER_CLASS:
        n += 1
    return n


def _test_count(n: int, ratio: float) -> int:
    """Images of a class of ``n`` the stratified split aims to put in test: at least one on each side."""
    return min(max(n - int(round(ratio * n)), 1), n - 1)


def save_split(path: str, rows: list[SplitRow]) -> None:
    write_csv(path, ["path", "label", "split", "rel"], ((r.path, r.label, r.split, r.rel) for r in rows))


def load_split(path: str) -> list[SplitRow]:
    return [SplitRow(r["path"], r["label"], r["split"], r.get("rel", "")) for r in read_csv(path)]
