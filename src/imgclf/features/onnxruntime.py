"""ONNX Runtime inference: the default CPU engine (fp32, or int8 from :mod:`imgclf.features.quantize`).

``export_onnx`` writes a featurizer network as ONNX (input ``input`` (B, 3, H, W), output
``features`` (B, D), dynamic batch). Exports of pretrained featurizers are cached under
``DATA_ROOT/engines/<feature id>.onnx`` so a re-run loads instead of re-exporting.
ONNX Runtime fuses BatchNorm, ReLU6 and padding into the convolutions, which is why it runs
several times faster than eager PyTorch on a CPU (lite0 at 224 px, 2 cores: 340 img/s vs 34 eager).
"""
from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..config import EngineConfig
from ..errors import ImgclfError
from ..fileio import atomic_path
from .backbones import DataSpec
from .engines import Engine, cpu_has_vnni, cpu_threads, register_engine
from .ids import FeatureId

INPUT_NAME = "input"
OUTPUT_NAME = "features"
OPSET = 17
SPEC_KEY = "imgclf.preprocessing"


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
    # features drift (cosine 0.89 vs fp32 measured on an AVX2 CPU); the precise kernels keep them
    # at 0.995. With VNNI the default kernels sum in 32 bits, and the precise ones would cost
    # 2.2x the speed (457 vs 206 img/s measured on an AVX-512 VNNI CPU).
    if not cpu_has_vnni():
        o.add_session_config_entry("session.x64quantprecision", "1")
    return o


class OnnxRuntimeEngine:
    """A featurizer ONNX file run by ONNX Runtime on the CPU."""

    def __init__(self, onnx_path: str | os.PathLike, spec: DataSpec, feature_id: FeatureId | str, *, threads: int = 0,
                 precision: str = "fp32", spinning: bool = False):
        import onnxruntime as ort

        self.onnx_path = Path(onnx_path)
        self.spec = spec
        self.feature_id = str(feature_id)
        self.precision = precision
        self.threads = cpu_threads(threads)
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), session_options(threads, spinning=spinning),
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for bad files
            raise ImgclfError(f"cannot load the ONNX featurizer {self.onnx_path}: {e}",
                              hint="re-run `imgclf train` to rewrite the model bundle") from None
        out = self.session.get_outputs()[0]
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = out.name
        self.dim = int(out.shape[-1])

    def run(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)  # (B, 3, H, W)
        return self.session.run([self.output_name], {self.input_name: x})[0]  # (B, D)


def _static_same_padding(module: Any, resolution: int) -> Any:
    """An fp32 CPU copy of ``module`` whose TF-style 'SAME' paddings are constants for ``resolution``².

    timm computes 'SAME' padding from the input size at run time; traced for ONNX, that becomes
    float shape arithmetic which static quantisation then quantises (wrong pads, garbage
    features). The input size is fixed per featurizer, so the pads can be too.
    """
    import torch
    import torch.nn.functional as F
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import pad_same_arg
    from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame

    base = {Conv2dSame: torch.nn.Conv2d, AvgPool2dSame: torch.nn.AvgPool2d, MaxPool2dSame: torch.nn.MaxPool2d}

    class _Padded(torch.nn.Module):
        def __init__(self, op: Any, pads: list[int], value: float):
            super().__init__()
            self.op, self.pads, self.value = op, [int(p) for p in pads], value

        def forward(self, x):  # the 'Same' classes are their base op with padding 0
            return base[type(self.op)].forward(self.op, F.pad(x, self.pads, value=self.value))

    module = copy.deepcopy(module).float().cpu().eval()  # the caller's network stays as it is (dtype, device)
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str) -> Any:
        def hook(_: Any, args: tuple) -> None:
            sizes[name] = tuple(args[0].shape[-2:])

        return hook

    hooks = [m.register_forward_pre_hook(record(n)) for n, m in module.named_modules() if type(m) in base]
    if not hooks:
        return module
    with torch.inference_mode():
        module(torch.zeros(1, 3, resolution, resolution))
    for h in hooks:
        h.remove()
    for name, (h, w) in sizes.items():
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name)
        op = getattr(parent, child)
        dilation = getattr(op, "dilation", (1, 1))
        pads = pad_same_arg([h, w], list(op.kernel_size), list(op.stride), list(dilation))
        setattr(parent, child, _Padded(op, pads, float("-inf") if isinstance(op, MaxPool2dSame) else 0.0))
    return module


