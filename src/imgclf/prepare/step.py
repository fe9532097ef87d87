"""The prepare step: the images folder scanned, unreadable images listed in skipped.csv, near-duplicate groups
found by dhash (kept on one side of the split, and the ones that straddle it written to leakage.csv), the split
and the configuration saved."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..config.settings import Config
from ..data.dataset import scan_dataset
from ..data.duplicates import HASH_DRAFT, dhash_image, groups_from_codes
from ..data.images import decode_image
from ..data.split import SplitRow, make_split, save_split
from ..features.engines import cpu_threads
from ..rundir.layout import RunDir
from ..util.errors import ImageError
from ..util.progress import progress_bar


def _check(path: str, want_hash: bool) -> tuple[str, np.ndarray | None]:
    """(reason it can't be used or "", its dhash when asked): one decode serves both."""
    try:
        if not want_hash:
            decode_image(path, draft_size=64)
            return "", None
        return "", dhash_image(decode_image(path, draft_size=HASH_DRAFT))
    except ImageError as e:
        return str(e), None


def prepare(cfg: Config, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Scan the images, drop unusable files and undecodable images (listed in skipped.csv), split, save config."""
    rd = RunDir(run_dir)
    rd.root.mkdir(parents=True, exist_ok=True)
    ds = scan_dataset(cfg.images_dir(), pool=cfg.data.pool)
    want_hash = cfg.data.check_leakage or cfg.data.group_duplicates
    checked = []
    with ThreadPoolExecutor(cpu_threads()) as pool, progress_bar(len(ds.items), "check images", show=False) as bar:
        for result in pool.map(lambda it: _check(it.path, want_hash), ds.items):
            checked.append(result)
            bar.update()
    bad = [(path, r, "prepare") for path, r in ds.skipped]  # not a usable file: a FIFO, a link loop or out of the folder
    bad += [(it.path, r, "prepare") for it, (r, _) in zip(ds.items, checked) if r]
    good = [(it, code) for it, (r, code) in zip(ds.items, checked) if not r]
    ds.items = [it for it, _ in good]
    rd.add_skipped(bad, replace_stage="prepare")
    groups: list[list[str]] = []
    if want_hash and good:
        rd.write_hashes([it.path for it, _ in good], np.stack([c for _, c in good]))  # the doctor reuses them
        groups = groups_from_codes([it.path for it, _ in good], np.stack([c for _, c in good]), cfg.data.duplicate_distance)
    rows = make_split(ds, cfg.data, groups if cfg.data.group_duplicates else ())
    save_split(str(rd.split), rows)
    rd.save_config(cfg)
    summary = {
        "images": len(rows),
        "train": sum(r.split == "train" for r in rows),
        "validation": sum(r.split == "val" for r in rows),
        "test": sum(r.split == "test" for r in rows),
        "folders": {f"{folder}/": split for folder, split in ds.folders.items()},
        "classes": ds.counts(),
        "skipped": len(bad),
        "excluded_by_annotations": len(ds.excluded),
        "labelled_from_pool": sum(it.from_pool for it in ds.items),
        "pool_unlabelled": len(ds.pool),
    }
    if want_hash:
        summary["duplicate_groups"] = len(groups)
        summary["leakage"] = _report_leakage(rd, rows, groups)
    return summary


def _report_leakage(rd: RunDir, rows: list[SplitRow], groups: list[list[str]]) -> int:
    """Write leakage.csv: near-duplicate pairs that straddle train and test; returns their count."""
    side = {r.path: r.split for r in rows}
    pairs = []
    for g in groups:
        train = [p for p in g if side.get(p) in ("train", "val")]
        test = [p for p in g if side.get(p) == "test"]
        pairs.extend((a, b) for a in train for b in test)
    rd.write_leakage(pairs)
    return len(pairs)
