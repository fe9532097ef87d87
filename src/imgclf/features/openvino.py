"""OpenVINO Runtime inference of a featurizer's ONNX export: the default engine on x86 CPUs.

OpenVINO reads the ONNX file directly (no conversion step) and runs it in bf16 on CPUs with
bf16 instructions (AVX512_BF16 or AMX, :func:`~imgclf.features.engines.cpu_has_bf16`), faster than
ONNX Runtime in fp32 with features close to fp32's; it also runs the QDQ int8 file of
:mod:`.quantize` faster than ONNX Runtime does (figures: BENCHMARKS.md). Where OpenVINO
cannot load, :func:`~imgclf.features.ovcore.openvino_problem` says why and the engine falls back to ONNX Runtime with a
one-line notice.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import logging
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..config.settings import EngineConfig
from ..util.errors import ImgclfError, ModelFileError
from .backbones import DataSpec
from .engines import Engine, OnnxFileEngine, cpu_has_bf16, register_engine
from .export import cached_onnx, export_dir, onnx_spec
from .ids import FeatureId
from .ovcore import openvino_problem, ov_core, read_model
from .preprocess import is_crops

log = logging.getLogger(__name__)

_MAX_STATIC = 2  # batch sizes compiled with a static shape (each costs a compile and some memory once)
_STREAM_MIN = 16  # crops per stream from which a batch is split over streams (featurize's 32; not a server's micro-batches of <= 16)
_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}  # int8: the layers left in float run in bf16


class OpenVinoEngine(OnnxFileEngine):
    """A featurizer ONNX file compiled by OpenVINO for the CPU, at one inference precision.

    Crops (B, H, W, 3) uint8 run on a copy of the network that takes them as they are: OpenVINO's
    preprocessing (to float, mean, scale, NHWC → NCHW) is compiled into it, so the decode threads
    neither normalise nor copy float tensors. Float input (B, 3, H, W) runs on the plain network
    (compiled on first use: explaining and tests).

    Latency: one dynamic-batch model on all threads; the first two batch sizes met more than once
    also get a model compiled for that static shape (faster for batch 1, the serving latency case);
    capping them keeps a server's memory flat whatever sizes its micro-batches take. Throughput:
    a batch of at least ``_STREAM_MIN`` crops per stream is split over ``engine.streams``
    single-threaded streams (default one per thread; a second dynamic-batch model), which keeps all
    cores busy where one stream's threads wait on each other. A server's micro-batches (<= 16) stay
    on one stream, where splitting them was slower.
    """

    def __init__(self, onnx_path: str | os.PathLike, spec: DataSpec, feature_id: FeatureId | str, *, threads: int = 0,
                 precision: str = "fp32", streams: int = 0, model: bytes | None = None):
        super().__init__(onnx_path, spec, feature_id, threads=threads, precision=precision, model=model)
        try:
            self._model = ov_core().read_model(io.BytesIO(model)) if model is not None else read_model(self.onnx_path)
        except Exception as e:  # OpenVINO raises its own exception types for bad files
            # OpenVINO's text runs from where it was raised to why: "Exception from ...", "Check ... failed", the reason
            detail = ([line for line in str(e).strip().splitlines() if line.strip()] or [type(e).__name__])[-1]
            raise ModelFileError(f"cannot load the ONNX featurizer {self.onnx_path} in OpenVINO: {detail}",
                                 hint="re-run `imgclf train` to rewrite the model bundle", detail=detail) from None
        self.dim = int(self._model.output(0).get_partial_shape()[-1].get_length())
        self._crops = self._with_crop_input(self._model)
        self._compiled: dict[tuple[str, int], Any] = {("crops", -1): self._compile(self._crops, -1)}  # (input, batch; -1 dynamic) → model
        self.streams = min(streams, self.threads) if streams > 0 else self.threads  # streams a large batch is split over (1: never split)
        self._streams: Any = None  # (AsyncInferQueue, results) of the throughput model, built on the first large batch
        self._seen: Counter[int] = Counter()
        self._lock = threading.Lock()

    def _with_crop_input(self, model: Any) -> Any:
        """``model`` taking uint8 crops (B, H, W, 3): :func:`~imgclf.features.preprocess.normalize` compiled in."""
        from openvino import Layout, Type
        from openvino.preprocess import PrePostProcessor

        ppp = PrePostProcessor(model.clone())
        ppp.input().tensor().set_element_type(Type.u8).set_layout(Layout("NHWC"))
        ppp.input().model().set_layout(Layout("NCHW"))
        mean = [float(m) * 255.0 for m in self.spec.mean]
        std = [float(v) * 255.0 for v in self.spec.std]
        ppp.input().preprocess().convert_element_type(Type.f32).mean(mean).scale(std)
        return ppp.build()

    def _compile(self, model: Any, batch: int, streams: int = 0) -> Any:
        r = self.spec.resolution
        model = model.clone()
        crops = model.input(0).get_element_type().get_type_name() == "u8"
        model.reshape({0: [batch, r, r, 3] if crops else [batch, 3, r, r]})
        return ov_core().compile_model(model, "CPU", self._config(streams))

    def _config(self, streams: int = 0) -> dict[str, Any]:
        """The CPU plugin's settings: this precision on all threads, one latency stream or ``streams`` of them."""
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _HINT[self.precision], "INFERENCE_NUM_THREADS": self.threads}
        if streams:
            return {**config, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams}
        return {**config, "PERFORMANCE_HINT": "LATENCY"}

    def _for_batch(self, n: int, kind: str) -> Any:
        with self._lock:
            if kind == "float":
                if (kind, -1) not in self._compiled:
                    self._compiled[(kind, -1)] = self._compile(self._model, -1)
                return self._compiled[(kind, -1)]
            self._seen[n] += 1
            static = [k for k in self._compiled if k[0] == "crops" and k[1] > 0]
            if ("crops", n) not in self._compiled and self._seen[n] > 1 and len(static) < _MAX_STATIC:
                self._compiled[("crops", n)] = self._compile(self._crops, n)
            return self._compiled.get(("crops", n), self._compiled[("crops", -1)])

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        if not is_crops(batch):
            x = np.ascontiguousarray(batch, dtype=np.float32)  # (B, 3, H, W), normalised
            return np.asarray(self._for_batch(len(x), "float")(x)[0], dtype=np.float32)
        x = np.ascontiguousarray(batch)  # (B, H, W, 3) uint8 crops
        if self.streams > 1 and len(x) >= _STREAM_MIN * self.streams:
            return self._run_streams(x)
        return np.asarray(self._for_batch(len(x), "crops")(x)[0], dtype=np.float32)  # (B, D)

    def _run_streams(self, x: np.ndarray) -> np.ndarray:
        """``x`` split in one chunk per stream, each run on its own single-threaded stream → (B, D)."""
        import openvino as ov

        with self._lock:
            if self._streams is None:
                compiled = self._compile(self._crops, -1, streams=self.streams)
                queue = ov.AsyncInferQueue(compiled, self.streams)
                results: dict[int, np.ndarray] = {}
                queue.set_callback(lambda request, k: results.__setitem__(k, request.get_output_tensor(0).data.copy()))
                self._streams = (queue, results)
            queue, results = self._streams
            results.clear()
            bounds = np.linspace(0, len(x), self.streams + 1).astype(int)
            for k in range(self.streams):
                queue.start_async({0: x[bounds[k]:bounds[k + 1]]}, k)
            queue.wait_all()
            return np.concatenate([results[k] for k in range(self.streams)]).astype(np.float32, copy=False)

    def _map_runner(self, model: bytes) -> Callable[[np.ndarray], np.ndarray]:
        from .export import FEATURE_MAP_NAME

        compiled = ov_core().compile_model(ov_core().read_model(io.BytesIO(model)), "CPU", self._config())
        out = compiled.output(FEATURE_MAP_NAME)
        return lambda x: np.asarray(compiled(x)[out], dtype=np.float32)  # (B, D, h, w)


