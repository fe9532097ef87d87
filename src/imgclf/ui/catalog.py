"""The dataset as the UI sees it: every image, its folder label and its current annotation.

Paths from requests are checked here and nowhere else: a path must be relative, must resolve
inside the dataset folder and must name an image the dataset scan listed. Corrections go
through :mod:`imgclf.data.annotations` (an atomic, append-only history); images are never touched.
Refusals are :class:`InvalidRequest` (a malformed value) or :class:`NotFound` (nothing by that name).

The images of the pool of unlabelled images (``data.pool``) are listed too, with status ``pool`` until
one is given a class. Files added through :mod:`imgclf.data.intake` appear after :meth:`Catalog.entries`
is asked to rescan; the undo of an addition takes the file out of the dataset (see ``take_back``).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from ..data.annotations import LABELLING, Annotation, current_state, new_batch_id, read_history, record, undo_rows
from ..data.dataset import scan_dataset
from ..data.intake import class_of, take_back
from ..util.errors import DatasetError, InvalidRequest, NotFound
from ..util.files import sha256_file
from .thumbs import file_version

#: What an image can be: used as its folder label, relabelled, left out (two ways), or in the pool without a class.
STATUSES = ("unchanged", "relabeled", "excluded", "ambiguous", "pool")
_LEFT_OUT = {"exclude": "excluded", "ambiguous": "ambiguous"}  # annotation action → status
MAX_UNDO_SCOPE = 20_000  # images a page may name as its own for an undo
_RESCAN_AFTER_S = 2.0  # a path missing from the listing triggers a rescan at most this often


@dataclass(frozen=True)
class Entry:
    """One image of the dataset: ``rel`` path (POSIX), resolved ``path`` and folder ``original`` label."""

    rel: str
    path: str
    original: str  # "" for an image of the pool
    pool: bool = False


class Catalog:
    """Lists a dataset folder (cached) and applies corrections to it."""

    def __init__(self, images_dir: str | os.PathLike, pool: str = ""):
        self.root = Path(os.path.realpath(images_dir))
        self.pool = pool  # data.pool: "" = DATASET/_unlabeled
        self._entries: dict[str, Entry] | None = None
        self._scanned_at = 0.0
        self._by_hash: dict[str, str] | None = None  # content SHA-256 → rel, made when first needed
        self._hashes: dict[tuple[str, int, int], str] = {}  # (path, mtime, size) → SHA-256 of files looked up
        self._lock = threading.Lock()

    # ------------------------------------------------------------ listing

    def entries(self, refresh: bool = False) -> dict[str, Entry]:
        """Every image by rel path, in (folder label, path) order; rescanned when ``refresh``."""
        with self._lock:
            if self._entries is None or refresh:
                try:
                    ds = scan_dataset(self.root, apply_annotations=False, pool=self.pool)
                except DatasetError as e:
                    raise NotFound(f"{e}; {e.hint}", reason="no_images") from None
                items = sorted(ds.items + ds.pool, key=lambda it: (it.from_pool, it.label, it.rel))
                self._entries = {it.rel: Entry(it.rel, it.path, it.label, it.from_pool) for it in items}
                self._scanned_at = time.monotonic()
                self._by_hash = None
            return self._entries

    def classes(self, state: dict[str, Annotation] | None = None) -> list[str]:
        """The classes, as the annotations make them (a renamed class by its new name): the labels an image can be given."""
        state = current_state(self.root) if state is None else state
        return sorted({c for e in self.entries().values() if (c := class_of(e.original, state.get(e.rel)))})

    def resolve(self, rel: str) -> Entry:
        """The listed image at ``rel``; InvalidRequest for a malformed or escaping path, NotFound if unlisted."""
        if not rel or "\x00" in rel or "\\" in rel:
            raise InvalidRequest(f"path must be a relative path with / separators; got {rel!r}")
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts or "." in rel.split("/"):
            raise InvalidRequest(f"path must be relative to the dataset folder, without '..'; got {rel!r}")
        target = Path(os.path.realpath(self.root / rel))  # never raises, a link loop included
        if not target.is_relative_to(self.root):
            raise InvalidRequest(f"path {rel!r} resolves outside the dataset folder {self.root}")
        entries = self.entries()
        if rel not in entries and time.monotonic() - self._scanned_at > _RESCAN_AFTER_S:
            entries = self.entries(refresh=True)
        if rel not in entries:
            raise NotFound(f"no image {rel!r} in the dataset {self.root}; reload the page to list the images again")
        return entries[rel]

    def rel_of(self, path: str | os.PathLike) -> str | None:
        """The rel path of an absolute image path if it is a listed image of this dataset, else None."""
        try:
            rel = Path(os.path.realpath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return None
        return rel if rel in self.entries() else None

    def match(self, rows: list[tuple[str, str]]) -> list[str | None]:
        """The listed image each ``(path, rel)`` of a run's artifact names, or None.

        A run keeps absolute paths, and the dataset may have been copied or the run moved since:
        an image is found by its absolute path, else by ``rel`` (its path relative to the images
        folder the run used), else by its content when the run's file can still be read.
        """
        entries = self.entries()
        out: list[str | None] = []
        for path, rel in rows:
            found = self.rel_of(path)
            if found is None and rel in entries:
                found = rel
            out.append(found)
        unmatched = [i for i, found in enumerate(out) if found is None and os.path.isfile(rows[i][0])]
        if unmatched:
            by_hash = self._hash_index()
            for i in unmatched:
                try:
                    out[i] = by_hash.get(self._sha256(rows[i][0]))
                except OSError:
                    pass
        return out

    def _hash_index(self) -> dict[str, str]:
        """Content SHA-256 of every listed image → its rel path (the first one, for identical copies)."""
        entries = self.entries()
        with self._lock:
            if self._by_hash is None:
                index: dict[str, str] = {}
                for e in entries.values():
                    try:
                        index.setdefault(self._sha256(e.path), e.rel)
                    except OSError:
                        continue
                self._by_hash = index
            return self._by_hash

    def _sha256(self, path: str) -> str:
        """The content hash of a file, remembered while its mtime and size stay the same."""
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        digest = self._hashes.get(key)
        if digest is None:
            digest = self._hashes[key] = sha256_file(path)
        return digest

    # ------------------------------------------------------------ views

    @staticmethod
    def view(entry: Entry, ann: Annotation | None) -> dict[str, Any]:
        """JSON of one image: current ``label`` (None when left out) and ``status``."""
        label, status = _label_status(entry, ann)
        return {"path": entry.rel, "original": entry.original, "pool": entry.pool, "label": label, "status": status,
                "checked": ann is not None and ann.action == "keep", "v": file_version(entry.path)}

    def summary(self, state: dict[str, Annotation] | None = None) -> dict[str, Any]:
        """Counts: images per current class (what training will use) and per status."""
        state = current_state(self.root) if state is None else state
        per_class = {c: 0 for c in self.classes(state)}
        per_status = {s: 0 for s in STATUSES}
        for e in self.entries().values():
            label, status = _label_status(e, state.get(e.rel))
            per_status[status] += 1
            if label is not None:
                per_class[label] = per_class.get(label, 0) + 1
        return {"root": str(self.root), "name": self.root.name, "classes": self.classes(state), "counts": per_class,
                "statuses": per_status, "total": len(self.entries())}

    def _filtered(self, label: str, status: str, q: str, state: dict[str, Annotation]) -> list[Entry]:
        if status and status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        if label and label not in (classes := self.classes(state)):
            raise InvalidRequest(f"label must be one of the classes {', '.join(classes)}; got {label!r}")
        q = q.lower()
        hits = []
        for e in self.entries().values():
            cur, st = _label_status(e, state.get(e.rel))
            if (label and cur != label) or (status and st != status) or (q and q not in e.rel.lower()):
                continue
            hits.append(e)
        return hits

    def query(self, label: str = "", status: str = "", q: str = "", offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """One page of images whose current class is ``label`` and/or whose status is ``status``."""
        state = current_state(self.root)
        hits = self._filtered(label, status, q, state)
        page = hits[offset: offset + limit]
        return {"total": len(hits), "offset": offset, "limit": limit,
                "items": [self.view(e, state.get(e.rel)) for e in page], "summary": self.summary(state)}

    def paths(self, label: str = "", status: str = "", q: str = "") -> list[str]:
        """The rel path of every image of a filter (as :meth:`query` selects them), in listing order."""
        return [e.rel for e in self._filtered(label, status, q, current_state(self.root))]

    def item(self, rel: str) -> dict[str, Any]:
        """The current view of one image."""
        e = self.resolve(rel)
        return self.view(e, current_state(self.root).get(e.rel))

    def views(self, rels: list[str]) -> dict[str, dict[str, Any]]:
        """Views of several listed images, reading the annotations once."""
        state, entries = current_state(self.root), self.entries()
        return {rel: self.view(entries[rel], state.get(rel)) for rel in rels if rel in entries}

    # ------------------------------------------------------------ corrections

    def annotate(self, rel: str, action: str, label: str = "") -> dict[str, Any]:
        """Record one correction (relabel / exclude / ambiguous / restore / keep); returns the image's view.

        ``keep`` confirms the image's current label (a person checked it: the data doctor stops listing it).
        The view's ``changed`` is False when the image already was so (nothing is written then)."""
        return self.annotate_many([rel], action, label)["items"][0]

    def annotate_many(self, rels: list[str], action: str, label: str = "", batch: str = "") -> dict[str, Any]:
        """One correction of several images at once: one history row per image that changes, all of
        one batch (so one undo takes them all back; ``batch`` joins them to rows written by an earlier
        call). ``{"items": views, "changed": n}``."""
        if action == "relabel" and label not in (classes := self.classes()):
            raise InvalidRequest(f"label must be one of the classes {', '.join(classes)}; got {label!r}")
        if action not in ("relabel", "exclude", "ambiguous", "restore", "keep"):
            raise InvalidRequest(f"action must be one of relabel, exclude, ambiguous, restore, keep; got {action!r}")
        entries = [self.resolve(rel) for rel in dict.fromkeys(rels)]
        with self._lock:
            state = current_state(self.root)
            rows = [row for e in entries if (row := _correction(e, state.get(e.rel), action, label)) is not None]
            if rows:
                with _refused_when_unsaved():
                    record(self.root, rows, batch=batch or (new_batch_id() if len(rows) > 1 else ""))
        changed = {row[0] for row in rows}
        views = self.views([e.rel for e in entries])
        return {"items": [{**views[e.rel], "changed": e.rel in changed} for e in entries], "changed": len(changed)}

    def undo(self, rel: str = "", batch: str = "", among: list[str] | None = None) -> dict[str, Any]:
        """Undo the newest correction (of ``rel`` if given; a batch whole; batch ``batch`` if given), of one of
        the images ``among`` when given (what a page changed itself: a page never undoes another's correction).

        ``{"undone": row|None, "item": view|None, "items": views, "back": [...], "removed": paths}``: the newest
        row undone, the views of the listed images it changed back, for every image it changed back (pool
        images too) ``{"path", "label", "status", "undid": {"action", "label"}}`` (which image, what it is now
        and what was undone), and the images an undone addition took out of the dataset."""
        if rel:
            self.resolve(rel)
        if among is not None and len(among) > MAX_UNDO_SCOPE:
            raise InvalidRequest(f"paths names {len(among)} images; at most {MAX_UNDO_SCOPE}", reason="too_many")
        with self._lock, _refused_when_unsaved():
            undone = undo_rows(self.root, rel or None, batch=batch, among=among)
            removed = take_back(self.root, undone)
        if removed:
            self.entries(refresh=True)
        if not undone:
            return {"undone": None, "item": None, "items": [], "back": [], "removed": []}
        views = self.views([a.path for a in undone])
        state = current_state(self.root)
        back = [{**_now_state(views.get(a.path), state.get(a.path)), "path": a.path,
                 "undid": {"action": a.action, "label": a.label}} for a in undone]
        return {"undone": undone[0].__dict__, "item": views.get(undone[0].path), "items": list(views.values()),
                "back": back, "removed": removed}

    def history(self, limit: int = 50) -> list[dict[str, str]]:
        """The newest ``limit`` rows of annotations.csv, newest first."""
        return [a.__dict__ for a in reversed(read_history(self.root)[-limit:])]


