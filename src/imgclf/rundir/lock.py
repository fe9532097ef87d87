"""One writer per run directory: an inter-process lock that every command writing a run directory holds.

    RUN_DIR/.imgclf.lock        the lock file (``filelock``: flock on POSIX, released by the OS when its holder dies)
    RUN_DIR/.imgclf.lock.json   who holds it: command, pid, host, since (written once the lock is held)

Two commands writing one run directory would mix their files (the first printing the second's split
figures), so a second writer is refused at once, with the holder's name, instead of waiting. Readers
(predict of RUN_DIR/model, serve, the UI) never take the lock. Within one process the lock is
re-entrant for the thread that holds it (``run`` holds it around the steps that each take it).
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import psutil
from filelock import FileLock, Timeout

from ..util.errors import RunDirError
from ..util.files import read_json, write_json

LOCK = ".imgclf.lock"
HOLDER = ".imgclf.lock.json"

_guard = threading.Lock()
_held: dict[Path, tuple[int, int]] = {}  # run dir → (thread id of the holder, depth)


class RunDirLocked(RunDirError):
    """Another command writes this run directory now."""

    reason = "run_dir_locked"


@contextlib.contextmanager
def locked(run_dir: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold ``run_dir``'s lock for ``command`` (a RunDirLocked naming the holder when another has it)."""
    root = Path(os.path.abspath(run_dir))
    me = threading.get_ident()
    with _guard:
        owner = _held.get(root)
        if owner is not None and owner[0] == me:
            _held[root] = (me, owner[1] + 1)
            reentered = True
        elif owner is not None:
            raise _refusal(root, command, holder(root))
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[root] = (me, _held[root][1] - 1)
        return
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / LOCK), thread_local=False)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        raise _refusal(root, command, holder(root)) from None
    try:
        with _guard:
            _held[root] = (me, 1)
        write_json(root / HOLDER, {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                                   "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        yield
    finally:
        with _guard:
            _held.pop(root, None)
        with contextlib.suppress(OSError):
            (root / HOLDER).unlink()
        lock.release()


def holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Who holds ``run_dir``'s lock now (command, pid, host, since), or None when no live process does.

    Read from the holder file; a holder file left by a killed process (its pid gone on this host) is None."""
    try:
        info = read_json(Path(run_dir) / HOLDER)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    pid = info.get("pid")
    if info.get("host") == socket.gethostname() and isinstance(pid, int) and not psutil.pid_exists(pid):
        return None
    return info


def _refusal(root: Path, command: str, info: dict[str, Any] | None) -> RunDirLocked:
    who = (f"`imgclf {info.get('command')}` (pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"
           if info else "another imgclf command")
    return RunDirLocked(f"{root} is being written by {who}; `imgclf {command}` cannot write it at the same time "
                        "(the two would mix their files)",
                        hint="wait for it to finish, or give this command another --run-dir")
