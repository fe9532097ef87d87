"""A dataset's iterations: the run directories of its runs folder, and which one is published.

    RUNS/                      ROOT/runs/<dataset> (where `imgclf run` puts a run without --run-dir)
        20261205-101500/       one iteration: a run directory (see imgclf.rundir.layout)
        20261205-113012/
        published.json         {"current": NAME | null, "history": [{"run", "at", "action"}, ...]}

The run directories are the one source of truth: an iteration's figures are its metrics.json, its
labels its split.csv, its state the INCOMPLETE marker (see :mod:`imgclf.rundir.state`); the run
history in MLflow is written from the same files. ``published.json`` names the iteration the
service answers with; it is replaced atomically under a lock, and its history makes a rollback
one step.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..util.errors import NotFound, RunDirError
from ..util.files import read_json, write_json
from .layout import RunDir
from .state import MADE_BY, read_incomplete

PUBLISHED = "published.json"
_LOCK = ".published.lock"
HISTORY_KEPT = 100  # publish/rollback entries kept in published.json


@dataclass
class Iteration:
    """One run directory of a runs folder, as the iterations list shows it."""

    name: str
    path: str
    started: float  # seconds since the epoch: when imgclf first wrote the folder
    state: str  # finished | incomplete | draft (a quick update: scored by cross-validation on train only)
    accuracy: float | None = None  # on the test split (None for a draft or a run never evaluated)
    class_avg_accuracy: float | None = None
    ece: float | None = None  # expected calibration error of the bundle's scores on the test split
    cv_accuracy: float | None = None  # a draft's cross-validated accuracy on train
    preset: str | None = None
    featurizers: list[str] = field(default_factory=list)
    classifier: str | None = None
    wall_s: float | None = None
    n_train: int | None = None
    n_test: int | None = None
    labels_changed: int | None = None  # images whose label differs from the previous iteration's (None for the first)
    test_changed: list[str] = field(default_factory=list)  # test images added, removed or relabelled since the previous
    published: bool = False
    parent: str | None = None  # a draft's run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def has_model(run_dir: str | os.PathLike) -> bool:
    """Whether the run directory holds a model bundle (its bundle.json)."""
    return (RunDir(Path(run_dir)).model / "bundle.json").exists()


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory imgclf made (its marker file, or config.json + split.csv of an older release)."""
    return path.is_dir() and ((path / MADE_BY).exists() or ((path / "config.json").exists() and (path / "split.csv").exists()))


def _started(rd: RunDir) -> float:
    for p in (rd.made_by, rd.config, rd.root):
        try:
            return p.stat().st_mtime
        except OSError:
            continue
    return 0.0


def _labels(rd: RunDir) -> dict[str, tuple[str, str]]:
    """{image key: (split, label)} of the run's split.csv (key: the path relative to the dataset, else the path)."""
    try:
        return {(r.rel or r.path): (r.split, r.label) for r in rd.split_rows()}
    except (RunDirError, OSError, ValueError, KeyError):
        return {}


