"""The iteration the UI shows and answers with, switchable while the UI runs, and the published one.

Two models, each named on every page:

- the **chosen** iteration: what Results, Review, Label next, the class maps and Try show and
  answer with. Choosing another switches all of them at once: they read it from here at every
  request, never from what was loaded when the server started.
- the **published** iteration: what the service's endpoints (/predict, /score, /v2) answer with,
  recorded in the runs folder's published.json (see :mod:`imgclf.rundir.iterations`) so that
  ``imgclf serve RUNS`` elsewhere follows it too. Publishing swaps the service's predictor
  without a restart and without a failed request (see :meth:`InferenceService.install`), and
  chooses the iteration in the UI as well.

When the chosen iteration is the published one, the UI answers through the service itself (one
model in memory, one queue); otherwise through a second service of its own with the same limits.
``version`` counts the switches: the pages poll it and reload what they show when it moves.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from ..config.settings import Config
from ..rundir.iterations import check_iteration, published_run, read_published, rollback_target
from ..rundir.iterations import publish as record_publish
from ..rundir.iterations import rollback as record_rollback
from ..rundir.state import incomplete_info
from ..serve.metrics import Metrics
from ..serve.service import InferenceService
from ..util.errors import NotFound
from .catalog import Catalog
from .label_next import LabelNext
from .results import RunResults
from .review import Review

log = logging.getLogger(__name__)


class Live:
    """The chosen and the published iteration of one UI server, over one dataset and its runs folder."""

    def __init__(self, *, service: InferenceService, catalog: Catalog | None, images_dir: str | None,
                 runs: str | None, cfg: Config, load: Callable[[Path], Any] | None = None):
        self.service = service  # the app's: the published model's
        self.catalog = catalog
        self.images_dir = images_dir
        self.runs = Path(runs).resolve() if runs else None
        self.cfg = cfg
        self._load = load or self._predictor
        self._lock = threading.RLock()  # one switch at a time; readers take the fields without it
        self._own: InferenceService | None = None  # the chosen model's, when it is not the published one
        self.run_dir: Path | None = None
        self.results: RunResults | None = None
        self.review: Review | None = None
        self.label_next: LabelNext | None = None
        self.version = 0
        self.endpoint_run: Path | None = None  # the run whose model the service answers with
        self._following = threading.Lock()  # one follow of a publish made elsewhere at a time
        self._failed: Path | None = None  # a published iteration that failed to load (not retried)

    def _predictor(self, run_dir: Path) -> Any:
        from ..inference.predict import Predictor

        return Predictor(run_dir / "model", predict_cfg=self.cfg.predict)

    # -- what the pages read -------------------------------------------------------------------------------------
    @property
    def answering(self) -> InferenceService:
        """The service that answers for the chosen iteration (Try, maps)."""
        own = self._own
        return own if own is not None else self.service

    def predictor(self) -> Any:
        """The chosen iteration's predictor (None while the service still loads it, or without a run)."""
        return self.answering.predictor

    def state(self) -> dict[str, Any]:
        """The chosen and the published iteration, by name, and the version of this pair."""
        chosen = self.run_dir
        published = read_published(self.runs).get("current") if self.runs is not None else None
        return {"version": self.version,
                "chosen": chosen.name if chosen is not None else None,
                "chosen_path": str(chosen) if chosen is not None else None,
                "chosen_incomplete": incomplete_info(chosen) if chosen is not None else None,
                "published": published,
                "endpoint": self.endpoint_run.name if self.endpoint_run is not None else None,
                "runs": str(self.runs) if self.runs is not None else None}

    # -- switching -----------------------------------------------------------------------------------------------
    def start(self, run_dir: str | Path | None, predictor: Any | None) -> None:
        """At server start: ``run_dir`` chosen, ``predictor`` (its model, or the published one's) in the service."""
        self.endpoint_run = Path(predictor.bundle_dir).resolve().parent if predictor is not None else None
        if run_dir is not None:
            self._show(Path(run_dir).resolve())

    def _show(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.results = RunResults(run_dir, self.catalog)
        self.review = Review(run_dir, self.catalog) if self.catalog is not None else None
        self.label_next = LabelNext(run_dir, self.images_dir) if self.images_dir else None
        self.version += 1

    def need_runs(self) -> Path:
        """The runs folder; NotFound (reason ``no_runs``) for a UI without one."""
        if self.runs is None:
            raise NotFound("this UI has no runs folder; start it with `imgclf ui --run RUN_DIR`", reason="no_runs")
        return self.runs

    def select(self, name: str) -> dict[str, Any]:
        """Choose iteration ``name``: every page shows it and Try and the maps answer with it."""
        rd = check_iteration(self.need_runs(), name)
        with self._lock:
            if rd.root == self.run_dir:
                return self.state()
            if rd.root == self.endpoint_run:
                own, self._own = self._own, None
            else:
                pred = self._load(rd.root)
                own = None
                if self._own is None:
                    self._own = InferenceService(self.service.cfg, Metrics())
                self._own.install(pred)
            self._show(rd.root)
        if own is not None:
            _close_later(own)
        log.info("the UI now shows iteration %s", rd.root.name)
        return self.state()

    def publish(self, name: str) -> dict[str, Any]:
        """Publish iteration ``name``: the service's endpoints answer with it from now on, and the UI chooses it."""
        rd = check_iteration(self.need_runs(), name)
        with self._lock:
            pred = self._model_of(rd.root)
            record_publish(self.need_runs(), name)
            self._serve(rd.root, pred)
        return self.state()

    def rollback(self) -> dict[str, Any]:
        """Publish again the iteration published before the current one."""
        with self._lock:
            runs = self.need_runs()
            target = (runs / rollback_target(runs)).resolve()
            pred = self._model_of(target)
            record_rollback(runs)
            self._serve(target, pred)
        return self.state()

    def follow_published(self) -> None:
        """Serve the runs folder's published iteration if it is not the one served (another UI, or a script with
        :func:`imgclf.rundir.iterations.publish`, published it): checked on a thread of its own, one at a time,
        each time a page polls :meth:`state`."""
        if self.runs is None or self._following.locked():
            return
        target = published_run(self.runs)
        if target is None or target.resolve() == self.endpoint_run or target.resolve() == self._failed:
            return
        threading.Thread(target=self._follow, args=(target.resolve(),), name="imgclf-follow", daemon=True).start()

    def _follow(self, target: Path) -> None:
        with self._following:
            if target == self.endpoint_run:
                return
            try:
                with self._lock:
                    self._serve(target, self._model_of(target))
            except Exception as e:  # a broken bundle: keep answering with the model served, say why once
                self._failed = target
                log.error("the published iteration %s failed to load (%s); the endpoint still answers with %s",
                          target.name, e, self.endpoint_run.name if self.endpoint_run else "nothing")

    def _model_of(self, run_dir: Path) -> Any:
        """A predictor of ``run_dir``'s bundle: the chosen one's when it is that run, else loaded now."""
        if run_dir == self.run_dir and self.answering.predictor is not None:
            return self.answering.predictor
        return self._load(run_dir)

    def _serve(self, run_dir: Path, pred: Any) -> None:
        self.service.install(pred)
        self.endpoint_run = run_dir
        own, self._own = self._own, None  # the chosen model is the published one now: one model, one queue
        self._show(run_dir)
        if own is not None:
            _close_later(own)
        log.info("published iteration %s", run_dir.name)


def _close_later(service: InferenceService) -> None:
    """Close a service no longer chosen once its admitted requests are answered (on a thread: never blocks a request)."""
    threading.Thread(target=service.retire, name="imgclf-close", daemon=True).start()
