"""The images a service kept (``serve.keep_inputs``): whole files named by their content, and their record.

A keep folder (by default the dataset's pool, ``data.pool``) holds, besides any images of its own:

    kept-<sha256>.<ext>   the bytes a client sent, unchanged, named by their SHA-256: an image asked many
                          times is one file, and two different images never share a name
    .kept.lock            held by the one process that keeps images here
    kept.csv              one row per kept image (:data:`COLUMNS`), oldest first: its file, size, the service's answer
                          (``answer``: a class, "unknown" or "uncertain"), score, unknown flag, OOD score,
                          nearest class, when it was first and last asked and how many times

Every file is written atomically (:func:`imgclf.util.files.write_bytes`: a hidden temp file, then a
rename), so a process killed mid-write leaves no partial image: its leftover temp files are hidden
(dataset scans skip them) and removed by the next :meth:`KeptStore.open`. A kept image stays a pool image
like any other; once an annotation labels it, it is training data and eviction never deletes it.

:class:`KeptStore` is the writer (one process and one thread at a time); :func:`read_kept` is what readers
(Label next) use.
"""
from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock, Timeout

from ..util.errors import DatasetError
from ..util.files import read_csv, sha256_bytes, sha256_file, write_bytes, write_csv
from .annotations import LABELLING, current_state
from .images import decode_image, sniff_format

log = logging.getLogger(__name__)

INDEX = "kept.csv"
LOCK = ".kept.lock"  # hidden: dataset scans skip it
COLUMNS = ["file", "sha256", "bytes", "answer", "score", "unknown", "nearest_label", "ood_score", "first_asked",
           "last_asked", "times_asked"]
PREFIX = "kept-"
#: The answers that make a kept image worth labelling first: the service did not know what it shows.
UNSURE = ("unknown", "uncertain")
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "GIF": "gif", "WEBP": "webp", "TIFF": "tif"}
_NAME = re.compile(rf"{PREFIX}([0-9a-f]{{64}})\.({'|'.join(_EXTENSIONS.values())})")
_TEMP = re.compile(rf"\.({PREFIX}|{re.escape(INDEX)}).*\.tmp")  # util.files' temp names: ".<final name>.<random>.tmp"
_CHECK_SIZE = 64  # the check decode may reduce the image to this many pixels a side (a JPEG decodes at 1/8 scale)


def utc(t: float) -> str:
    """``t`` (seconds since the epoch) as ISO 8601 UTC, to the second: ``2026-12-05T17:00:39Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass(frozen=True)
class KeptImage:
    """One kept image and what the service answered when it was first asked."""

    file: str  # its name in the keep folder
    sha256: str
    bytes: int
    answer: str  # the label answered: a class, "unknown" or "uncertain" ("" for a file found without its record)
    score: float  # the top class's calibrated probability
    unknown: bool  # the OOD score was above the model's threshold
    nearest_label: str
    ood_score: float | None
    first_asked: str  # ISO 8601 UTC
    last_asked: str
    times_asked: int

    @property
    def unsure(self) -> bool:
        """The service answered "unknown" or "uncertain" (or flagged it unknown while answering a class)."""
        return self.unknown or self.answer in UNSURE

    def row(self) -> list:
        return [self.file, self.sha256, self.bytes, self.answer, self.score, str(self.unknown).lower(), self.nearest_label,
                "" if self.ood_score is None else self.ood_score, self.first_asked, self.last_asked, self.times_asked]

    @classmethod
    def from_row(cls, r: dict[str, str]) -> "KeptImage":
        return cls(file=r["file"], sha256=r["sha256"], bytes=int(r["bytes"]), answer=r["answer"], score=float(r["score"] or 0),
                   unknown=r["unknown"] == "true", nearest_label=r["nearest_label"],
                   ood_score=float(r["ood_score"]) if r["ood_score"] else None, first_asked=r["first_asked"],
                   last_asked=r["last_asked"], times_asked=int(r["times_asked"]))


def kept_name(data: bytes) -> tuple[str, str]:
    """(SHA-256, file name) of an image's bytes: ``kept-<sha256>.<ext>``, the extension from its magic number."""
    sha = sha256_bytes(data)
    return sha, f"{PREFIX}{sha}.{_EXTENSIONS.get(sniff_format(data[:32]) or '', 'bin')}"


def read_kept(folder: str | os.PathLike) -> dict[str, KeptImage]:
    """The records of a keep folder by file name (empty when it has none); unreadable rows, and rows naming a file
    that is not a ``kept-<sha256>.<ext>`` name, are left out."""
    path = Path(folder) / INDEX
    if not path.is_file():
        return {}
    out = {}
    for r in read_csv(path):
        try:
            k = KeptImage.from_row(r)
        except (KeyError, ValueError, TypeError):
            k = None
        if k is None or not _NAME.fullmatch(k.file):  # only a file of ours, in the folder itself, is ever deleted
            log.warning("%s: a row that is not a kept image's record is left out: %s", path, r)
            continue
        out[k.file] = k
    return out


