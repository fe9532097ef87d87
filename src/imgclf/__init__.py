"""imgclf: transfer-learning image classifiers, offline on a CPU.

The public API: :class:`ImageClassifier` (fit / predict / predict_proba / evaluate / explain / doctor /
suggest / leaderboard / save) and :func:`load`; below them :func:`load_config`, :func:`run`,
:class:`Predictor`, :func:`load_bundle` (imported on first use, so ``import imgclf`` stays cheap); ``imgclf.ray``:
predict inside a user's own Ray pipeline (the extra ``imgclf[ray]``, see :mod:`imgclf.scale.datasets`).
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["ImageClassifier", "load", "load_config", "run", "Predictor", "load_bundle"]

_API = {"ImageClassifier": "imgclf.api", "load": "imgclf.api", "load_config": "imgclf.config.settings", "run": "imgclf.api", "Predictor": "imgclf.inference.predict", "load_bundle": "imgclf.bundle.folder"}
_MODULES = {"ray": "imgclf.scale.datasets"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'imgclf' has no attribute {name!r}")
