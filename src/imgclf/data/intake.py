"""Images and classes added to a dataset from outside it: uploaded files, new classes, renames and merges.

Every file received goes through the one safe decoder (:mod:`imgclf.data.images`: format allowlist,
pixel limit, damaged data refused) before anything is written; a refused file is returned with the
decoder's reason. A file whose content is already in the dataset (the same SHA-256), or whose dhash
is within ``data.duplicate_distance`` bits of an image of the dataset (:mod:`imgclf.data.duplicates`),
is flagged and not added unless the caller insists (``force``). A file added is written atomically
under a name that takes nothing existing (:func:`imgclf.util.files.write_new`), into its class's
folder (``train/<class>`` in a predefined layout) or into the pool (``data.pool``), and recorded as an
``add`` row of annotations.csv; the files of one upload share a batch, so one undo takes them all
back. An undone addition is moved into ``DATASET/.imgclf-removed/`` (hidden: scans skip it), never
deleted (:func:`take_back`).

A class is a folder of images: a new class is made by adding its first images. Renaming and merging
classes relabel their images (one batch of annotations, undone as one); no file is moved.
"""
from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..config.settings import DataConfig
from ..util.errors import DatasetError, ImageError, ImageTooLarge, InvalidRequest
from ..util.files import read_regular, sha256_bytes, write_new
from .annotations import ADDED, LABELLING, Annotation, current_state, new_batch_id, record
from .dataset import POOL_DIR, PREDEFINED_TEST_DIRS, Dataset, pool_folder, scan_dataset
from .duplicates import HASH_DRAFT, dhash_image, popcount
from .images import decode_image, max_file_bytes, sniff_format

log = logging.getLogger(__name__)

REMOVED_DIR = ".imgclf-removed"  # where an undone addition goes (hidden: never listed as images)
MAX_CLASS_NAME = 100  # characters
_MAX_FILE_NAME = 120  # bytes (UTF-8) of a written file's stem: file systems allow 255 a name
_EXTENSIONS = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "BMP": (".bmp",), "GIF": (".gif",), "WEBP": (".webp",),
               "TIFF": (".tif", ".tiff")}
_UNSAFE = re.compile(r"[^\w.\- ]+")  # what a written file name keeps: letters, digits, _ . - and spaces
_RESERVED = ("train", *PREDEFINED_TEST_DIRS)  # top folders that make a predefined layout, never a class name


@dataclass(frozen=True)
class Outcome:
    """What became of one file: ``added`` (at ``path``), ``refused`` (``reason``: the decoder's code),
    ``duplicate`` (``reason`` ``exact`` or ``near``, of the image at ``path``), or ``labelled``: the same
    file lies in the pool without a class, and the pool image at ``path`` was given the class instead of a copy."""

    name: str  # the file's name as sent
    status: str
    path: str = ""
    reason: str = ""
    message: str = ""
    distance: int | None = None  # dhash bits between a near duplicate and the image it repeats


@dataclass(frozen=True)
class Upload:
    """One upload's result: its ``batch`` id (what undoes it), the class it went to ("" = the pool), each file's outcome."""

    batch: str
    label: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def check_class_name(name: str) -> str:
    """``name`` as a class (a folder name), or InvalidRequest saying what a class name may hold."""
    name = name.strip() if isinstance(name, str) else ""
    why = ("is empty" if not name else
           f"is longer than {MAX_CLASS_NAME} characters" if len(name) > MAX_CLASS_NAME else
           "holds a / or \\ (a class is one folder)" if "/" in name or "\\" in name else
           "holds a control character" if any(ord(c) < 32 or ord(c) == 127 for c in name) else
           "starts with a dot (hidden folders are not read)" if name.startswith(".") else
           f"is {name!r}, a folder name that sets the dataset's split" if name.lower() in _RESERVED else
           f"is {POOL_DIR!r}, the pool of unlabelled images" if name == POOL_DIR else "")
    if why:
        raise InvalidRequest(f"a class name {why}; got {name!r}", hint="use a short name such as cats or red_shoes",
                             reason="bad_class_name")
    return name


