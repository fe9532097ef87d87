"""What every command that writes a run directory does around its work: refuse a folder of foreign files,
hold the run directory's lock, mark the run incomplete while it works, and turn a full disk into one line.

    with writing(run_dir, "train"):
        ...  # the step's work

See :mod:`imgclf.rundir.lock` (the lock) and :mod:`imgclf.rundir.state` (the markers).
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

from ..util.errors import RunDirError
from .lock import locked
from .state import INCOMPLETE, Incomplete, begin, check_writable, finish

_FULL = (errno.ENOSPC, errno.EDQUOT)
_CREATE = ("prepare", "run", "refine")  # the commands that may make a new run directory


class DiskFull(RunDirError):
    """The disk (or the user's quota) ran out of space while a command wrote a run directory."""

    reason = "disk_full"


@contextlib.contextmanager
def writing(run_dir: str | os.PathLike, command: str, *, marks: bool = True) -> Iterator[None]:
    """Hold ``run_dir`` for ``command`` while the block writes it.

    ``marks``: the command writes the run's chain of steps (see :data:`imgclf.rundir.state.SPANS`), so the run
    is marked incomplete until the block finishes; ``suggest`` only holds the lock. A block that raises leaves
    the marker in place; a full disk becomes a :class:`DiskFull` (message and hint, no traceback). Under
    ``torchrun`` only rank 0 holds the run directory: it alone writes the files. A command that needs an
    earlier step's folder makes nothing when it is missing."""
    root = Path(run_dir)
    if os.environ.get("RANK", "0") not in ("", "0") or (command not in _CREATE and not root.is_dir()):
        yield  # the step itself says which earlier step makes the missing folder
        return
    try:
        check_writable(root)
        with locked(root, command):
            check_writable(root)
            marker: Incomplete | None = begin(root, command) if marks else None
            yield
            if marker is not None:
                finish(root, marker)
    except Exception as e:
        if not _disk_full(e):
            raise
        marked = (f"the run is marked incomplete ({root / INCOMPLETE})" if (root / INCOMPLETE).exists()
                  else "the run was left as it was")
        raise DiskFull(f"no space left on the disk of {root.resolve()} while `imgclf {command}` wrote "
                       f"{_where(e) or 'the run directory'}; {marked} and its previous model is left as it was",
                       hint=f"free space on that disk (`df -h {root}` shows how much is left), then rerun "
                            f"`imgclf {command} --run-dir {root}`") from None


def _chain(e: BaseException) -> Iterator[BaseException]:
    """``e`` and the exceptions it was raised from (or while handling)."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _disk_full(e: BaseException) -> bool:
    """True when ``e``, or an exception it was raised from, is a full disk or quota."""
    return any((isinstance(c, OSError) and c.errno in _FULL)
               or "No space left on device" in str(c)  # libraries that re-raise an OSError as their own error
               for c in _chain(e))


def _where(e: BaseException) -> str | None:
    """The file being written when ``e`` happened, where an OSError names it."""
    return next((str(c.filename) for c in _chain(e) if isinstance(c, OSError) and c.filename), None)
