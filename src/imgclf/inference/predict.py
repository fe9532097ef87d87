"""Load a model bundle once and classify images: files, bytes or decoded images.

The same :class:`Predictor` serves ``imgclf predict``, the REST service and the web UI.

Trust is a post-step on (features, probabilities): the bundle's unknown-image detector scores the
features (``ood_score``, higher = less like the training images) and :meth:`Compute.answer` answers
``"unknown"`` above the threshold that accepts ``predict.unknown_tpr`` of the train images
(``predict.reject_unknown``), or ``"uncertain"`` when the top calibrated score is below
``predict.min_confidence``; ``nearest_label`` then keeps the best known class. A bundle without a
detector answers as before.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..bundle.folder import Bundle, load_bundle
from ..config.settings import EngineConfig, PredictConfig
from ..data.dataset import walk_images
from ..data.images import is_image_file
from ..features.featurize import featurize_many
from ..rundir.state import bundle_run_incomplete
from ..util.errors import ImageError
from .compute import Compute
from .explain import Explainer, Explanation


class Predictor:
    """A verified bundle and its inference engines, loaded once: :meth:`predict`, :meth:`predict_proba` and
    :meth:`explain`. What a server batches (decode, rows of probabilities and OOD score, the answer of a row)
    is its :attr:`compute` (:class:`imgclf.inference.compute.Compute`)."""

    def __init__(self, bundle_dir: str | os.PathLike, engine_cfg: EngineConfig | None = None,
                 predict_cfg: PredictConfig | None = None, **engine_kw: Any):
        self.bundle: Bundle = load_bundle(bundle_dir)
        self.bundle_dir = Path(bundle_dir)
        self.engine_cfg = engine_cfg or EngineConfig(**self.bundle.meta.engine)
        self.predict_cfg = predict_cfg or PredictConfig()
        self.compute = Compute(self.bundle, self.bundle.build_engines(self.engine_cfg, **engine_kw), self.predict_cfg)
        self.labels = self.bundle.labels
        self.explainer = Explainer(self.compute.engines[0], self.bundle.head, self.labels, self.bundle.spec)

    @property
    def run_incomplete(self) -> dict[str, Any] | None:
        """When the bundle is the model/ of a run that is incomplete, what is wrong and how to fix it (read anew
        on each call, see :mod:`imgclf.rundir.state`); else None."""
        return bundle_run_incomplete(self.bundle_dir)

    def predict(self, inputs: Iterable[str | os.PathLike | bytes], *, batch_size: int = 32,
                progress: bool = False) -> list[dict[str, Any]]:
        """One answer per image (files, decoded in threads and batched, or bytes): ``label`` (a class,
        ``"unknown"`` or ``"uncertain"``), ``score``, ``scores`` and, with a detector, ``ood_score``,
        ``unknown``, ``nearest_label``; files carry their ``path``. An unreadable image gives
        ``{"error": reason}`` (and its ``path``) without spoiling the others.

        >>> Predictor("runs/pets/model").predict(["cat.jpg"])[0]["label"]      # doctest: +SKIP
        'cat'
        """
        items = list(inputs)
        paths = [str(x) for x in items if not isinstance(x, (bytes, bytearray, memoryview))]
        by_path = dict(zip(paths, self._paths(paths, batch_size, progress))) if paths else {}
        blobs = [bytes(x) for x in items if isinstance(x, (bytes, bytearray, memoryview))]
        by_blob = iter(self._bytes(blobs))
        return [next(by_blob) if isinstance(x, (bytes, bytearray, memoryview)) else by_path[str(x)] for x in items]

    def predict_proba(self, inputs: Iterable[str | os.PathLike | bytes], *, batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities (N, K) in the order of :attr:`labels`; a row of NaN for an unreadable image."""
        out = self.predict(inputs, batch_size=batch_size)
        return np.array([[r["scores"][c] for c in self.labels] if "scores" in r else [np.nan] * len(self.labels)
                         for r in out], dtype=np.float64).reshape(len(out), len(self.labels))

    def explain(self, source: bytes | str | os.PathLike, classes: Sequence[str] = ()) -> Explanation:
        """Class activation maps of one image for its top class and ``classes`` (see :mod:`imgclf.inference.explain`),
        with predict's answer for it (``"unknown"`` where predict says so)."""
        e = self.explainer.explain(source, classes)
        e.prediction = self.compute.answer(e.proba, float(self.compute.ood(e.features[None])[0]))
        return e

    def _bytes(self, items: Sequence[bytes]) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        prepared: list[Any] = []
        for data in items:
            try:
                prepared.append(self.compute.prepare(data))
            except ImageError as e:
                prepared.append(e)
        rows = iter(self.compute.rows([x for x in prepared if not isinstance(x, ImageError)]))
        ms = round((time.perf_counter() - t0) * 1000, 3)
        return [{"error": str(x), "reason": x.reason} if isinstance(x, ImageError)
                else self.compute.answer_row(next(rows), executionTimeMs=ms) for x in prepared]

    def _paths(self, paths: list[str], batch_size: int, progress: bool) -> list[dict[str, Any]]:
        res = featurize_many(paths, self.compute.engines, batch_size=batch_size, progress=progress, desc="predict")
        rows = self.compute.rows_of(res.features)
        errors = dict(res.errors)
        return [self.compute.answer_row(rows[i], path=p) if res.ok[i] else {"path": p, "error": errors.get(p, "unreadable")}
                for i, p in enumerate(paths)]


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Files as given, folders expanded to the images inside (sorted, recursive)."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(str(f) for f in walk_images(p))
        elif p.exists() or is_image_file(p):
            out.append(str(p))
        else:
            out.append(str(p))  # reported as unreadable by Predictor.predict
    return out
