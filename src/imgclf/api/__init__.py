"""The library's front door.

    import imgclf
    clf = imgclf.ImageClassifier(preset="fast").fit("photos/")     # what `imgclf run` does
    clf.predict(["x.jpg"]); clf.predict_proba("x.jpg"); clf.evaluate("holdout/")
    imgclf.load("runs/photos/20261205-101500/model")                # any bundle a run wrote

and below it, what the command line calls: :func:`run` (a whole run with its run history) and
:func:`track`.
"""
from __future__ import annotations

import os

from ..config.settings import Config
from ..data.images import configure as configure_images
from ..evaluation.metrics import Metrics
from ..pipeline import steps
from ..rundir.layout import run_config


def track(cfg: Config, run_dir: str | os.PathLike, command: str) -> None:
    """Log the run directory to the run-history store when ``tracking.enabled`` (never fails the run)."""
    from ..tracking.store import log_run

    log_run(cfg, run_dir, command)


def run(cfg: Config, run_dir: str | os.PathLike, progress: bool = True) -> Metrics:
    """prepare → featurize → train → evaluate in one go, logged to the run history; returns the test metrics.

    ``cfg.images`` becomes the decoder's setting for this process (:func:`imgclf.data.images.configure`)."""
    configure_images(cfg.images)
    metrics = steps.run(cfg, run_dir, progress=progress)
    track(run_config(run_dir) or cfg, run_dir, "run")  # as run: with the featurizers a preset chose
    return metrics


from .classifier import ImageClassifier, load  # noqa: E402  (after run and track, which classifier.fit calls)

__all__ = ["ImageClassifier", "load", "run", "track"]