def label_changes(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> tuple[int, list[str]]:
    """Images whose label differs between two iterations' split.csv (added and removed ones count), and the test
    images among them or whose split changed to or from test, sorted."""
    keys = set(before) | set(after)
    changed = [k for k in keys if before.get(k, ("", ""))[1] != after.get(k, ("", ""))[1]]
    test = sorted(k for k in keys if (before.get(k, ("", ""))[0] == "test" or after.get(k, ("", ""))[0] == "test")
                  and before.get(k) != after.get(k))
    return len(changed), test


def _iteration(rd: RunDir) -> Iteration:
    metrics: dict[str, Any] = {}
    if rd.metrics.exists():
        try:
            metrics = read_json(rd.metrics)
        except (OSError, ValueError):
            metrics = {}
    draft = metrics.get("draft")
    state = "incomplete" if read_incomplete(rd.root) is not None else "draft" if draft else "finished"
    cfg = rd.saved_config()
    cal = (metrics.get("calibration") or {}).get("after") or {}
    preset = (metrics.get("preset") or {}).get("name") or (cfg.train.preset if cfg is not None else None)
    it = Iteration(name=rd.root.name, path=str(rd.root), started=_started(rd), state=state,
                   preset=preset or None, wall_s=metrics.get("wall_seconds"),
                   n_train=metrics.get("n_train"), n_test=metrics.get("n_test"),
                   featurizers=list(cfg.model.featurizers) if cfg is not None and cfg.model.featurizers else
                   ([f"{cfg.model.backbone}@{cfg.model.resolution}"] if cfg is not None else []),
                   classifier=cfg.train.classifier if cfg is not None else None)
    if draft:  # metrics.json of a quick update: cv_accuracy on train and the parent iteration, no test figure
        parent = metrics.get("parent")
        it.cv_accuracy = metrics.get("cv_accuracy")
        it.class_avg_accuracy = metrics.get("cv_class_avg_accuracy")
        it.parent = parent.get("name") if isinstance(parent, dict) else parent
    else:
        it.accuracy = metrics.get("accuracy")
        it.class_avg_accuracy = metrics.get("class_avg_accuracy")
        it.ece = cal.get("ece")
    return it


def list_iterations(runs: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> list[Iteration]:
    """Every run directory in ``runs``, newest first, with what changed since the one before it; only those of
    ``images_dir`` (by their saved config's dataset folder) when it is given."""
    folder = Path(runs)
    if not folder.is_dir():
        return []
    want = Path(images_dir).resolve() if images_dir is not None else None
    rds = []
    for p in sorted(folder.iterdir()):
        if not is_run_dir(p):
            continue
        rd = RunDir(p.resolve())
        if want is not None:
            cfg = rd.saved_config()
            if cfg is None or cfg.images_dir() is None or Path(cfg.images_dir()).resolve() != want:
                continue
        rds.append(rd)
    its = [(_iteration(rd), rd) for rd in rds]
    its.sort(key=lambda x: (x[0].started, x[0].name))
    published = read_published(folder).get("current")
    before: dict[str, tuple[str, str]] | None = None
    for it, rd in its:
        labels = _labels(rd)
        if before is not None:
            it.labels_changed, it.test_changed = label_changes(before, labels)
        before = labels
        it.published = it.name == published
    return [it for it, _ in reversed(its)]


def read_published(runs: str | os.PathLike) -> dict[str, Any]:
    """``published.json`` of ``runs``: ``current`` (a run name or None) and ``history`` (oldest first)."""
    path = Path(runs) / PUBLISHED
    if not path.exists():
        return {"current": None, "history": []}
    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path} cannot be read ({e})", hint=f"delete {path} and publish again") from None
    return {"current": data.get("current"), "history": list(data.get("history") or [])}


def published_run(runs: str | os.PathLike) -> Path | None:
    """The published iteration's run directory, or None when nothing is published."""
    name = read_published(runs).get("current")
    return Path(runs) / name if name else None


def _record(runs: Path, name: str, action: str) -> dict[str, Any]:
    with FileLock(str(runs / _LOCK), timeout=30):
        data = read_published(runs)
        history = [*data["history"], {"run": name, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "action": action}]
        data = {"current": name, "history": history[-HISTORY_KEPT:]}
        write_json(runs / PUBLISHED, data)
    return data


def check_iteration(runs: str | os.PathLike, name: str, *, need_model: bool = True) -> RunDir:
    """The run directory of iteration ``name`` in ``runs``; NotFound unless it is a run directory there (with a
    model, when ``need_model``)."""
    folder = Path(runs).resolve()
    path = (folder / name).resolve()
    if not name or Path(name).name != name or path.parent != folder or not is_run_dir(path):
        raise NotFound(f"no iteration {name!r} in {folder}; reload the list of iterations", reason="no_iteration")
    rd = RunDir(path)
    if need_model and not has_model(rd.root):
        raise NotFound(f"iteration {name!r} has no model ({rd.model} is missing): it cannot answer requests",
                       reason="no_model")
    return rd


def publish(runs: str | os.PathLike, name: str) -> dict[str, Any]:
    """Make iteration ``name`` the published one (recorded in the history); the new published.json."""
    check_iteration(runs, name)
    return _record(Path(runs).resolve(), name, "publish")


def _stack(history: list[dict[str, Any]]) -> list[str]:
    """The publications still standing: each publish adds one, each rollback takes the newest away."""
    stack: list[str] = []
    for h in history:
        if h.get("action") == "rollback":
            while stack and stack[-1] != h.get("run"):
                stack.pop()
        elif h.get("run"):
            stack.append(h["run"])
    return stack


def rollback_target(runs: str | os.PathLike) -> str:
    """The iteration a rollback publishes: the one published before the current one (a second rollback goes one
    further back) that still has a model; NotFound when there is none."""
    folder = Path(runs).resolve()
    stack = _stack(read_published(folder)["history"])
    for name in reversed(stack[:-1]):
        if name != stack[-1] and has_model(folder / name):
            return name
    raise NotFound("nothing to roll back to: no earlier published iteration with a model is left", reason="no_rollback")


def rollback(runs: str | os.PathLike) -> dict[str, Any]:
    """Publish again the iteration of :func:`rollback_target`; the new published.json."""
    folder = Path(runs).resolve()
    return _record(folder, rollback_target(folder), "rollback")
