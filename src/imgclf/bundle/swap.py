"""Crash-safe replacement of a whole folder, and its recovery after a writer was killed mid-swap.

A writer fills a temp folder ``.<name>.new-<pid>-*`` beside the target, then :func:`swap_dir` puts
it in place by two renames (``<name>`` → ``.<name>.old-<pid>-<ns>``, then the new folder →
``<name>``). A process killed between them leaves no ``<name>``: :func:`resolve_dir` then answers
the old folder (and, once its writer is gone, renames it back), so at every instant the old or the
new folder can be read. :func:`remove_stale` sweeps the swap folders of writers that died.

The pid in each temp name says whose folder it is: a live writer's folders are never touched.
A file in ``<name>`` that its writer did not list (the user's own) is carried into the new folder
before the renames, so a swap never removes a file imgclf did not write.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

import psutil

from ..util.errors import BundleError
from ..util.files import current_umask, read_json

log = logging.getLogger("imgclf")


def fsync_dir(d: Path) -> None:
    """Make the renames inside ``d`` durable (a no-op where a folder cannot be opened)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames are durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_dir(new: Path, target: Path, listed_in: str) -> None:
    """Put the complete folder ``new`` in place of ``target`` (absent or not) by renames only.

    ``listed_in``: the file of ``target`` that lists what its writer wrote (JSON ``{"files": {name: ...}}``); every
    other entry of ``target`` is carried into ``new`` first, so the old folder removed holds only listed files."""
    os.chmod(new, 0o777 & ~current_umask())  # mkdtemp makes 0700; the folder is an ordinary one like its files
    if target.is_dir():
        _carry_unlisted(target, new, listed_in)
    if not target.exists():
        os.replace(new, target)
    else:
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(target, old)
        # a kill here leaves no target: resolve_dir() answers `old` until it is renamed back
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(target.parent)


def _carry_unlisted(target: Path, new: Path, listed_in: str) -> None:
    """Hard-link (or copy) into ``new`` each entry of ``target`` not named in ``target/listed_in`` (all of them when
    it cannot be read) and not written again in ``new``; a BundleError, before any rename, when one of them has the
    name of a file ``new`` holds (replacing it would lose it)."""
    try:
        listed = set(read_json(target / listed_in)["files"]) | {listed_in}
    except (OSError, ValueError, KeyError, TypeError):
        listed = None
    unlisted = [p for p in target.iterdir() if listed is not None and p.name not in listed
                or listed is None and not os.path.lexists(new / p.name)]
    clash = [p.name for p in unlisted if os.path.lexists(new / p.name)]
    if clash:
        raise BundleError(f"{target} holds {', '.join(clash)}, which is not part of its bundle, and the new bundle "
                          "writes a file of that name; nothing was replaced",
                          hint=f"move {clash[0]} out of {target}, then run the command again")
    for p in unlisted:
        dst = new / p.name
        if p.is_symlink():
            os.symlink(os.readlink(p), dst)
        elif p.is_dir():
            shutil.copytree(p, dst, symlinks=True, copy_function=link_or_copy)
        else:
            link_or_copy(p, dst)
        log.info("kept %s in %s (it is not part of the bundle)", p.name, target)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """A hard link of ``src`` at ``dst``, or a copy where the file system has none."""
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def leftovers(target: Path) -> list[tuple[str, int, Path]]:
    """(kind, writer pid, path) of the swap folders beside ``target``: kind "old", "new" or "stage"."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(old|new|stage)-(\d+)-")
    out = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return []
    for p in entries:
        m = pattern.match(p.name)
        if m and p.is_dir():
            out.append((m.group(1), int(m.group(2)), p))
    return out


def writer_alive(pid: int) -> bool:
    return pid == os.getpid() or psutil.pid_exists(pid)


def remove_stale(target: Path, complete: str) -> None:
    """Delete swap folders of writers that died, once ``target`` itself is in place (else they hold it).
    ``complete``: the file whose presence says an old folder is whole (see :func:`resolve_dir`)."""
    if not target.exists():
        resolve_dir(target, complete)  # a kill between the renames: put the old folder back first
    for kind, pid, p in leftovers(target):
        if not writer_alive(pid) and target.exists():
            shutil.rmtree(p, ignore_errors=True)


def resolve_dir(d: Path, complete: str) -> Path:
    """The folder that holds ``d``: ``d`` itself, or after a writer was killed between the two renames
    of a swap, the old folder it had moved aside (renamed back when that writer is gone). Only an old
    folder holding the file ``complete`` (written last) counts."""
    if d.exists():
        return d
    olds = sorted(((pid, p) for kind, pid, p in leftovers(d) if kind == "old" and (p / complete).is_file()),
                  key=lambda item: int(item[1].name.rsplit("-", 1)[-1]))
    if not olds:
        return d
    pid, old = olds[-1]
    if writer_alive(pid):
        return old  # mid-swap right now: read the old folder where it is
    try:
        os.replace(old, d)
        log.warning("restored %s from %s (a save was interrupted between its two renames)", d, old.name)
        return d
    except OSError:
        return old if old.exists() else d
