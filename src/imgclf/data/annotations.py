"""Label corrections stored beside the images, never touching the images themselves.

``DATASET/annotations.csv`` is an append-only history: one row per correction with columns
``timestamp, path, original_label, action, label, undoes, batch``. ``path`` is relative to the dataset folder
(POSIX separators). ``action`` is one of:

- ``relabel``   — the image belongs to class ``label``;
- ``exclude``   — leave the image out (bad, duplicate, off-topic);
- ``ambiguous`` — leave it out, flagged as ambiguous rather than wrong;
- ``restore``   — back to the folder's label (undoes every earlier row for that path);
- ``keep``      — a person checked the image and its label ``label`` is right: it is used with that
  label, and the data doctor no longer lists it.
- ``label``     — an image of the pool of unlabelled images (``data.pool``) was given class ``label``:
  it is used like an image of that class's folder, without being moved.
- ``add``       — the file was added to the dataset (:mod:`imgclf.data.intake`: the web UI's upload) into
  the folder of class ``original_label`` (the pool when empty). It corrects nothing: the image is what
  its folder says. The row is there to be undone: undoing it takes the file out of the dataset
  (moved, never deleted; see :func:`imgclf.data.intake.take_back`).

The last row per path decides the image's state. An undo is a row too: it sets the state the
image had before the row it undoes, whose number (1-based, in file order) it names in
``undoes``; other rows leave ``undoes`` empty. Rows written together as one correction of several
images share a ``batch`` id (empty for a single image): undoing the newest correction takes the
whole batch back, one undo row per image. Every write rewrites the file atomically, under
an inter-process lock (``.annotations.csv.lock`` beside it): the web UI, ``dedup`` and other
processes that correct the same dataset at once never lose one another's rows. A dataset folder
where that file cannot be written (a read-only mount, no write permission, an immutable folder)
refuses a correction at once with :data:`READ_ONLY` (reading it, and runs on it, work as before).
"""
from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator

from filelock import FileLock, Timeout

from ..util.errors import DatasetError
from ..util.files import read_csv, write_csv

FILENAME = "annotations.csv"
COLUMNS = ["timestamp", "path", "original_label", "action", "label", "undoes", "batch"]
ACTIONS = ("relabel", "exclude", "ambiguous", "restore", "keep", "label", "add")
LABELLING = ("relabel", "keep", "label")  # the actions that give an image the class ``label``
ADDED = "add"  # the action of a file added to the dataset
_NO_OVERRIDE = ("restore", ADDED)  # rows after which an image is what its folder says

LOCK_FILENAME = ".annotations.csv.lock"  # hidden: dataset scans skip it
READ_ONLY = "read_only"  # reason of the DatasetError a correction gets where annotations.csv cannot be written
_CANNOT_WRITE = (errno.EROFS, errno.EACCES, errno.EPERM)
_LOCK_TIMEOUT_S = 60.0
_lock = threading.RLock()  # the file lock is per process; this orders the threads of one
_held: set[Path] = set()  # lock files this process holds (under _lock): undo_last writes while holding one


@dataclass(frozen=True)
class Annotation:
    timestamp: str
    path: str
    original_label: str
    action: str
    label: str
    undoes: str = ""  # row number this row undoes (1-based); empty for a correction
    batch: str = ""  # id shared by the rows of one correction of several images; empty for one image


def annotations_path(dataset_dir: str | os.PathLike) -> Path:
    return Path(dataset_dir) / FILENAME


def read_history(dataset_dir: str | os.PathLike) -> list[Annotation]:
    """Every row of the history, oldest first (empty when there is no file)."""
    try:  # no exists() first: the file may be removed between the two (a user deleting it while the UI reads)
        rows = read_csv(annotations_path(dataset_dir))
    except FileNotFoundError:
        return []
    return [Annotation(**{c: row.get(c, "") or "" for c in COLUMNS}) for row in rows]


def current_state(dataset_dir: str | os.PathLike) -> dict[str, Annotation]:
    """The effective annotation per relative path (``restore`` and ``add`` rows drop out)."""
    state: dict[str, Annotation] = {}
    for a in read_history(dataset_dir):
        if a.action in _NO_OVERRIDE:
            state.pop(a.path, None)
        else:
            state[a.path] = a
    return state


def new_batch_id() -> str:
    """A fresh id for the rows of one correction of several images."""
    return uuid.uuid4().hex[:12]


