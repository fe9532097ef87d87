"""Inference engines: turn a batch of preprocessed images into pooled features.

An engine is built from a featurizer network (a timm module) and its :class:`DataSpec`. Every
engine has ``feature_id`` (the feature-cache key, a :class:`FeatureId` string: same id, same
features), ``dim``, ``spec`` and ``run(batch) -> (B, D) float32``, where ``batch`` is either uint8
crops (B, H, W, 3) from :func:`~imgclf.features.preprocess.load_and_crop` (what featurize and predict
pass) or the float network input (B, 3, H, W) already normalised; an engine normalises crops itself
(:func:`~imgclf.features.preprocess.network_input`). The engines
here also have ``run_maps(batch) -> (B, D, h, w)``: the last feature map, whose spatial mean is
``run``'s output (what class activation maps decompose); only explaining calls it.

Engines are plug-ins: ``engine.backend = NAME`` builds the engine registered as NAME in
``imgclf.util.registry.ENGINES`` (``onnxruntime`` in :mod:`imgclf.features.onnxruntime`, ``torch`` here).
A builder is ``(module, spec, feature_id, engine_cfg, **kw) -> Engine``, given an ``engine_cfg``
resolved by :func:`resolve_engine` (a concrete backend and precision). Optional attributes:
``resolve(engine_cfg) -> EngineConfig`` (the backend's own choice for ``precision = "auto"``, or a
fallback backend), ``from_cache(feature_id, engine_cfg, cache_dir, **kw) -> Engine | None`` (load a
featurizer exported earlier without the network).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import threading
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from ..config.settings import EngineConfig
from ..util.errors import NotExplainable
from ..util.registry import ENGINES
from .backbones import DataSpec
from .ids import FeatureId
from .preprocess import is_crops, network_input


class Engine(Protocol):
    """What featurize, predict, serve and the trainers use of an engine."""

    feature_id: str  # the feature-cache key: same id, same features
    dim: int  # features per image
    spec: DataSpec  # the preprocessing its input went through

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(B, D) float32 features of crops (B, H, W, 3) uint8 or network input (B, 3, H, W) float32."""
        ...


@runtime_checkable
class MapEngine(Engine, Protocol):
    """An engine explaining can use (every engine here): its last feature map too."""

    def run_maps(self, batch: np.ndarray) -> np.ndarray:
        """(B, D, h, w) last feature map of ``batch``, whose spatial mean is :meth:`run`'s output."""
        ...


class FileEngine(Engine, Protocol):
    """An engine running an exported ONNX file (what a bundle ships)."""

    onnx_path: Path


def cpu_threads(requested: int = 0) -> int:
    """Compute threads to use: ``requested`` or every core this process may run on."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``avx512_vnni``, ...) from /proc/cpuinfo; empty where unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_vnni() -> bool:
    """True when the CPU has 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_has_bf16() -> bool:
    """True when the CPU has bf16 arithmetic (AVX-512 BF16 or AMX), where bf16 inference pays."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


class OnnxFileEngine:
    """What an engine that runs a featurizer's ONNX file knows of it (OpenVINO and ONNX Runtime alike)."""

    def __init__(self, onnx_path: str | os.PathLike, spec: DataSpec, feature_id: FeatureId | str, *, threads: int = 0,
                 precision: str = "fp32", model: bytes | None = None):
        self.onnx_path = Path(onnx_path)
        self.model = model  # the file's content, when the caller read (and verified) it: the file is then never read
        self.spec = spec
        self.feature_id = str(feature_id)
        self.precision = precision
        self.threads = cpu_threads(threads)
        self._maps: Callable[[np.ndarray], np.ndarray] | None = None  # built on the first run_maps
        self._maps_lock = threading.Lock()

    def run_maps(self, batch: np.ndarray) -> np.ndarray:
        """The last feature map (B, D, h, w) of ``batch``, whose spatial mean is :meth:`run`'s (B, D).

        Runs the same model with a second output (:func:`~imgclf.features.export.with_feature_map`),
        loaded on first use beside the featurizing one, which stays untouched; calls are serialised.
        """
        from .export import with_feature_map

        x = network_input(batch, self.spec)  # (B, 3, H, W)
        with self._maps_lock:
            if self._maps is None:
                self._maps = self._map_runner(with_feature_map(self.model if self.model is not None else self.onnx_path))
            return self._maps(x)

    def _map_runner(self, model: bytes) -> Callable[[np.ndarray], np.ndarray]:
        """A function (B, 3, H, W) → the ``feature_map`` output of the serialised ONNX ``model``."""
        raise NotImplementedError