@contextlib.contextmanager
def _refused_when_unsaved() -> Iterator[None]:
    """A correction the dataset cannot store (a read-only folder, a lock held elsewhere) answered as a
    refused request with the annotations' reason, never as a failure of the server."""
    try:
        yield
    except DatasetError as e:
        raise InvalidRequest(f"{e.message}; {e.hint}" if e.hint else e.message, reason=e.reason) from None


def _now_state(view: dict[str, Any] | None, ann: Annotation | None) -> dict[str, Any]:
    """``label`` and ``status`` of an image after an undo: its view's for a listed image; for a pool
    image (not listed: it has no folder label) ``labelled`` with its class, ``excluded`` or ``unlabelled``."""
    if view is not None:
        return {"label": view["label"], "status": view["status"]}
    if ann is None or ann.action == "restore":
        return {"label": None, "status": "unlabelled"}
    if ann.action in LABELLING:
        return {"label": ann.label, "status": "labelled"}
    return {"label": None, "status": _LEFT_OUT.get(ann.action, "excluded")}


def _correction(e: Entry, ann: Annotation | None, action: str, label: str) -> tuple[str, str, str, str] | None:
    """The history row that applies ``action`` to image ``e`` in state ``ann``; None when it is so already."""
    if action == "keep":
        label = ann.label if ann is not None and ann.action in LABELLING else e.original
        if not label:
            raise InvalidRequest(f"{e.rel} is in the pool without a class: there is no label to keep; give it one",
                                 reason="no_label")
    elif action == "relabel" and e.pool:
        action = "label"  # a pool image given a class stays where it is
    elif action != "relabel":
        label = ""
    elif label == e.original:
        action = "restore"  # back to its folder's label: no override needed
    if action == "restore":
        return None if ann is None else (e.rel, e.original, "restore", "")
    if ann is not None and ann.action == action and ann.label == label:
        return None
    return e.rel, e.original, action, label


def _label_status(entry: Entry, ann: Annotation | None) -> tuple[str | None, str]:
    if ann is None:
        return (None, "pool") if entry.pool else (entry.original, "unchanged")
    if ann.action in LABELLING:
        return ann.label, "unchanged" if ann.label == entry.original else "relabeled"
    return None, _LEFT_OUT[ann.action]
