"""Whose a run directory is, and whether its files belong together.

    RUN_DIR/.imgclf-run.json   written by the first imgclf command that writes the folder: imgclf made it
    RUN_DIR/INCOMPLETE         JSON {command, started, pid, host, next[, finished]}: written first by every
                               command that writes the run, removed last once the run's model, split and
                               metrics belong together again

The steps form a chain, each reading what the ones before it wrote: prepare (split) → featurize →
train (model) → evaluate (metrics) → doctor. A command that writes part of it leaves everything
after that part stale, so the marker names ``next``: the first step to run again. A command killed
half way (SIGKILL, Ctrl-C, an exception, a full disk) never removes it; one that finishes moves
``next`` past what it did, and removes the marker once evaluate (or the doctor) has run after the
rest. Meanwhile a command that would build on the unfinished part is refused, and the readers (predict,
serve, the UI, suggest) report the run as incomplete.

imgclf writes only into a run directory that is new, empty, made by imgclf, or made by a release
before this marker (config.json and split.csv): a folder of the user's own files is refused before
anything is written, so nothing in it is overwritten or removed.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..util.errors import RunDirError
from ..util.files import read_json, write_json
from .lock import HOLDER, LOCK, holder

MADE_BY = ".imgclf-run.json"
INCOMPLETE = "INCOMPLETE"
FORMAT = "imgclf-run-dir"
CHAIN = ("prepare", "featurize", "train", "evaluate", "doctor")
#: The steps each command writes, as (first, last) positions in CHAIN.
SPANS = {"prepare": (0, 0), "featurize": (1, 1), "train": (2, 2), "refine": (2, 2), "evaluate": (3, 3),
         "doctor": (4, 4), "run": (0, 4), "quick-update": (0, 4)}
#: Training may follow a pending featurize: the refining trainers need no features.npz, and the svm reads each
#: image's features by path, whichever split they were computed for.
_MAY_FOLLOW = {"train": 1, "refine": 1}
_DONE_AFTER = CHAIN.index("evaluate")  # the run's figures are whole once evaluate ran after everything before it
_OURS = {LOCK, HOLDER, MADE_BY, INCOMPLETE}
_LEGACY = ("config.json", "split.csv")  # a run directory of a release before MADE_BY


class RunIncomplete(RunDirError):
    """The run directory's model, split and metrics do not belong together (a command did not finish)."""

    reason = "run_incomplete"


@dataclass(frozen=True)
class Incomplete:
    """The INCOMPLETE marker: ``command`` started at ``started`` by ``pid`` on ``host``; ``next``: the first step
    to run again; ``finished``: when ``command`` finished (absent: it never did, or it still runs)."""

    command: str
    started: str
    pid: int
    host: str
    next: str
    finished: str | None = None
    readable: bool = True  # False: a marker that cannot be read (the run is incomplete all the same)

    def describe(self, run_dir: str | os.PathLike) -> str:
        """One line saying what happened to the run and what is stale."""
        if not self.readable:
            return (f"run {run_dir} is incomplete: its {INCOMPLETE} marker cannot be read, so its model, split and "
                    "metrics may not belong together")
        if self.finished:
            return (f"run {run_dir} is incomplete: `imgclf {self.command}` changed it at {self.finished}, and its "
                    f"{_stale(self.next)} do not match that yet")
        running = holder(run_dir)
        if (running and self.pid != os.getpid()
                and (running.get("pid"), running.get("host"), running.get("command")) == (self.pid, self.host, self.command)):
            return f"run {run_dir} is incomplete: `imgclf {self.command}` (pid {self.pid}) is writing it now"
        return (f"run {run_dir} is incomplete: `imgclf {self.command}` started at {self.started} (pid {self.pid} on "
                f"{self.host}) did not finish, so its model, split and metrics may not belong together")

    def hint(self, run_dir: str | os.PathLike) -> str:
        return (f"rerun it: `imgclf run --run-dir {run_dir}`, or `imgclf {self.next} --run-dir {run_dir}` and the "
                "steps after it")