def class_of(folder_label: str, ann: Annotation | None) -> str | None:
    """The class an image counts for: the one its annotation ``ann`` gave it, else its folder's
    (``folder_label``; "" in the pool: None).

    An image left out (excluded, ambiguous) still counts for its folder's class: the class is not gone."""
    if ann is not None and ann.action in LABELLING:
        return ann.label
    return folder_label or None


def current_classes(ds: Dataset, state: dict[str, Annotation]) -> list[str]:
    """Every class of a dataset scanned without annotations, as its annotations ``state`` makes them."""
    return sorted({c for it in ds.items + ds.pool if (c := class_of(it.label, state.get(it.rel)))})


@dataclass
class _Known:
    key: tuple[int, int]  # (mtime_ns, size) the hashes were made from
    sha: str
    code: np.ndarray | None  # packed dhash; None for a file that does not decode


class Intake:
    """Adds files to one dataset folder; remembers the hashes of its images while they stay unchanged.

    ``pool``: ``data.pool`` ("" = ``DATASET/_unlabeled``); ``max_distance``: ``data.duplicate_distance``."""

    def __init__(self, images_dir: str | os.PathLike, pool: str = "",
                 max_distance: int = DataConfig().duplicate_distance, workers: int = 0):
        self.root = Path(os.path.realpath(images_dir))
        self.pool = pool
        self.max_distance = max_distance
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._known: dict[str, _Known] = {}  # rel path → the hashes of the file there
        self._lock = threading.Lock()

    def add(self, files: Sequence[tuple[str, bytes]], *, label: str = "", create: bool = False, force: bool = False,
            batch: str = "") -> Upload:
        """Add ``files`` (name, content) to class ``label`` (made when ``create``), or to the pool when ``label`` is "".

        ``force`` adds duplicates too; ``batch`` joins the rows to an earlier upload's (one undo for both)."""
        if batch and not re.fullmatch(r"[0-9a-f]{12}", batch):
            raise InvalidRequest(f"batch must be the id an earlier upload returned (12 hex digits); got {batch!r}")
        batch = batch or new_batch_id()
        with self._lock:
            ds, state = self._scan()
            folder, label = self._folder(ds, state, label, create)
            self._refresh(ds)
            outcomes, rows = [], []
            unlabelled = {it.rel for it in ds.pool if it.rel not in state}  # pool images without a class, not left out
            try:
                for name, data in files:
                    outcome = self._add_one(name, data, folder, force)
                    if outcome.status == "added":
                        rows.append((outcome.path, label, ADDED, ""))
                    elif label and outcome.reason == "exact" and outcome.path in unlabelled:
                        outcome = _labelled(outcome, label)  # a pool image (one the service kept) given its class in place
                        unlabelled.discard(outcome.path)
                        rows.append((outcome.path, "", "label", label))
                    outcomes.append(outcome)
            finally:  # the files written before a failed write are recorded too: that upload's undo takes them back
                if rows:
                    record(self.root, rows, batch=batch)
        log.info("%d of %d files added to %s (%s)", len(rows), len(files), label or "the pool", self.root)
        return Upload(batch, label, outcomes)

    # ------------------------------------------------------------ where a file goes

    def _scan(self) -> tuple[Dataset, dict[str, Annotation]]:
        """The dataset without its annotations (an empty one for a folder without images yet), and its annotations."""
        try:
            ds = scan_dataset(self.root, apply_annotations=False, pool=self.pool)
        except DatasetError:
            if not self.root.is_dir():
                raise
            pool_folder(self.root, self.pool)  # a data.pool folder that does not exist: that error
            ds = Dataset(self.root, [])
        return ds, current_state(self.root)

    def _folder(self, ds: Dataset, state: dict[str, Annotation], label: str, create: bool) -> tuple[Path, str]:
        """The folder files for ``label`` go to, and the class ("" = the pool)."""
        if not label:
            return pool_folder(self.root, self.pool) or self.root / POOL_DIR, ""
        name = check_class_name(label)
        classes = current_classes(ds, state)
        if name not in classes and not create:
            raise InvalidRequest(f"no class {name!r} in {self.root}; classes: {', '.join(classes) or 'none yet'}",
                                 hint="pick one of the classes, or ask for a new class", reason="no_class")
        train = next((f for f, split in ds.folders.items() if split == "train"), "")
        return self.root / train / name, name

    def _add_one(self, name: str, data: bytes, folder: Path, force: bool) -> Outcome:
        try:
            if len(data) > max_file_bytes():
                raise ImageTooLarge("too_large", f"{len(data):,} bytes is more than an image within images.max_pixels "
                                                 f"needs ({max_file_bytes():,}); downscale it")
            code = _dhash(data)
        except ImageError as e:
            return Outcome(name, "refused", reason=e.reason, message=e.detail)
        sha = sha256_bytes(data)
        if not force:
            same = self._duplicate(sha, code)
            if same is not None:
                return replace(same, name=name)
        try:
            path = write_new(folder, _file_names(name, sniff_format(data[:32]) or "JPEG"), data)
        except OSError as e:
            read_only = e.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
            raise DatasetError(f"cannot write {name!r} into {folder} ({e.strerror or e}); the files before it were added",
                               hint="make the images folder writable" if read_only else "free some disk space, then add the rest",
                               reason="read_only" if read_only else "write_failed") from None
        rel = path.relative_to(self.root).as_posix()
        st = path.stat()
        self._known[rel] = _Known((st.st_mtime_ns, st.st_size), sha, code)
        return Outcome(name, "added", path=rel)

    # ------------------------------------------------------------ duplicates

    def _refresh(self, ds: Dataset) -> None:
        """Hash the images of ``ds`` not hashed yet, or changed since; forget the ones gone."""
        todo: list[tuple[str, str, tuple[int, int]]] = []
        present = set()
        for it in ds.items + ds.pool:
            present.add(it.rel)
            try:
                st = os.stat(it.path)
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            known = self._known.get(it.rel)
            if known is None or known.key != key:
                todo.append((it.rel, it.path, key))
        for rel in set(self._known) - present:
            del self._known[rel]

        def one(job: tuple[str, str, tuple[int, int]]) -> None:
            rel, path, key = job
            try:
                data = read_regular(path, max_file_bytes())
            except OSError:
                return
            try:
                code = _dhash(data)
            except ImageError:
                code = None
            self._known[rel] = _Known(key, sha256_bytes(data), code)

        if todo:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="intake-hash") as pool:
                list(pool.map(one, todo))

    def _duplicate(self, sha: str, code: np.ndarray) -> Outcome | None:
        """A ``duplicate`` outcome (no name yet) when an image of the dataset is the same file or nearly the same image."""
        for rel, k in self._known.items():
            if k.sha == sha:
                return Outcome("", "duplicate", path=rel, reason="exact",
                               message=f"the same file as {rel}, already in the dataset")
        rels = [rel for rel, k in self._known.items() if k.code is not None]
        if not rels:
            return None
        codes = np.stack([self._known[rel].code for rel in rels])  # (N, 32)
        dist = popcount(codes ^ code[None, :]).sum(axis=1, dtype=np.int64)
        best = int(np.argmin(dist))
        if dist[best] > self.max_distance:
            return None
        return Outcome("", "duplicate", path=rels[best], reason="near", distance=int(dist[best]),
                       message=f"nearly the same image as {rels[best]} ({int(dist[best])} of 256 dhash bits differ; "
                               f"up to {self.max_distance} count as a duplicate, data.duplicate_distance)")


