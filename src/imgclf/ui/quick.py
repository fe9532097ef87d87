"""The UI's Quick update: after labels changed on any page, the chosen iteration's head refit on the current
labels as a draft iteration, scored by cross-validation on train (:mod:`imgclf.labelnext.quick` does the work;
Label next's Refit calls the same function).

    GET  /ui/api/quick-update   how the current labels differ from the chosen iteration's, and its train figures
    POST /ui/api/quick-update   the draft made: its run directory, name, cross-validated figures, the parent's

The router takes the chosen iteration as a getter (``run_dir``), so whoever holds it may switch it at any time.
A draft is logged to the run history (MLflow) in the background when the iteration's config tracks runs.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter

from ..labelnext.quick import cv_figures, is_draft, label_changes, quick_update
from ..rundir.layout import RunDir
from ..util.errors import BundleError, DatasetError, InvalidRequest, NotFound, RunDirError

log = logging.getLogger(__name__)

#: What the answer of a quick update keeps of the draft's metrics.json.
SUMMARY_KEYS = ("run", "name", "labels", "n_train", "n_test_unscored", "cv_folds", "cv_accuracy", "cv_class_avg_accuracy",
                "cv_per_class_recall", "parent", "changes", "left_out", "wall_seconds")


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """What the UI shows of a draft (the result of :func:`imgclf.labelnext.quick.quick_update`)."""
    return {k: result[k] for k in SUMMARY_KEYS if k in result}


def make_draft(run_dir: str | os.PathLike, images_dir: str | os.PathLike) -> dict[str, Any]:
    """A draft of iteration ``run_dir`` on the current labels of ``images_dir``, tracked (when its config says so)
    in the background; refusals of the run or the dataset become refused requests (4xx), never a failure."""
    try:
        result = quick_update(run_dir, images_dir)
    except DatasetError as e:
        raise InvalidRequest(f"{e.message}; {e.hint}" if e.hint else e.message, reason=e.reason) from None
    except (RunDirError, BundleError) as e:
        raise NotFound(f"{e.message}; {e.hint}" if e.hint else e.message, reason=e.reason) from None
    _track(Path(result["run"]))
    return summary(result)


def _track(draft: Path) -> None:
    """Log the draft to the run history in a thread (MLflow is slow to load; tracking never costs the answer)."""
    cfg = RunDir(draft).saved_config()
    if cfg is None or not cfg.tracking.enabled:
        return
    from ..tracking.store import log_run

    threading.Thread(target=log_run, args=(cfg, draft, "quick-update"), name="track-draft", daemon=True).start()


def _warm_up() -> None:
    """Import what a quick update fits with (scikit-learn, joblib: a second or more on a first use), so that the
    click that follows the bar's appearance pays only for the work."""
    import joblib  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.svm  # noqa: F401


class QuickUpdate:
    """The quick update of the chosen iteration (``run_dir()``) over the dataset folder ``images_dir``."""

    def __init__(self, run_dir: Callable[[], str | os.PathLike | None], images_dir: str | os.PathLike | None):
        self.run_dir = run_dir
        self.images = Path(images_dir).resolve() if images_dir else None
        self._lock = threading.Lock()  # one draft at a time
        self._warm: threading.Thread | None = None

    def _needed(self) -> tuple[Path, Path]:
        run = self.run_dir()
        if run is None or self.images is None:
            raise NotFound("the quick update needs an iteration and its dataset; start the UI with "
                           "`imgclf ui --images DIR --run RUN_DIR`", reason="no_run")
        return Path(run).resolve(), self.images

    def status(self) -> dict[str, Any]:
        """The chosen iteration, how many labels changed since it was made, and its cross-validated train figures."""
        run, images = self._needed()
        try:
            changes = label_changes(run, images)
            figures = cv_figures(run)
        except DatasetError as e:
            raise InvalidRequest(e.message, reason=e.reason) from None
        except (RunDirError, BundleError) as e:
            raise NotFound(e.message, reason=e.reason) from None
        if changes.total and self._warm is None:  # the bar will offer a quick update: load its libraries meanwhile
            self._warm = threading.Thread(target=_warm_up, name="quick-update-warm-up", daemon=True)
            self._warm.start()
        return {"run": str(run), "name": run.name, "draft": is_draft(run), "changes": changes.to_dict(), **figures}

    def update(self) -> dict[str, Any]:
        """Make the draft (one at a time)."""
        run, images = self._needed()
        with self._lock:
            return make_draft(run, images)


def build_quick_router(run_dir: Callable[[], str | os.PathLike | None], images_dir: str | os.PathLike | None) -> APIRouter:
    """The Quick update routes over the iteration ``run_dir()`` names now and the dataset folder ``images_dir``."""
    quick = QuickUpdate(run_dir, images_dir)
    r = APIRouter()

    @r.get("/ui/api/quick-update")
    def quick_status() -> dict[str, Any]:
        """How the current labels differ from the chosen iteration's (``changes.total`` > 0: a quick update has work)."""
        return quick.status()

    @r.post("/ui/api/quick-update")
    def quick_post() -> dict[str, Any]:
        """Refit the chosen iteration's head on the current labels → a draft iteration, scored by cross-validation on train."""
        return quick.update()

    return r
