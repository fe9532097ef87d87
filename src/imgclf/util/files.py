"""Atomic, inspectable file writing, safe reading and content hashing.

Every artifact imgclf writes goes through here: a temp file in the same folder, fsync,
then ``os.replace``, so a crash or a full disk never leaves a half-written file behind.
Every CSV goes through :func:`write_csv` and :func:`read_csv`, which neutralise the cells a
spreadsheet would execute and restore them on reading.

Files we did not write (images, a bundle's parts) are read only when they are regular files
(:func:`read_regular`, :func:`sha256_file`): a FIFO would block the reader forever, a device such
as /dev/zero never ends, and opening some devices has effects of its own.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; artifacts are ordinary files
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    """The process umask (read without changing it), for files and folders made 0600/0700 by ``tempfile``."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_new(folder: str | os.PathLike, names: Iterable[str], data: bytes) -> Path:
    """Write ``data`` atomically into ``folder`` under the first of ``names`` that names nothing yet; its path.

    Never replaces a file, even one made meanwhile by another writer: the finished temp file is
    hard-linked to its name, which fails when the name is taken (where the filesystem has no hard
    links, an exclusive create reserves the name first). FileExistsError when every name is taken."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".new.", suffix=".tmp", dir=folder)  # hidden: dataset scans skip it
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        for name in names:
            target = folder / name
            try:
                os.link(tmp, target)
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                    raise
                try:
                    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                except FileExistsError:
                    continue
                os.replace(tmp, target)
            return target
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    raise FileExistsError(errno.EEXIST, "every name offered is taken", os.fspath(folder))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): = + - @ or a tab or CR first,
# behind any number of quotes (so that a value starting with quotes round-trips too).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)


def csv_cell(value: Any) -> Any:
    """``value`` as :func:`write_csv` stores it: a text a spreadsheet would execute gets a leading ``'``
    (numbers such as ``-0.5`` are left alone); :func:`read_csv` removes it again."""
    if isinstance(value, str) and _FORMULA.match(value) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_value(cell: str) -> str:
    """The value a cell written by :func:`write_csv` holds (the inverse of :func:`csv_cell`)."""
    return cell[1:] if _FORMULA.match(cell) and cell.startswith("'") else cell


def write_csv(path: str | os.PathLike, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    """Write a CSV file with ``header`` atomically; cells a spreadsheet would execute are neutralised
    (see :func:`csv_cell`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # csv quotes a cell for the characters of its line terminator only: a row with a CR in a cell is quoted whole,
    # or the reader would end the line there
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for r in [header, *rows]:
        cells = [csv_cell(c) for c in r]
        (quoted if any(isinstance(c, str) and "\r" in c for c in cells) else w).writerow(cells)
    write_text(path, buf.getvalue())


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a CSV file with a header into a list of dicts, every value as it was given to :func:`write_csv`."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{_restored(k): _restored(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _restored(cell: Any) -> Any:
    return csv_value(cell) if isinstance(cell, str) else cell  # DictReader gives None / lists for ragged rows


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write arrays to an ``.npz`` atomically (load back with ``allow_pickle=False``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an ``.npz`` without ever unpickling."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a regular file's content, read in chunks (:class:`NotRegularFile` for anything else)."""
    h = hashlib.sha256()
    fd, _ = _open_regular(path)
    with os.fdopen(fd, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class NotRegularFile(OSError):
    """A path that names something other than a regular file (a FIFO, a device, a socket, a folder)."""

    def __init__(self, path: str | os.PathLike, mode: int):
        self.kind = file_kind(mode)
        super().__init__(errno.EINVAL, f"{self.kind}, not a regular file", os.fspath(path))


def file_kind(mode: int) -> str:
    """What an ``st_mode`` names, for messages: "a regular file", "a FIFO (named pipe)", ..."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def _open_regular(path: str | os.PathLike) -> tuple[int, os.stat_result]:
    """A read-only descriptor of ``path`` and its stat, only when it is a regular file.

    ``os.stat`` first, so nothing else is ever opened; then the open is non-blocking (a FIFO swapped
    in since does not block it) and the descriptor checked to be the file that was stat'ed."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, st.st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise NotRegularFile(path, opened.st_mode)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise FileNotFoundError(errno.ENOENT, "the file was replaced while being opened", os.fspath(path))
    except BaseException:
        os.close(fd)
        raise
    return fd, opened


def read_regular(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The content of the regular file ``path``: :class:`NotRegularFile` for anything else, an ``EFBIG``
    OSError when it is larger than ``max_bytes``. At most the size ``stat`` gave is read, so a file that
    grows while it is read cannot make the read go on."""
    fd, st = _open_regular(path)
    with os.fdopen(fd, "rb") as f:
        if max_bytes is not None and st.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"{st.st_size:,} bytes is more than the {max_bytes:,} bytes allowed", os.fspath(path))
        return f.read(st.st_size)
