"""Keeping the images the service is asked about (``serve.keep_inputs``), off the answer's path.

Once a request is answered, :meth:`InferenceService.classify` hands its images' bytes, already in
memory, to :meth:`Keeper.offer`, which only appends them to a bounded queue (:data:`QUEUE_IMAGES`
images, :data:`QUEUE_BYTES` bytes): when it is full the image is dropped and counted, never waited
for. One worker thread then, per image: hashes it (SHA-256); an image kept before only has its count
raised; a new one is dropped when ``serve.keep_rate_per_min`` new images were kept in the last minute
or when it alone is larger than the quota, else checked by the safe decoder and written with the
service's answer by :class:`imgclf.data.kept.KeptStore`, which then deletes the oldest kept images
beyond ``serve.keep_quota_mb``. The record (kept.csv) is saved when the queue runs empty, at least
every :data:`FLUSH_S` seconds while it does not, and at shutdown.

Requests refused before they reach a route (token, Host check, body limit) never get here, nor do
``/explain`` and images the server read from files (the web UI's own dataset images).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config.settings import ServeConfig
from ..data.dataset import POOL_DIR, pool_folder
from ..data.kept import INDEX, KeptStore
from ..util.errors import ConfigError, ImageError
from ..util.files import sha256_bytes
from .metrics import Metrics

log = logging.getLogger("imgclf.serve")

QUEUE_IMAGES = 64  # images waiting to be kept at most
QUEUE_BYTES = 64 << 20  # and their bytes at most: the memory a burst of large requests may hold here
FLUSH_S = 1.0  # kept.csv is saved at least this often while images keep coming
_WINDOW_S = 60.0  # the rate cap counts the images kept in the last minute


@dataclass(frozen=True)
class KeepPlace:
    """Where kept images go: ``folder``, and the images folder it lies in (``dataset``, whose annotations say
    which kept images were labelled since), None when it lies in no dataset."""

    folder: Path
    dataset: Path | None = None


def keep_place(cfg: ServeConfig, images: str | os.PathLike | None = None, pool: str = "") -> KeepPlace:
    """``serve.keep_dir`` when set, else the pool folder ``pool`` (``data.pool``) of the dataset folder ``images``
    (created if missing); ConfigError when neither says where."""
    images = Path(images).resolve() if images is not None else None
    if cfg.keep_dir:
        folder = Path(cfg.keep_dir).resolve()
        return KeepPlace(folder, images if images is not None and folder.is_relative_to(images) else None)
    if images is None or not images.is_dir():
        where = f"the model's dataset folder {images} does not exist here" if images is not None else \
            "the model's dataset is not known (the bundle is not inside a run directory)"
        raise ConfigError(f"serve.keep_inputs is on but serve.keep_dir is not set, and {where}",
                          hint='set serve.keep_dir to the folder the kept images should go to, e.g. --set serve.keep_dir="kept"')
    (images / (pool or POOL_DIR)).mkdir(parents=True, exist_ok=True)
    return KeepPlace(pool_folder(images, pool), images)


class RateCap:
    """At most ``per_min`` takes in any 60 s (0: no limit)."""

    def __init__(self, per_min: int):
        self.per_min = per_min
        self._times: deque[float] = deque()

    def take(self, now: float) -> bool:
        if not self.per_min:
            return True
        while self._times and now - self._times[0] >= _WINDOW_S:
            self._times.popleft()
        if len(self._times) >= self.per_min:
            return False
        self._times.append(now)
        return True


@dataclass(frozen=True)
class _Asked:
    data: bytes
    proba: np.ndarray  # (K,) the answered probabilities
    ood: float | None
    compute: Any  # the Compute that answered: its answer() rule gives the label, "unknown" or "uncertain"
    when: float  # time.time() of the answer


class Keeper:
    """The bounded queue and the one worker thread that keep answered images (see the module docstring)."""

    def __init__(self, place: KeepPlace, cfg: ServeConfig, metrics: Metrics):
        self.store = KeptStore(place.folder, int(cfg.keep_quota_mb * 1024 * 1024), place.dataset).open()
        self.metrics = metrics
        self._rate = RateCap(cfg.keep_rate_per_min)
        self._queue: deque[_Asked] = deque()
        self._queued_bytes = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="imgclf-keep", daemon=True)
        metrics.kept_bytes.set(self.store.used_bytes)
        log.info("keeping the images asked about in %s (%d kept, %.1f of %.1f MB)", place.folder, len(self.store.images),
                 self.store.used_bytes / 2**20, cfg.keep_quota_mb)

    def start(self) -> "Keeper":
        self._thread.start()
        return self

    def offer(self, images: Sequence[object], proba: np.ndarray, ood: np.ndarray | None, compute: Any) -> None:
        """Queue the answered images given as bytes; never blocks (a full queue drops and counts the image)."""
        now = time.time()
        for i, data in enumerate(images):
            if not isinstance(data, bytes):
                continue
            with self._wake:
                if self._stopping or len(self._queue) >= QUEUE_IMAGES or self._queued_bytes + len(data) > QUEUE_BYTES:
                    self.metrics.keep_dropped.labels("queue_full").inc()
                    continue
                self._queue.append(_Asked(data, proba[i], None if ood is None else float(ood[i]), compute, now))
                self._queued_bytes += len(data)
                self._wake.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Keep what is queued (within ``timeout``), save the record and stop the worker."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.store.close()

    def _next(self) -> _Asked | None:
        """The next queued image, waiting at most FLUSH_S; None when there is none (or stopping with none left)."""
        with self._wake:
            if not self._queue and not self._stopping:
                self._wake.wait(FLUSH_S)
            if not self._queue:
                return None
            item = self._queue.popleft()
            self._queued_bytes -= len(item.data)
            return item

    def _work(self) -> None:
        last_flush = time.monotonic()
        while True:
            item = self._next()
            if item is not None:
                self._keep(item)
            now = time.monotonic()
            idle = not self._queue
            if self.store.dirty and (idle or now - last_flush >= FLUSH_S):
                self._flush()
                last_flush = now
            if idle and self._stopping:
                return

    def _keep(self, item: _Asked) -> None:
        store, m = self.store, self.metrics
        if store.asked_again(sha256_bytes(item.data), item.when):
            m.kept_repeats.inc()
            return
        if len(item.data) > store.quota_bytes:
            m.keep_dropped.labels("over_quota").inc()
            return
        if not self._rate.take(time.monotonic()):
            m.keep_dropped.labels("rate").inc()
            return
        try:
            store.add(item.data, item.compute.answer(item.proba, item.ood), item.when)
            m.kept.inc()
            m.kept_evicted.inc(len(store.evict()))
        except ImageError as e:
            m.keep_dropped.labels("unusable").inc()
            log.info("an answered image was not kept: %s", e)
        except OSError as e:  # a full disk or a folder that became read-only: the service answers on
            m.keep_dropped.labels("write_failed").inc()
            log.warning("could not keep an image in %s: %s", store.folder, e)
        m.kept_bytes.set(store.used_bytes)

    def _flush(self) -> None:
        try:
            self.store.flush()
        except OSError as e:
            log.warning("could not save %s: %s", self.store.folder / INDEX, e)
