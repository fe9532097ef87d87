"""Load a model bundle once and classify images: files, bytes or decoded images.

The same :class:`Predictor` serves ``imgclf predict``, the REST service and the web UI.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .bundle import Bundle, load_bundle
from .config import EngineConfig
from .dataset import walk_images
from .errors import ImageError
from .explain import Explainer, Explanation
from .features.featurize import featurize_paths
from .features.preprocess import load_and_preprocess
from .images import is_image_file


class Predictor:
    """A verified bundle plus its inference engine, loaded once."""

    def __init__(self, bundle_dir: str | os.PathLike, engine_cfg: EngineConfig | None = None, **engine_kw: Any):
        self.bundle: Bundle = load_bundle(bundle_dir)
        self.engine_cfg = engine_cfg or EngineConfig(**self.bundle.meta.engine)
        self.engine = self.bundle.build_engine(self.engine_cfg, **engine_kw)
        self.labels = self.bundle.labels
        self.spec = self.bundle.spec
        self.explainer = Explainer(self.engine, self.bundle.head, self.labels, self.spec)

    def explain(self, source: bytes | str | os.PathLike, classes: Sequence[str] = ()) -> Explanation:
        """Class activation maps of one image for its predicted class and ``classes`` (see :mod:`imgclf.explain`)."""
        return self.explainer.explain(source, classes)

    def proba_from_features(self, features: np.ndarray) -> np.ndarray:
        return self.bundle.head.predict_proba(features)

    def prepare(self, source: bytes | str | os.PathLike) -> np.ndarray:
        """Decode (safely) and preprocess one image → (3, H, W); raises ImageError."""
        return load_and_preprocess(source, self.spec)

    def predict_arrays(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N, K) of preprocessed inputs, one engine call."""
        if not len(inputs):
            return np.zeros((0, len(self.labels)))
        return self.proba_from_features(self.engine.run(np.stack(inputs)))

    def result(self, proba_row: np.ndarray, **extra: Any) -> dict[str, Any]:
        """The JSON shape of one prediction: label, score and every class's score."""
        i = int(np.argmax(proba_row))
        return {**extra, "label": self.labels[i], "score": round(float(proba_row[i]), 6),
                "scores": {n: round(float(p), 6) for n, p in zip(self.labels, proba_row)}}

    def predict_bytes(self, items: Sequence[bytes]) -> list[dict[str, Any] | ImageError]:
        """One result (or the ImageError) per image; bad images don't spoil the batch."""
        t0 = time.perf_counter()
        prepared: list[np.ndarray | ImageError] = []
        for data in items:
            try:
                prepared.append(self.prepare(data))
            except ImageError as e:
                prepared.append(e)
        good = [x for x in prepared if not isinstance(x, ImageError)]
        proba = iter(self.predict_arrays(good))
        ms = round((time.perf_counter() - t0) * 1000, 3)
        return [x if isinstance(x, ImageError) else self.result(next(proba), executionTimeMs=ms) for x in prepared]

    def predict_paths(self, paths: Iterable[str | os.PathLike], batch_size: int = 32, progress: bool = False) -> list[dict[str, Any]]:
        """One dict per path: ``{"path", "label", "score", "scores"}`` or ``{"path", "error"}``."""
        paths = [str(p) for p in paths]
        res = featurize_paths(paths, self.engine, batch_size=batch_size, progress=progress, desc="predict")
        proba = self.proba_from_features(res.features)
        errors = dict(res.errors)
        return [self.result(proba[i], path=p) if res.ok[i] else {"path": p, "error": errors.get(p, "unreadable")}
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
            out.append(str(p))  # reported as unreadable by predict_paths
    return out