class TorchEngine:
    """PyTorch inference: fp32 channels_last on CPU (bf16 autocast optional), AMP on CUDA."""

    def __init__(self, module: Any, spec: DataSpec, feature_id: FeatureId | str, *, threads: int = 0, device: str = "cpu", bf16: bool = False):
        import torch

        self.spec = spec
        self.feature_id = str(feature_id)
        self.device = torch.device(device)
        self.bf16 = bf16
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(threads))
        self.module = module.eval().to(self.device, memory_format=torch.channels_last)
        self.dim = int(module.num_features)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(self.module, batch)  # (B, D)

    def run_maps(self, batch: np.ndarray) -> np.ndarray:
        """The last feature map (B, D, h, w): timm's ``forward_features``, which its average pool reduces to :meth:`run`'s."""
        pool = getattr(getattr(self.module, "global_pool", None), "pool_type", None)
        if not hasattr(self.module, "forward_features") or pool != "avg":
            raise NotExplainable(f"{type(self.module).__name__} does not average-pool one feature map (pool: {pool})",
                                 hint="class activation maps need a CNN featurizer with global average pooling")
        y = self._forward(self.module.forward_features, batch)
        if y.ndim != 4:
            raise NotExplainable(f"{type(self.module).__name__} gives features of shape {y.shape[1:]}, not a (D, h, w) map",
                                 hint="class activation maps need a CNN featurizer, not a transformer's tokens")
        return y

    def _forward(self, fn: Callable[[Any], Any], batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(network_input(batch, self.spec)).to(self.device)
        x = x.contiguous(memory_format=torch.channels_last)  # (B, 3, H, W)
        with torch.inference_mode():
            if self.bf16 or self.device.type == "cuda":
                dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
                with torch.autocast(self.device.type, dtype=dtype):
                    y = fn(x)
            else:
                y = fn(x)
        return y.float().cpu().numpy()


EngineBuilder = Callable[..., Engine]
register_engine = ENGINES.register


@register_engine("torch")
def _torch_engine(module: Any, spec: DataSpec, feature_id: FeatureId | str, engine_cfg: EngineConfig, **_: Any) -> Engine:
    return TorchEngine(module, spec, str(feature_id), threads=engine_cfg.threads, bf16=engine_cfg.precision == "bf16")


def resolve_engine(engine_cfg: EngineConfig) -> EngineConfig:
    """``engine_cfg`` with a concrete backend and precision: what will really run, and what the run
    records. ``precision = "auto"`` is fp32 unless the backend says otherwise (OpenVINO: bf16 on CPUs
    with bf16 instructions); a backend that cannot run here may hand over to another."""
    resolve = getattr(ENGINES.lookup(engine_cfg.backend), "resolve", None)
    if resolve is not None:
        return resolve(engine_cfg)
    return dataclasses.replace(engine_cfg, precision="fp32") if engine_cfg.precision == "auto" else engine_cfg


def build_engine(module: Any, spec: DataSpec, feature_id: FeatureId | str, engine_cfg: EngineConfig, **kw: Any) -> Engine:
    """Build the engine ``engine_cfg.backend`` for ``module``; unknown names list the valid ones."""
    engine_cfg = resolve_engine(engine_cfg)
    return ENGINES.lookup(engine_cfg.backend)(module, spec, feature_id, engine_cfg, **kw)


def engine_from_cache(feature_id: FeatureId, engine_cfg: EngineConfig, cache_dir: str | os.PathLike, **kw: Any) -> Engine | None:
    """The engine of a pretrained featurizer exported earlier into ``cache_dir``, or None when the
    backend keeps no such exports or this one is not there (then the network must be built)."""
    engine_cfg = resolve_engine(engine_cfg)
    from_cache = getattr(ENGINES.lookup(engine_cfg.backend), "from_cache", None)
    return from_cache(feature_id, engine_cfg, cache_dir, **kw) if from_cache is not None else None


def flip_id(feature_id: FeatureId | str) -> str:
    """The feature id of ``feature_id``'s featurizer averaged over each image and its mirror image (``.flip``
    after its weights): those features are cached apart from the plain ones."""
    f = FeatureId.parse(str(feature_id))
    return str(dataclasses.replace(f, weights=f"{f.weights}.flip"))


class FlipAveraged:
    """Horizontal-flip test-time augmentation: an engine whose features are the mean of the input's and of
    its mirror image's (the crop reversed left to right: the centre crop of the mirrored image). For a
    linear head on unnormalised features that is the mean of the two decision values. Both go through
    the wrapped engine as one batch of twice the size."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.spec, self.dim = engine.spec, engine.dim
        self.feature_id = flip_id(engine.feature_id)

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        width = 2 if is_crops(batch) else 3  # crops (B, H, W, 3) or (B, 3, H, W)
        both = np.concatenate([batch, np.flip(batch, axis=width)])
        out = self.engine.run(both)
        return (out[: len(batch)] + out[len(batch):]) / 2