def _labelled(dup: Outcome, label: str) -> Outcome:
    return replace(dup, status="labelled", reason="", message=f"the same file lay in the pool without a class: "
                                                               f"{dup.path} is given the class {label} where it lies")


def _dhash(data: bytes) -> np.ndarray:
    """The dhash of an image's bytes, decoded by the one safe decoder (ImageError when it refuses them)."""
    if not data:
        raise ImageError("empty", "zero bytes")
    return dhash_image(decode_image(data, draft_size=HASH_DRAFT))


def _file_names(name: str, fmt: str) -> Iterator[str]:
    """File names for an upload called ``name``: its own, made safe, then with _2, _3, ... before the extension.

    The extension is one of its format's (a PNG sent as photo.jpg is written photo.png): scans list files by extension."""
    base = PurePosixPath(str(name).replace("\\", "/")).name
    stem, ext = os.path.splitext(base)
    stem = _UNSAFE.sub("_", stem).encode()[:_MAX_FILE_NAME].decode(errors="ignore").strip(" ._") or "image"
    ext = ext.lower() if ext.lower() in _EXTENSIONS[fmt] else _EXTENSIONS[fmt][0]
    yield stem + ext
    for k in itertools.count(2):
        yield f"{stem}_{k}{ext}"


# ------------------------------------------------------------ undo of an upload


