"""ONNX Runtime inference of a featurizer's ONNX export (:mod:`.export`), fp32 or int8 (:mod:`.quantize`).

ONNX Runtime fuses BatchNorm, ReLU6 and padding into the convolutions, which is why it runs
several times faster than eager PyTorch on a CPU.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..config.settings import EngineConfig
from ..util.errors import ImgclfError, ModelFileError
from .backbones import DataSpec
from .engines import Engine, OnnxFileEngine, cpu_has_vnni, cpu_threads, register_engine
from .export import cached_onnx, export_dir, onnx_spec
from .ids import FeatureId
from .preprocess import network_input


def session_options(threads: int = 0, *, spinning: bool = False) -> Any:
    """ORT options: ``threads`` intra-op threads (0 = all cores), sequential, all graph optimisations.

    Spinning is off by default: decode threads share the cores with inference, and a worker
    that busy-waits between operators steals the core a decoder could use.
    """
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = cpu_threads(threads)
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.log_severity_level = 3  # warnings about unused initializers are noise to a user
    o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    # Without VNNI, ORT's default u8s8 kernels (AVX2 vpmaddubsw) saturate 16-bit sums and int8
    # features drift from fp32's; the precise kernels keep them close. With VNNI the default
    # kernels sum in 32 bits, and the precise ones would only cost speed.
    if not cpu_has_vnni():
        o.add_session_config_entry("session.x64quantprecision", "1")
    return o


class OnnxRuntimeEngine(OnnxFileEngine):
    """A featurizer ONNX file run by ONNX Runtime on the CPU."""

    def __init__(self, onnx_path: str | os.PathLike, spec: DataSpec, feature_id: FeatureId | str, *, threads: int = 0,
                 precision: str = "fp32", spinning: bool = False, model: bytes | None = None):
        import onnxruntime as ort

        super().__init__(onnx_path, spec, feature_id, threads=threads, precision=precision, model=model)
        try:
            self.session = ort.InferenceSession(model if model is not None else str(self.onnx_path),
                                                session_options(threads, spinning=spinning),
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for bad files
            detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelFileError(f"cannot load the ONNX featurizer {self.onnx_path}: {detail}",
                                 hint="re-run `imgclf train` to rewrite the model bundle", detail=detail) from None
        out = self.session.get_outputs()[0]
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = out.name
        self.dim = int(out.shape[-1])

    def run(self, batch: np.ndarray) -> np.ndarray:
        x = network_input(batch, self.spec)  # (B, 3, H, W)
        return self.session.run([self.output_name], {self.input_name: x})[0]  # (B, D)

    def _map_runner(self, model: bytes) -> Callable[[np.ndarray], np.ndarray]:
        import onnxruntime as ort

        from .export import FEATURE_MAP_NAME

        session = ort.InferenceSession(model, session_options(self.threads), providers=["CPUExecutionProvider"])
        return lambda x: session.run([FEATURE_MAP_NAME], {self.input_name: x})[0]  # (B, D, h, w)


@register_engine("onnxruntime")
def _onnxruntime_engine(module: Any, spec: DataSpec, feature_id: FeatureId | str, engine_cfg: EngineConfig, *,
                        onnx_path: str | os.PathLike | None = None, onnx_model: bytes | None = None,
                        cache_dir: str | os.PathLike | None = None, calibration: Sequence[str] | None = None,
                        **_: Any) -> Engine:
    """ORT engine from a bundle's ONNX file (``onnx_model``: its content, read by the caller), or from ``module``
    (exported, and cached in ``cache_dir``).

    ``engine.precision = "int8"`` quantises the fp32 export with ``calibration`` image paths;
    the feature id then gains the calibration digest (other images, other int8 model).
    Without ``cache_dir`` the export lives in a temp folder only until the session has loaded it.
    """
    threads = engine_cfg.threads
    feature_id = FeatureId.parse(str(feature_id))
    if onnx_path is not None:
        from .quantize import onnx_precision

        source = onnx_model if onnx_model is not None else onnx_path
        return OnnxRuntimeEngine(onnx_path, spec, feature_id, threads=threads, precision=onnx_precision(source), model=onnx_model)
    if engine_cfg.precision == "int8":
        from .quantize import cached_int8

        if not calibration:
            raise ImgclfError("engine.precision = 'int8' needs calibration images and none were given",
                              hint="featurize through `imgclf run`/`imgclf featurize`, which calibrate on the train split")
        with export_dir(cache_dir) as d:
            fp32 = cached_onnx(module, spec, feature_id.with_precision("fp32"), d)
            path, fid = cached_int8(fp32, spec, feature_id, calibration, d, threads=threads)
            return OnnxRuntimeEngine(path, spec, fid, threads=threads, precision="int8")
    with export_dir(cache_dir) as d:
        return OnnxRuntimeEngine(cached_onnx(module, spec, feature_id, d), spec, feature_id, threads=threads)


def _from_cache(feature_id: FeatureId, engine_cfg: EngineConfig, cache_dir: str | os.PathLike, **kw: Any) -> Engine | None:
    """The engine of the fp32 export of ``feature_id`` kept in ``cache_dir`` (quantised when asked), or None."""
    spec = onnx_spec(Path(cache_dir) / f"{feature_id.with_precision('fp32')}.onnx")
    return _onnxruntime_engine(None, spec, feature_id, engine_cfg, cache_dir=cache_dir, **kw) if spec is not None else None


_onnxruntime_engine.from_cache = _from_cache  # type: ignore[attr-defined]