def record(
    dataset_dir: str | os.PathLike,
    entries: list[tuple[str, str, str, str]],
    batch: str = "",
) -> list[Annotation]:
    """Append corrections ``(path, original_label, action, label)`` atomically; returns them.

    ``batch`` (see :func:`new_batch_id`) makes them one correction: one undo takes them all back."""
    now = _now()
    new = []
    for path, original, action, label in entries:
        if action not in ACTIONS:
            raise ValueError(f"annotation action must be one of {', '.join(ACTIONS)}; got {action!r}")
        rel = Path(path).as_posix()
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ValueError(f"annotation path must be relative to the dataset folder; got {path!r}")
        if action in LABELLING and not label:
            raise ValueError(f"a {action} needs the label (the new one, the one kept, or the one given)")
        new.append(Annotation(now, rel, original, action, label if action in LABELLING else "", batch=batch))
    _append(dataset_dir, new)
    return new


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@contextlib.contextmanager
def _locked(dataset_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the dataset's annotation lock: this process's threads and every other process."""
    folder = Path(os.path.realpath(dataset_dir))
    lock_path = folder / LOCK_FILENAME
    with _lock:
        if lock_path in _held:
            yield
            return
        if folder.is_dir() and not os.access(folder, os.W_OK):  # a read-only mount or folder: say so before any wait for the lock
            raise _read_only(folder, "no write access")
        lock = FileLock(str(lock_path), timeout=_LOCK_TIMEOUT_S, thread_local=False)
        try:
            lock.acquire()
        except Timeout:  # a TimeoutError, so an OSError: caught first
            raise DatasetError(f"{annotations_path(dataset_dir)} has been locked by another process for {_LOCK_TIMEOUT_S:.0f} s",
                               hint=f"is another imgclf stuck writing it? stop it, or delete {lock_path} if none runs") from None
        except OSError as e:
            if e.errno in _CANNOT_WRITE:
                raise _read_only(folder, e.strerror or str(e)) from None
            raise
        _held.add(lock_path)
        try:
            yield
        finally:
            _held.discard(lock_path)
            lock.release()


def _read_only(folder: Path, why: str) -> DatasetError:
    return DatasetError(f"corrections cannot be saved here: {folder} is read-only ({why})",
                        hint="make the images folder writable, or correct a writable copy of it; "
                             "runs on this folder still work", reason=READ_ONLY)


def _append(dataset_dir: str | os.PathLike, new: list[Annotation]) -> None:
    with _locked(dataset_dir):
        rows = read_history(dataset_dir) + new
        try:
            write_csv(annotations_path(dataset_dir), COLUMNS, ([getattr(a, c) for c in COLUMNS] for a in rows))
        except OSError as e:
            if e.errno in _CANNOT_WRITE:
                raise _read_only(Path(os.path.realpath(dataset_dir)), e.strerror or str(e)) from None
            raise


def undo_last(dataset_dir: str | os.PathLike, path: str | None = None) -> Annotation | None:
    """Undo the newest correction not undone yet (of ``path`` if given) by appending the state before it.

    History is kept: the undo is itself a row naming the row it undoes, so undoing again walks
    further back instead of undoing the undo. Without ``path``, a correction of several images
    (a batch) is undone whole. Returns the newest row that was undone, or None.
    """
    undone = undo_rows(dataset_dir, path)
    return undone[0] if undone else None


def undo_rows(dataset_dir: str | os.PathLike, path: str | None = None, batch: str = "",
              among: Collection[str] | None = None) -> list[Annotation]:
    """:func:`undo_last`, returning every row it undid (newest first): several for a batch.

    ``batch``: undo that correction of several images (its rows not undone yet), whatever came after it.
    ``among``: undo the newest correction of one of these images only (a batch whole), so that a
    page undoes what it changed itself and never a correction made elsewhere."""
    want = None if path is None else Path(path).as_posix()
    scope = None if among is None else {Path(p).as_posix() for p in among}
    with _locked(dataset_dir):
        history = read_history(dataset_dir)
        undone: set[int] = set()
        targets: list[int] = []
        for n in range(len(history), 0, -1):
            a = history[n - 1]
            if a.undoes.isdigit():
                undone.add(int(a.undoes))
            elif n in undone:
                continue
            elif not targets and (want is None or a.path == want) and (not batch or a.batch == batch) \
                    and (scope is None or a.path in scope):
                targets.append(n)
                if want is not None or not a.batch:
                    break
            elif targets and a.batch == history[targets[0] - 1].batch:
                targets.append(n)
        now = _now()
        rows = []
        for target in targets:
            last = history[target - 1]
            before = None  # the image's state just before the undone row: replay the rows above it
            for a in history[: target - 1]:
                if a.path == last.path:
                    before = None if a.action in _NO_OVERRIDE else a
            action, label = (before.action, before.label) if before else ("restore", "")
            rows.append(Annotation(now, last.path, last.original_label, action, label, str(target)))
        if rows:
            _append(dataset_dir, rows)
    return [history[t - 1] for t in targets]