def take_back(images_dir: str | os.PathLike, rows: Iterable[Annotation]) -> list[str]:
    """Move the files that undone ``add`` rows had added into ``DATASET/.imgclf-removed/<time>/`` (their paths kept).

    Nothing is deleted: moving a file back into its folder adds it again. A class folder left empty is
    removed (an empty folder is no class). Returns the rel paths moved."""
    root = Path(os.path.realpath(images_dir))
    into = root / REMOVED_DIR / time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for a in rows:
        src = root / a.path
        if a.action != ADDED or not Path(os.path.realpath(src)).is_relative_to(root) or not src.is_file():
            continue
        dst = into / a.path
        for k in itertools.count(2):
            if not dst.exists():
                break
            dst = dst.with_name(f"{dst.stem}_{k}{dst.suffix}")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        except OSError as e:  # the undo row stands: the file stays, listed as its folder says
            log.warning("undo: %s could not be moved out of the dataset (%s)", src, e.strerror or e)
            continue
        moved.append(a.path)
        if a.original_label and src.parent != root:  # a class folder, never the pool's or the dataset's own
            try:
                src.parent.rmdir()
            except OSError:
                pass  # not empty: the class has other images
    if moved:
        log.info("undo: %d added files moved to %s", len(moved), into)
    return moved


# ------------------------------------------------------------ classes


def rename_class(images_dir: str | os.PathLike, old: str, new: str, pool: str = "") -> list[Annotation]:
    """Give every image of class ``old`` the class ``new`` (a name no class has): one batch of annotations.

    No file moves: the images stay in their folders, relabelled. Returns the rows recorded."""
    ds, state = _scan_with_state(images_dir, pool)
    classes = current_classes(ds, state)
    new = check_class_name(new)
    if old not in classes:
        raise InvalidRequest(f"no class {old!r} to rename; classes: {', '.join(classes)}", reason="no_class")
    if new in classes:
        raise InvalidRequest(f"a class {new!r} exists already", hint=f"merge {old} into {new} instead",
                             reason="class_exists")
    return _relabel(ds, state, {old}, new)


def merge_classes(images_dir: str | os.PathLike, sources: Sequence[str], into: str, pool: str = "") -> list[Annotation]:
    """Give every image of the classes ``sources`` the class ``into`` (an existing class or a new name): one batch."""
    ds, state = _scan_with_state(images_dir, pool)
    classes = current_classes(ds, state)
    into = check_class_name(into)
    unknown = [c for c in sources if c not in classes]
    if unknown:
        raise InvalidRequest(f"no class {', '.join(map(repr, unknown))} to merge; classes: {', '.join(classes)}",
                             reason="no_class")
    merged = set(sources) - {into}
    if not merged:
        raise InvalidRequest(f"nothing to merge into {into!r}: name at least one other class", reason="empty")
    return _relabel(ds, state, merged, into)


def _scan_with_state(images_dir: str | os.PathLike, pool: str) -> tuple[Dataset, dict[str, Annotation]]:
    return scan_dataset(images_dir, apply_annotations=False, pool=pool), current_state(images_dir)


def _relabel(ds: Dataset, state: dict[str, Annotation], sources: set[str], target: str) -> list[Annotation]:
    """Record, as one batch, the rows that move every image in use of ``sources`` to class ``target``.

    An image left out (excluded, ambiguous) stays left out."""
    rows = []
    for it in ds.items + ds.pool:
        a = state.get(it.rel)
        if (a is not None and a.action not in LABELLING) or class_of(it.label, a) not in sources:
            continue
        if it.from_pool:
            rows.append((it.rel, "", "label", target))
        elif target == it.label:
            rows.append((it.rel, it.label, "restore", ""))
        else:
            rows.append((it.rel, it.label, "relabel", target))
    return record(ds.root, rows, batch=new_batch_id()) if rows else []
