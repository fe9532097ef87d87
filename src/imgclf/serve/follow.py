"""``imgclf serve RUNS``: serve a dataset's published iteration and follow every publish and rollback.

The runs folder's published.json (see :mod:`imgclf.rundir.iterations`) is read once a second; when it
names another iteration, that iteration's bundle is loaded beside the one serving (the service keeps
answering meanwhile) and swapped in with :meth:`InferenceService.install`: no restart, no failed
request. A bundle that fails to load is logged and the served model kept.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from ..rundir.iterations import published_run
from .service import InferenceService

log = logging.getLogger("imgclf.serve")
POLL_S = 1.0


class PublishedFollower:
    """A daemon thread that keeps ``service`` on the published iteration of ``runs``."""

    def __init__(self, runs: str | Path, service: InferenceService, load: Callable[[Path], Any], poll_s: float = POLL_S):
        self.runs = Path(runs)
        self.service = service
        self.load = load  # bundle folder → predictor
        self.poll_s = poll_s
        self.serving: Path | None = None  # the run whose model the service was given by this follower
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="imgclf-follow", daemon=True)

    def start(self, serving: Path | None) -> "PublishedFollower":
        self.serving = serving.resolve() if serving is not None else None
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def check(self) -> bool:
        """Swap in the published iteration if it is not the one served; whether it swapped."""
        try:
            target = published_run(self.runs)
        except Exception as e:  # an unreadable published.json: keep serving, say why
            log.warning("cannot read the published iteration of %s: %s", self.runs, e)
            return False
        if target is None or target.resolve() == self.serving:
            return False
        try:
            predictor = self.load(target / "model")
        except Exception as e:
            log.error("the published iteration %s failed to load (%s); still serving %s", target.name, e,
                      self.serving.name if self.serving else "nothing")
            self.serving = target.resolve()  # not retried until published.json names another iteration
            return False
        self.service.install(predictor)
        self.serving = target.resolve()
        log.info("now serving the published iteration %s", target.name)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check()