class KeptStore:
    """The kept images of ``folder`` within ``quota_bytes``: add, count a repeat, evict the oldest, save the record.

    ``dataset_root``: the images folder ``folder`` lies in, whose annotations say which kept images a person
    labelled since (never evicted; they no longer count against the quota). Not thread-safe: one writer.
    """

    def __init__(self, folder: str | os.PathLike, quota_bytes: int, dataset_root: str | os.PathLike | None = None):
        self.folder = Path(folder)
        self.quota_bytes = int(quota_bytes)
        self.dataset_root = Path(dataset_root) if dataset_root is not None else None
        self.images: dict[str, KeptImage] = {}  # by SHA-256, in the order kept
        self.used_bytes = 0  # what the images above take
        self.dirty = False  # records changed since the last flush
        self._lock: FileLock | None = None  # held from open() to close()

    def open(self) -> "KeptStore":
        """Take the folder (one writer at a time: DatasetError when another process keeps into it, until
        :meth:`close`), remove temp files a killed writer left, read the record and match it to the files: a
        record whose file is gone is dropped, a ``kept-<sha256>`` file without one (written just before a kill)
        is adopted when its content has that hash; then evict down to the quota."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.folder / LOCK), thread_local=False)
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            raise DatasetError(f"another process keeps images in {self.folder} already; two writers would lose each "
                               "other's records", hint="stop it, or give this one its own folder: serve.keep_dir") from None
        names = os.listdir(self.folder)
        for name in names:
            if _TEMP.fullmatch(name):
                (self.folder / name).unlink(missing_ok=True)
                log.info("removed %s, left by a writer that was stopped", self.folder / name)
        read = read_kept(self.folder)
        recorded = {k.file: k for k in read.values() if (self.folder / k.file).is_file()}
        unrecorded = [(os.stat(self.folder / n), n, m.group(1)) for n in names
                      if (m := _NAME.fullmatch(n)) and n not in recorded and (self.folder / n).is_file()]
        for st, name, sha in sorted(unrecorded, key=lambda x: x[0].st_mtime_ns):  # the oldest first, as recorded
            if sha256_file(self.folder / name) == sha:
                recorded[name] = KeptImage(name, sha, st.st_size, "", 0.0, False, "", None, utc(st.st_mtime), utc(st.st_mtime), 1)
        self.images = {k.sha256: replace(k, bytes=(self.folder / k.file).stat().st_size) for k in recorded.values()}
        self.used_bytes = sum(k.bytes for k in self.images.values())
        self.dirty = set(read) != set(recorded)
        self.evict()
        self.flush()
        return self

    def asked_again(self, sha: str, when: float) -> bool:
        """Count one more request for the kept image ``sha``; False when no such image is kept."""
        k = self.images.get(sha)
        if k is None:
            return False
        self.images[sha] = replace(k, last_asked=utc(when), times_asked=k.times_asked + 1)
        self.dirty = True
        return True

    def add(self, data: bytes, answer: dict, when: float) -> KeptImage:
        """Keep an image not kept yet, with ``answer`` (:meth:`imgclf.inference.compute.Compute.answer`): checked by
        the safe decoder first (ImageError when unusable), then written atomically. :meth:`evict` keeps the quota."""
        decode_image(data, draft_size=_CHECK_SIZE)
        sha, name = kept_name(data)
        write_bytes(self.folder / name, data)
        ood = answer.get("ood_score")
        k = KeptImage(name, sha, len(data), str(answer["label"]), float(answer["score"]), bool(answer.get("unknown", False)),
                      str(answer.get("nearest_label", "")), None if ood is None else float(ood), utc(when), utc(when), 1)
        self.images[sha] = k
        self.used_bytes += k.bytes
        self.dirty = True
        return k

    def evict(self) -> list[str]:
        """Delete the oldest kept images (the first kept first) until the rest fit the quota; images an annotation
        labelled are never deleted and leave the record. Returns the names deleted."""
        if self.used_bytes <= self.quota_bytes:
            return []
        labelled = self._labelled()
        gone = []
        for k in list(self.images.values()):  # in the order kept: oldest first
            if self.used_bytes <= self.quota_bytes:
                break
            del self.images[k.sha256]
            self.used_bytes -= k.bytes
            self.dirty = True
            if k.file in labelled:
                continue
            (self.folder / k.file).unlink(missing_ok=True)
            gone.append(k.file)
        if gone:
            log.info("deleted %d kept image(s), the oldest, to stay within %.1f MB", len(gone), self.quota_bytes / 2**20)
        return gone

    def _labelled(self) -> set[str]:
        """Names of the kept files that an annotation of the dataset gave a class."""
        if self.dataset_root is None:
            return set()
        try:
            rel = self.folder.resolve().relative_to(self.dataset_root.resolve())
        except ValueError:
            return set()
        state = current_state(self.dataset_root)
        return {k.file for k in self.images.values()
                if (a := state.get((rel / k.file).as_posix())) is not None and a.action in LABELLING}

    def close(self) -> None:
        """Save the record and let another writer take the folder."""
        self.flush()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def flush(self) -> None:
        """Write kept.csv (atomically) when a record changed since the last flush."""
        if self.dirty:
            write_csv(self.folder / INDEX, COLUMNS, (k.row() for k in self.images.values()))
            self.dirty = False


__all__ = ["COLUMNS", "INDEX", "KeptImage", "KeptStore", "UNSURE", "kept_name", "read_kept", "utc"]