def export_onnx(module: Any, spec: DataSpec, path: str | os.PathLike) -> Path:
    """Export a featurizer (``module(x (B,3,H,W)) -> (B, D)``) to ONNX at ``path``, atomically.

    Uses the TorchScript exporter: a few seconds and one self-contained file (the dynamo
    exporter takes ~20 s here and writes the weights to a side file). The caller's module
    is not modified.
    """
    import torch

    path = Path(path)
    net = _static_same_padding(module, spec.resolution)
    x = torch.zeros(2, 3, spec.resolution, spec.resolution)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(net, (x,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
        _set_spec(tmp, spec)
    del net
    _release_heap()
    return path


def _release_heap() -> None:
    """Hand the ~200 MB the exporter freed back to the OS (glibc keeps it otherwise), so the
    featurization that follows an export stays well under 1.5 GB of RSS."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


def _set_spec(path: Path, spec: DataSpec) -> None:
    """Record the preprocessing in the file's metadata: the export then describes its own input."""
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {SPEC_KEY: json.dumps(spec.to_dict())})
    onnx.save(model, str(path))


def onnx_spec(path: str | os.PathLike) -> DataSpec | None:
    """The preprocessing recorded in an export by :func:`export_onnx`, or None (absent, damaged, older file)."""
    import onnx

    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return DataSpec.from_dict(json.loads(props[SPEC_KEY]))
    except Exception:  # missing, damaged (protobuf errors), or written without the metadata
        return None


def cached_onnx(module: Any, spec: DataSpec, feature_id: FeatureId | str, cache_dir: str | os.PathLike) -> Path:
    """``cache_dir/<feature_id>.onnx``, exporting ``module`` only when it is absent or damaged."""
    path = Path(cache_dir) / f"{feature_id}.onnx"
    if onnx_spec(path) is not None:  # present, parseable and ours
        return path
    if module is None:
        raise ImgclfError(f"no exported featurizer {path} and no network to export it from",
                          hint="run `imgclf featurize` (or `imgclf run`) again")
    return export_onnx(module, spec, path)


@register_engine("onnxruntime")
def _onnxruntime_engine(module: Any, spec: DataSpec, feature_id: FeatureId | str, engine_cfg: EngineConfig, *,
                        onnx_path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                        calibration: Sequence[str] | None = None, **_: Any) -> Engine:
    """ORT engine from a bundle's ONNX file, or from ``module`` (exported, and cached in ``cache_dir``).

    ``engine.precision = "int8"`` quantises the fp32 export with ``calibration`` image paths;
    the feature id then gains the calibration digest (other images, other int8 model).
    Without ``cache_dir`` the export lives in a temp folder only until the session has loaded it.
    """
    threads = engine_cfg.threads
    feature_id = FeatureId.parse(str(feature_id))
    if onnx_path is not None:
        from .quantize import onnx_precision

        return OnnxRuntimeEngine(onnx_path, spec, feature_id, threads=threads, precision=onnx_precision(onnx_path))
    if engine_cfg.precision == "int8":
        from .quantize import cached_int8

        if not calibration:
            raise ImgclfError("engine.precision = 'int8' needs calibration images and none were given",
                              hint="featurize through `imgclf run`/`imgclf featurize`, which calibrate on the train split")
        with _export_dir(cache_dir) as d:
            fp32 = cached_onnx(module, spec, feature_id.with_precision("fp32"), d)
            path, fid = cached_int8(fp32, spec, feature_id, calibration, d, threads=threads)
            return OnnxRuntimeEngine(path, spec, fid, threads=threads, precision="int8")
    with _export_dir(cache_dir) as d:
        return OnnxRuntimeEngine(cached_onnx(module, spec, feature_id, d), spec, feature_id, threads=threads)


def _from_cache(feature_id: FeatureId, engine_cfg: EngineConfig, cache_dir: str | os.PathLike, **kw: Any) -> Engine | None:
    """The engine of the fp32 export of ``feature_id`` kept in ``cache_dir`` (quantised when asked), or None."""
    spec = onnx_spec(Path(cache_dir) / f"{feature_id.with_precision('fp32')}.onnx")
    return _onnxruntime_engine(None, spec, feature_id, engine_cfg, cache_dir=cache_dir, **kw) if spec is not None else None


_onnxruntime_engine.from_cache = _from_cache  # type: ignore[attr-defined]


@contextlib.contextmanager
def _export_dir(cache_dir: str | os.PathLike | None) -> Iterator[Path]:
    """``cache_dir`` when given, else a temp folder removed once the session has loaded the file."""
    if cache_dir is not None:
        yield Path(cache_dir)
        return
    with tempfile.TemporaryDirectory(prefix="imgclf-onnx-") as d:
        yield Path(d)
