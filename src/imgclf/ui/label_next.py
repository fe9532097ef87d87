"""The Label next page's API: the suggested batch of pool images, one label per image, and the refit.

The batch is the iteration's suggestions.csv (made by ``imgclf suggest``, or here when there is none); an image
the service kept after answering "unknown" or "uncertain" (``serve.keep_inputs``) comes first and says so (``served``).
A label is an annotation of the dataset (action ``label``; ``x`` excludes the image from the
pool), saved at once, undone by the dataset's undo like any correction. ``refit`` is the quick
update (:func:`imgclf.ui.quick.make_draft`, the same as every page's): the head refit on the current
labels of the whole dataset as a draft iteration, scored by cross-validation on train, never on the
test split; Label next then goes on with the draft and suggests the next batch with its head.

Pool images are addressed by their path relative to the dataset folder, and only a path the pool
listing holds is accepted: no file name from a request is ever opened.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from ..config.settings import Config
from ..data.annotations import LABELLING, current_state, record
from ..data.dataset import Item, scan_dataset
from ..data.kept import KeptImage, read_kept
from ..labelnext import DEFAULT_STRATEGY, STRATEGIES
from ..labelnext.quick import cv_figures, is_draft
from ..labelnext.step import POOL_EMPTY, suggest
from ..rundir.layout import RunDir
from ..util.errors import BundleError, DatasetError, InvalidRequest, NotFound, RunDirError
from ..util.files import read_json
from .quick import make_draft
from .parts import needed, thumbnail_response
from .thumbs import ThumbnailCache, file_version

BATCH = 20  # images per batch unless the page asks for another number
MAX_HISTORY = 50  # iterations of the chain of drafts the page lists, newest last
_RESCAN_AFTER_S = 2.0  # a thumbnail of a path missing from the last listing rescans the pool at most this often


class LabelIn(BaseModel):
    path: str  # pool image path relative to the dataset folder
    label: str = ""  # the class given; empty with action "exclude"
    action: str = "label"  # label | exclude


class RefitIn(BaseModel):
    n: int = BATCH  # size of the next batch
    strategy: str = DEFAULT_STRATEGY


class LabelNext:
    """Label next over one iteration (a run directory; after a refit, the draft it made) and its dataset folder."""

    def __init__(self, run_dir: str | os.PathLike, images_dir: str | os.PathLike):
        self.rd = RunDir(Path(run_dir).resolve())
        self.images = Path(images_dir).resolve()
        self._lock = threading.Lock()  # one suggest or refit at a time: they write the run's files
        self._listed: dict[str, Item] = {}  # the pool as last listed: what thumbnails are looked up in
        self._listed_at = 0.0

    def config(self) -> Config:
        """The run's saved config, reading images from the UI's dataset folder."""
        cfg = self.rd.saved_config() or Config()
        cfg.data.images = str(self.images)
        return cfg

    def _pool(self) -> dict[str, Item]:
        """Every pool image by rel path, whatever its annotation (the listing requests are checked against)."""
        pool = {it.rel: it for it in scan_dataset(self.images, apply_annotations=False, pool=self.config().data.pool).pool}
        self._listed, self._listed_at = pool, time.monotonic()
        return pool

    def listed(self, rel: str) -> Item:
        """The pool image at ``rel`` as the last listing has it (a batch's thumbnails do not scan the dataset
        again, one each); a path it lacks rescans the pool, at most every couple of seconds; NotFound after."""
        item = self._listed.get(rel)
        if item is None and time.monotonic() - self._listed_at > _RESCAN_AFTER_S:
            item = self._pool().get(rel)
        if item is None:
            raise NotFound(f"no image {rel!r} in the pool of {self.images}; reload the page", reason="not_in_pool")
        return item

    def resolve(self, rel: str) -> Item:
        """The pool image at ``rel``; NotFound when the pool listing has no such image."""
        item = self._pool().get(rel)
        if item is None:
            raise NotFound(f"no image {rel!r} in the pool of {self.images}; reload the page", reason="not_in_pool")
        return item

    def classes(self) -> list[str]:
        return sorted({r.label for r in self.rd.split_rows()})

    def payload(self, n: int, strategy: str) -> dict[str, Any]:
        """The current batch (suggested now when there is none, or all of it was labelled) and the progress."""
        _checked(strategy)
        with self._lock:
            state = current_state(self.images)
            rows = self.rd.read_suggestions()
            if not rows or all(r["rel"] in state for r in rows):
                self._suggest(self.config(), n, strategy)
                rows, state = self.rd.read_suggestions(), current_state(self.images)
            return {"classes": self.classes(), "batch": self._batch(rows, state), "progress": self.progress(state)}

    def _suggest(self, cfg: Config, n: int, strategy: str) -> None:
        """suggestions.csv made afresh; an empty one when no unlabelled image is left in the pool."""
        try:
            suggest(cfg, self.rd.root, n=n, strategy=strategy)
        except DatasetError as e:
            if e.reason != POOL_EMPTY:
                raise
            self.rd.write_suggestions([])

    def _batch(self, rows: list[dict[str, Any]], state: dict) -> list[dict[str, Any]]:
        pool = self._pool()
        kept: dict[Path, dict[str, KeptImage]] = {}
        return [{"path": r["rel"], "predicted": r["predicted"], "score": r["score"], "reason": r["reason"],
                 "v": file_version(pool[r["rel"]].path), "served": _served(pool[r["rel"]].path, kept),
                 **_state(state.get(r["rel"]))} for r in rows if r["rel"] in pool]

    def progress(self, state: dict | None = None) -> dict[str, Any]:
        """Labelled / pool size, and the cross-validated train figures of the iteration and the drafts before it."""
        state = current_state(self.images) if state is None else state
        pool = self._pool()
        given = sum(1 for rel in pool if rel in state and state[rel].action in LABELLING)
        dropped = sum(1 for rel in pool if rel in state and state[rel].action not in LABELLING)
        return {"pool": len(pool), "labelled": given, "excluded": dropped, "left": len(pool) - given - dropped,
                "run": str(self.rd.root), "name": self.rd.root.name, "history": self.history()}

    def history(self) -> list[dict[str, Any]]:
        """The iteration and the drafts it descends from, oldest first, each with its cross-validated train figures
        (a full run's class-averaged accuracy from its C search; never a test figure)."""
        out: list[dict[str, Any]] = []
        run: Path | None = self.rd.root
        while run is not None and len(out) < MAX_HISTORY:
            draft = is_draft(run)
            metrics = read_json(RunDir(run).metrics) if draft else {}
            out.append({"run": str(run), "name": run.name, "draft": draft, "n_train": metrics.get("n_train"), **cv_figures(run)})
            parent = Path(metrics["parent"]["run"]) if draft else None
            run = parent if parent is not None and (parent / "model").is_dir() else None
        return out[::-1]

    def label(self, body: LabelIn) -> dict[str, Any]:
        """Give pool image ``body.path`` the class ``body.label``, or exclude it (``action = "exclude"``)."""
        item = self.resolve(body.path)
        if body.action == "label":
            if body.label not in self.classes():
                raise InvalidRequest(f"label must be one of the classes {', '.join(self.classes())}; got {body.label!r}")
            record(self.images, [(item.rel, "", "label", body.label)])
        elif body.action == "exclude":
            record(self.images, [(item.rel, "", "exclude", "")])
        else:
            raise InvalidRequest(f"action must be 'label' or 'exclude'; got {body.action!r}")
        state = current_state(self.images)
        return {"item": {"path": item.rel, **_state(state.get(item.rel))}, "progress": self.progress(state)}

    def refit(self, body: RefitIn) -> dict[str, Any]:
        """The quick update on every label of the dataset now (a draft iteration Label next goes on with), then the
        next batch suggested by the draft's head."""
        if not 1 <= body.n <= 500:
            raise InvalidRequest(f"n must be from 1 to 500; got {body.n}")
        _checked(body.strategy)
        with self._lock:
            result = make_draft(self.rd.root, self.images)
            self.rd = RunDir(Path(result["run"]))
            self._suggest(self.config(), body.n, body.strategy)
            state = current_state(self.images)
            return {"refit": result, "classes": self.classes(), "batch": self._batch(self.rd.read_suggestions(), state),
                    "progress": self.progress(state)}


@contextlib.contextmanager
def _as_request_errors() -> Iterator[None]:
    """What the run or the dataset cannot give, answered as a refused request (4xx), never as a failure of the server."""
    try:
        yield
    except DatasetError as e:
        raise InvalidRequest(f"{e.message}; {e.hint}" if e.hint else e.message, reason=e.reason) from None
    except (RunDirError, BundleError) as e:
        raise NotFound(f"{e.message}; {e.hint}" if e.hint else e.message, reason=e.reason) from None


def _checked(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise InvalidRequest(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    return strategy


def _served(path: str, kept: dict[Path, dict[str, KeptImage]]) -> dict[str, Any] | None:
    """What the service answered when asked about the pool image ``path``, when it kept it unsure (``serve.keep_inputs``:
    "unknown" or "uncertain"), else None; ``kept`` caches the records of each folder."""
    folder = Path(path).parent
    if folder not in kept:
        kept[folder] = read_kept(folder)
    k = kept[folder].get(Path(path).name)
    if k is None or not k.unsure:
        return None
    return {"answer": k.answer, "unknown": k.unknown, "first_asked": k.first_asked, "times_asked": k.times_asked}


def _state(ann: Any) -> dict[str, Any]:
    """What happened to a suggested image so far: ``label`` given (None), ``status`` labelled | excluded | ''."""
    if ann is None:
        return {"label": None, "status": ""}
    if ann.action in LABELLING:
        return {"label": ann.label, "status": "labelled"}
    return {"label": None, "status": "excluded"}


def build_label_next_router(label_next: Callable[[], LabelNext | None], thumbs: ThumbnailCache) -> APIRouter:
    """The routes of the Label next page's API (``/ui/api/label-next/...``) over ``label_next()``, the chosen
    iteration's."""
    r = APIRouter()

    need = needed(label_next, "Label next needs a run and its dataset; start the UI with `imgclf ui --run RUN_DIR` "
                              "(its dataset folder holding the pool, IMAGES/_unlabeled)", reason="no_run")

    @r.get("/ui/api/label-next")
    def batch(n: int = Query(BATCH, ge=1, le=500), strategy: str = DEFAULT_STRATEGY) -> dict[str, Any]:
        """The batch to label (suggested when there is none yet), the classes and the progress."""
        with _as_request_errors():
            return need().payload(n, strategy)

    @r.post("/ui/api/label-next/label")
    def label(body: LabelIn) -> dict[str, Any]:
        """Give one pool image a class, or exclude it; saved at once to annotations.csv."""
        with _as_request_errors():
            return need().label(body)

    @r.post("/ui/api/label-next/refit")
    def refit_route(body: RefitIn) -> dict[str, Any]:
        """The quick update (a draft iteration scored by cross-validation on train), and the next batch."""
        with _as_request_errors():
            return need().refit(body)

    @r.get("/ui/api/label-next/thumb")
    def thumb(path: str, size: int = 256, v: str = "") -> Response:
        """JPEG thumbnail of a pool image (``v``, from the batch, makes the URL cacheable)."""
        with _as_request_errors():
            item = need().listed(path)
        return thumbnail_response(thumbs, item.path, size, path, cacheable=bool(v))

    return r
