"""The featurizer(s) of a run: where their caches live, int8 calibration images, their ONNX files for the bundle.

A run has one featurizer (``model.backbone`` at ``model.resolution``) and, when ``model.featurizers``
names more, those too: their L2-normalised features are concatenated in that order.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ..config.settings import Config, EngineConfig, ModelConfig, parse_featurizer
from ..rundir.layout import RunDir
from ..util.errors import RunDirError
from .engines import Engine, FileEngine
from .featurize import build_featurizer
from .ids import FeatureId


def feature_cache_dir(cfg: Config) -> Path | None:
    """``DATA_ROOT/features``: features cached by (featurizer, file content), or None when caching is off."""
    return Path(cfg.data.root) / "features" if cfg.featurize.cache else None


def engine_cache_dir(cfg: Config) -> Path:
    """Where exported (and quantised) featurizer ONNX files are kept between runs."""
    return Path(cfg.data.root) / "engines"


def calibration_paths(cfg: Config, rd: RunDir) -> list[str]:
    """``engine.calibration_images`` train images for int8, drawn by ``data.seed`` (same draw every time)."""
    train = sorted(r.path for r in rd.split_rows("train"))
    n = min(cfg.engine.calibration_images, len(train))
    pick = np.random.default_rng(cfg.data.seed).choice(len(train), size=n, replace=False)
    return [train[i] for i in sorted(pick)]


def engine_kw(cfg: Config, rd: RunDir) -> dict[str, Any]:
    """Keyword arguments of ``build_featurizer`` for this run: the engine cache, int8 calibration images."""
    kw: dict[str, Any] = {"cache_dir": engine_cache_dir(cfg)}
    if cfg.engine.precision == "int8":
        kw["calibration"] = calibration_paths(cfg, rd)
    return kw


def featurizer_models(model: ModelConfig) -> list[ModelConfig]:
    """``model`` itself, then one ModelConfig per ``model.featurizers`` entry (same weights and resampler)."""
    extra = [dataclasses.replace(model, backbone=name, resolution=res, featurizers=[])
             for name, res in map(parse_featurizer, model.featurizers)]
    return [model, *extra]


def run_featurizer(cfg: Config, rd: RunDir, engine_cfg: EngineConfig | None = None, model: ModelConfig | None = None) -> Engine:
    """The pretrained featurizer of ``model`` (default ``cfg.model``) on ``engine_cfg`` (default ``cfg.engine``)."""
    return build_featurizer(model or cfg.model, engine_cfg or cfg.engine, **engine_kw(cfg, rd))


def run_featurizers(cfg: Config, rd: RunDir, engine_cfg: EngineConfig | None = None) -> list[Engine]:
    """Every featurizer of the run (:func:`featurizer_models`), in the order their features are concatenated."""
    return [run_featurizer(cfg, rd, engine_cfg, m) for m in featurizer_models(cfg.model)]


def quantization_meta(cfg: Config, rd: RunDir) -> dict[str, Any]:
    """What bundle.json records of an int8 featurizer calibrated for this run."""
    from .quantize import calibration_digest, quantization_info

    cal = calibration_paths(cfg, rd)
    return quantization_info(len(cal), calibration_digest(cal))


def featurizer_onnx(cfg: Config, rd: RunDir, feature_id: FeatureId, model: ModelConfig | None = None,
                    name: str = "featurizer.onnx") -> tuple[Path, dict[str, Any]]:
    """The ONNX file of the featurizer of ``model`` (default ``cfg.model``) that made ``feature_id``
    features, and what bundle.json says of it (``name``: its file name in the bundle).

    Taken from the engine cache (featurize put it there), else exported (and quantised) again;
    the SVM is trained on the features of this very file, so int8 bundles are judged honestly.
    """
    from .export import OPSET

    int8 = feature_id.precision == "int8"
    onnx_id = feature_id if int8 else feature_id.with_precision("fp32")  # bf16 is how the fp32 file is run
    path = engine_cache_dir(cfg) / f"{onnx_id}.onnx"
    if not path.is_file():
        ecfg = EngineConfig(backend="onnxruntime", precision="int8" if int8 else "fp32", threads=cfg.engine.threads)
        engine: FileEngine = run_featurizer(cfg, rd, ecfg, model)  # onnxruntime runs the exported file
        if engine.feature_id != str(onnx_id):
            raise RunDirError(f"features.npz was made by featurizer {feature_id} but the config now gives {engine.feature_id}",
                              hint=f"run `imgclf featurize --run-dir {rd.root}` again")
        path = engine.onnx_path
    info: dict[str, Any] = {"onnx": name, "precision": feature_id.precision, "onnx_opset": OPSET}
    if feature_id.precision == "int8":
        info["quantization"] = quantization_meta(cfg, rd)
    return path, info
