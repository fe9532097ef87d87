"""The dataset as the UI sees it: every image, its folder label and its current annotation.

Paths from requests are checked here and nowhere else: a path must be relative, must resolve
inside the dataset folder and must name an image the dataset scan listed. Corrections go
through :mod:`imgclf.annotations` (an atomic, append-only history); images are never touched.
Refusals are :class:`InvalidRequest` (a malformed value) or :class:`NotFound` (nothing by that name).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..annotations import Annotation, current_state, read_history, record, undo_last
from ..dataset import scan_dataset
from ..errors import DatasetError, InvalidRequest, NotFound
from .thumbs import file_version

#: What an image can be: used as its folder label, relabelled, or left out (two ways).
STATUSES = ("unchanged", "relabeled", "excluded", "ambiguous")
_LEFT_OUT = {"exclude": "excluded", "ambiguous": "ambiguous"}  # annotation action → status
_RESCAN_AFTER_S = 2.0  # a path missing from the listing triggers a rescan at most this often


@dataclass(frozen=True)
class Entry:
    """One image of the dataset: ``rel`` path (POSIX), resolved ``path`` and folder ``original`` label."""

    rel: str
    path: str
    original: str


class Catalog:
    """Lists a dataset folder (cached) and applies corrections to it."""

    def __init__(self, images_dir: str | os.PathLike):
        self.root = Path(images_dir).resolve()
        self._entries: dict[str, Entry] | None = None
        self._scanned_at = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ listing

    def entries(self, refresh: bool = False) -> dict[str, Entry]:
        """Every image by rel path, in (folder label, path) order; rescanned when ``refresh``."""
        with self._lock:
            if self._entries is None or refresh:
                try:
                    ds = scan_dataset(self.root, apply_annotations=False)
                except DatasetError as e:
                    raise NotFound(f"{e}; {e.hint}", reason="no_images") from None
                items = sorted(ds.items, key=lambda it: (it.label, it.rel))
                self._entries = {it.rel: Entry(it.rel, it.path, it.label) for it in items}
                self._scanned_at = time.monotonic()
            return self._entries

    def classes(self) -> list[str]:
        """The folder classes: the labels an image can be given."""
        return sorted({e.original for e in self.entries().values()})

    def resolve(self, rel: str) -> Entry:
        """The listed image at ``rel``; InvalidRequest for a malformed or escaping path, NotFound if unlisted."""
        if not rel or "\x00" in rel or "\\" in rel:
            raise InvalidRequest(f"path must be a relative path with / separators; got {rel!r}")
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts or "." in rel.split("/"):
            raise InvalidRequest(f"path must be relative to the dataset folder, without '..'; got {rel!r}")
        target = (self.root / rel).resolve()
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
            rel = Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None
        return rel if rel in self.entries() else None

    # ------------------------------------------------------------ views

    @staticmethod
    def view(entry: Entry, ann: Annotation | None) -> dict[str, Any]:
        """JSON of one image: current ``label`` (None when left out) and ``status``."""
        label, status = _label_status(entry, ann)
        return {"path": entry.rel, "original": entry.original, "label": label, "status": status,
                "checked": ann is not None and ann.action == "keep", "v": file_version(entry.path)}

    def summary(self, state: dict[str, Annotation] | None = None) -> dict[str, Any]:
        """Counts: images per current class (what training will use) and per status."""
        state = current_state(self.root) if state is None else state
        per_class = {c: 0 for c in self.classes()}
        per_status = {s: 0 for s in STATUSES}
        for e in self.entries().values():
            label, status = _label_status(e, state.get(e.rel))
            per_status[status] += 1
            if label is not None:
                per_class[label] = per_class.get(label, 0) + 1
        return {"root": str(self.root), "name": self.root.name, "classes": self.classes(), "counts": per_class,
                "statuses": per_status, "total": len(self.entries())}

    def query(self, label: str = "", status: str = "", q: str = "", offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """One page of images whose current class is ``label`` and/or whose status is ``status``."""
        if status and status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        if label and label not in self.classes():
            raise InvalidRequest(f"label must be one of the classes {', '.join(self.classes())}; got {label!r}")
        state = current_state(self.root)
        q = q.lower()
        hits = []
        for e in self.entries().values():
            cur, st = _label_status(e, state.get(e.rel))
            if (label and cur != label) or (status and st != status) or (q and q not in e.rel.lower()):
                continue
            hits.append(e)
        page = hits[offset: offset + limit]
        return {"total": len(hits), "offset": offset, "limit": limit,
                "items": [self.view(e, state.get(e.rel)) for e in page], "summary": self.summary(state)}

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

        ``keep`` confirms the image's current label (a person checked it: the data doctor stops listing it)."""
        e = self.resolve(rel)
        if action == "keep":
            current = current_state(self.root).get(e.rel)
            label = current.label if current is not None and current.action in ("relabel", "keep") else e.original
        elif action == "relabel":
            if label not in self.classes():
                raise InvalidRequest(f"label must be one of the classes {', '.join(self.classes())}; got {label!r}")
        elif action in ("exclude", "ambiguous", "restore"):
            label = ""
        else:
            raise InvalidRequest(f"action must be one of relabel, exclude, ambiguous, restore, keep; got {action!r}")
        with self._lock:
            ann = current_state(self.root).get(e.rel)
            if action == "relabel" and label == e.original:
                action = "restore"  # back to its folder's label: no override needed
            if action != "restore" or ann is not None:  # restoring an unannotated image writes nothing
                if not (ann and ann.action == action and ann.label == label):
                    record(self.root, [(e.rel, e.original, action, label)])
        return self.item(e.rel)

    def undo(self, rel: str = "") -> dict[str, Any]:
        """Undo the newest correction (of ``rel`` if given); ``{"undone": row|None, "item": view|None}``."""
        if rel:
            self.resolve(rel)
        with self._lock:
            undone = undo_last(self.root, rel or None)
        if undone is None:
            return {"undone": None, "item": None}
        item = self.item(undone.path) if undone.path in self.entries() else None
        return {"undone": undone.__dict__, "item": item}

    def history(self, limit: int = 50) -> list[dict[str, str]]:
        """The newest ``limit`` rows of annotations.csv, newest first."""
        return [a.__dict__ for a in reversed(read_history(self.root)[-limit:])]


def _label_status(entry: Entry, ann: Annotation | None) -> tuple[str | None, str]:
    if ann is None:
        return entry.original, "unchanged"
    if ann.action in ("relabel", "keep"):
        return ann.label, "unchanged" if ann.label == entry.original else "relabeled"
    return None, _LEFT_OUT[ann.action]