def read_incomplete(run_dir: str | os.PathLike) -> Incomplete | None:
    """The INCOMPLETE marker of ``run_dir``, or None when the run is whole (an unreadable marker still counts)."""
    path = Path(run_dir) / INCOMPLETE
    if not path.exists():
        return None
    try:
        d = read_json(path)
        return Incomplete(str(d["command"]), str(d["started"]), int(d["pid"]), str(d["host"]), str(d["next"]),
                          d.get("finished"))
    except (OSError, ValueError, KeyError, TypeError):
        return Incomplete("?", "?", 0, "?", CHAIN[0], readable=False)


def incomplete_info(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """What the service and the UI show of an incomplete run: {message, hint, command, started, next}, or None."""
    m = read_incomplete(run_dir)
    if m is None:
        return None
    return {"message": m.describe(run_dir), "hint": m.hint(run_dir), "command": m.command, "started": m.started,
            "next": m.next}


def bundle_run_incomplete(bundle_dir: str | os.PathLike) -> dict[str, Any] | None:
    """:func:`incomplete_info` of the run directory whose model/ ``bundle_dir`` is (None for a bundle elsewhere)."""
    root = Path(os.path.abspath(bundle_dir)).parent
    return incomplete_info(root) if (root / MADE_BY).is_file() else None


def check_writable(run_dir: str | os.PathLike) -> None:
    """Refuse a ``run_dir`` that is neither new, empty, made by imgclf, nor a run directory of an older release."""
    root = Path(run_dir)
    if root.exists() and not root.is_dir():
        raise RunDirError(f"run directory {root} exists and is not a folder", hint="give a new or empty folder as --run-dir")
    if not root.exists() or (root / MADE_BY).is_file() or all((root / n).is_file() for n in _LEGACY):
        return
    foreign = sorted(p.name for p in root.iterdir() if p.name not in _OURS)
    if foreign:
        raise RunDirError(f"{root} holds files imgclf did not write (e.g. {', '.join(foreign[:3])}) and is not a run "
                          f"directory (no {MADE_BY}); imgclf writes only into a new or empty folder or a run directory it "
                          "made, so your files stay as they are",
                          hint="give another --run-dir (a new folder), or move those files elsewhere",
                          reason="foreign_run_dir")


def begin(run_dir: str | os.PathLike, command: str) -> Incomplete:
    """Mark ``run_dir`` as made by imgclf and incomplete while ``command`` writes it; returns the marker to pass to
    :func:`finish`. A RunIncomplete when an unfinished step comes before the first one ``command`` writes."""
    root = Path(run_dir)
    first, _ = SPANS[command]
    old = read_incomplete(root)
    if old is not None and _MAY_FOLLOW.get(command, first) > CHAIN.index(old.next):
        raise RunIncomplete(f"{old.describe(root)}; `imgclf {command}` would build on it", hint=old.hint(root))
    if not (root / MADE_BY).is_file():
        write_json(root / MADE_BY, {"format": FORMAT, "created": _now()})
    marker = Incomplete(command, _now(), os.getpid(), socket.gethostname(), CHAIN[first])
    _write(root, marker)
    return marker


def finish(run_dir: str | os.PathLike, marker: Incomplete) -> None:
    """``marker``'s command finished: remove the marker when the run is whole, else say which step is next."""
    root = Path(run_dir)
    _, last = SPANS[marker.command]
    if last >= _DONE_AFTER:
        (root / INCOMPLETE).unlink(missing_ok=True)
    else:
        _write(root, Incomplete(marker.command, marker.started, marker.pid, marker.host, CHAIN[last + 1], _now()))


def _write(root: Path, m: Incomplete) -> None:
    write_json(root / INCOMPLETE, {"command": m.command, "started": m.started, "pid": m.pid, "host": m.host, "next": m.next,
                                   **({"finished": m.finished} if m.finished else {})})


def _stale(step: str) -> str:
    """What a run whose ``step`` is to run again lacks: "features, model and metrics" after a new split."""
    names = {"featurize": "features", "train": "model", "evaluate": "metrics", "doctor": "findings"}
    stale = [names[s] for s in CHAIN[CHAIN.index(step):_DONE_AFTER + 1] if s in names] or [names["doctor"]]
    return ", ".join(stale[:-1]) + " and " + stale[-1] if len(stale) > 1 else stale[0]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