@register_engine("openvino")
def _openvino_engine(module: Any, spec: DataSpec, feature_id: FeatureId | str, engine_cfg: EngineConfig, *,
                     onnx_path: str | os.PathLike | None = None, onnx_model: bytes | None = None,
                     cache_dir: str | os.PathLike | None = None, calibration: Sequence[str] | None = None, **_: Any) -> Engine:
    """OpenVINO engine from a bundle's ONNX file (``onnx_model``: its content, read by the caller), or from
    ``module`` (exported, and cached in ``cache_dir``).

    ``engine_cfg.precision`` is a resolved precision (see :func:`imgclf.features.engines.resolve_engine`):
    fp32 or bf16 run the fp32 export; int8 runs the QDQ file calibrated on ``calibration`` images
    (the same file ONNX Runtime would run).
    """
    threads = engine_cfg.threads
    feature_id = FeatureId.parse(str(feature_id))
    if onnx_path is not None:
        from .quantize import onnx_precision

        precision = "int8" if onnx_precision(onnx_model if onnx_model is not None else onnx_path) == "int8" else engine_cfg.precision
        return OpenVinoEngine(onnx_path, spec, feature_id, threads=threads, precision=precision, streams=engine_cfg.streams,
                              model=onnx_model)
    with export_dir(cache_dir) as d:
        fp32 = cached_onnx(module, spec, feature_id.with_precision("fp32"), d)
        if engine_cfg.precision != "int8":
            return OpenVinoEngine(fp32, spec, feature_id, threads=threads, precision=engine_cfg.precision, streams=engine_cfg.streams)
        from .quantize import cached_int8

        if not calibration:
            raise ImgclfError("engine.precision = 'int8' needs calibration images and none were given",
                              hint="featurize through `imgclf run`/`imgclf featurize`, which calibrate on the train split")
        path, fid = cached_int8(fp32, spec, feature_id.with_precision("int8"), calibration, d, threads=threads)
        return OpenVinoEngine(path, spec, fid, threads=threads, precision="int8", streams=engine_cfg.streams)


def _from_cache(feature_id: FeatureId, engine_cfg: EngineConfig, cache_dir: str | os.PathLike, **kw: Any) -> Engine | None:
    """The engine of the fp32 export of ``feature_id`` kept in ``cache_dir`` (quantised when asked), or None."""
    spec = onnx_spec(Path(cache_dir) / f"{feature_id.with_precision('fp32')}.onnx")
    return _openvino_engine(None, spec, feature_id, engine_cfg, cache_dir=cache_dir, **kw) if spec is not None else None


_openvino_engine.from_cache = _from_cache  # type: ignore[attr-defined]


def _resolve(engine_cfg: EngineConfig) -> EngineConfig:
    """bf16 for ``precision = "auto"`` on CPUs with bf16 instructions; ONNX Runtime (one notice) where
    OpenVINO cannot run."""
    problem = openvino_problem()
    if problem:
        _notice_once(problem)
        precision = "fp32" if engine_cfg.precision in ("auto", "bf16") else engine_cfg.precision
        return dataclasses.replace(engine_cfg, backend="onnxruntime", precision=precision)
    if engine_cfg.precision == "auto":
        return dataclasses.replace(engine_cfg, precision="bf16" if cpu_has_bf16() else "fp32")
    return engine_cfg


_openvino_engine.resolve = _resolve  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=1)
def _notice_once(problem: str) -> None:
    log.warning("notice: OpenVINO cannot run here (%s); using ONNX Runtime instead", problem)
