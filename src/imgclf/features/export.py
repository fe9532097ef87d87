"""A featurizer network as ONNX: the file every inference engine reads, and a bundle carries.

``export_onnx`` writes a featurizer network as ONNX (input ``input`` (B, 3, H, W), output
``features`` (B, D), dynamic batch), with its preprocessing in the file's metadata. Exports of
pretrained featurizers are cached under ``DATA_ROOT/engines/<feature id>.onnx`` so a re-run
loads instead of re-exporting.

:func:`with_feature_map` gives the same network with a second output, ``feature_map`` (B, D, h, w):
the last feature map, whose global average is ``features``. Only class activation maps ask for it;
the file on disk, and so every engine that featurizes and every feature id, stay as they are.
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
from typing import Any, Iterator

from ..util.errors import ImgclfError, NotExplainable
from ..util.files import atomic_path
from .backbones import DataSpec
from .ids import FeatureId

INPUT_NAME = "input"
OUTPUT_NAME = "features"
FEATURE_MAP_NAME = "feature_map"
OPSET = 17
SPEC_KEY = "imgclf.preprocessing"


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

    Uses the TorchScript exporter: faster than the dynamo exporter, and one self-contained file
    (the dynamo exporter writes the weights to a side file). The caller's module
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
    found = onnx_featurizer(path)
    return found[0] if found is not None else None


def onnx_featurizer(path: str | os.PathLike) -> tuple[DataSpec, int] | None:
    """(preprocessing, feature width) of an export by :func:`export_onnx`, read from the file alone (no
    network is built, torch is not imported), or None (absent, damaged, older file, width not static).

    OpenVINO reads it where it runs (the whole file is parsed, so a damaged one is None; its import is a
    fifth of the onnx package's, which pulls in ml_dtypes), once per version of the file, as the engine then
    uses it (:func:`~imgclf.features.ovcore.read_model`); else the onnx package.
    """
    from .ovcore import openvino_problem, read_model

    try:
        if not openvino_problem():
            model = read_model(path)
            if not model.has_rt_info(["framework", SPEC_KEY]):
                return None
            spec = DataSpec.from_dict(json.loads(model.get_rt_info(["framework", SPEC_KEY]).astype(str)))
            width = model.output(0).get_partial_shape()[1]
            dim = width.get_length() if width.is_static else 0
        else:
            import onnx

            proto = onnx.load(str(path), load_external_data=False)
            spec = DataSpec.from_dict(json.loads({p.key: p.value for p in proto.metadata_props}[SPEC_KEY]))
            dim = int(proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value)
    except Exception:  # missing, damaged (parse errors), or written without the metadata
        return None
    return (spec, dim) if dim > 0 else None


# Operators between the global pool and the ``features`` output that keep each value where it is
# (an int8 export quantises and dequantises around the pool).
_PASS_THROUGH = ("Flatten", "Reshape", "Squeeze", "Identity", "QuantizeLinear", "DequantizeLinear")


def _pooled_map(graph: Any) -> str:
    """Name of the 4-D tensor whose global average pool is the graph's first output."""
    producer = {out: node for node in graph.node for out in node.output}
    name, seen = graph.output[0].name, []
    while name in producer:
        node = producer[name]
        seen.append(node.op_type)
        if node.op_type == "GlobalAveragePool":
            return node.input[0]
        if node.op_type == "ReduceMean":
            axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
            if axes in ([2, 3], [-2, -1]):
                return node.input[0]
            break
        if node.op_type not in _PASS_THROUGH:
            break
        name = node.input[0]
    raise NotExplainable(f"class activation maps need a model on a single CNN featurizer, and this featurizer's output is "
                         f"not the global average of one feature map (ops from the output: {', '.join(seen) or 'none'})",
                         hint="class activation maps need a model on a single CNN featurizer that average-pools its last "
                              "feature map (not several featurizers concatenated)")


def with_feature_map(path: str | os.PathLike | bytes) -> bytes:
    """The ONNX model at ``path`` (or its content) with a second output :data:`FEATURE_MAP_NAME` (B, D, h, w), serialised.

    Raises :class:`NotExplainable` when ``features`` is not the global average of one 4-D map.
    """
    import onnx

    model = onnx.load_model_from_string(path) if isinstance(path, bytes) else onnx.load(str(path))
    graph = model.graph
    source = _pooled_map(graph)
    graph.node.append(onnx.helper.make_node("Identity", [source], [FEATURE_MAP_NAME], name="imgclf_feature_map"))
    graph.output.append(onnx.helper.make_tensor_value_info(FEATURE_MAP_NAME, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()


def cached_onnx(module: Any, spec: DataSpec, feature_id: FeatureId | str, cache_dir: str | os.PathLike) -> Path:
    """``cache_dir/<feature_id>.onnx``, exporting ``module`` only when it is absent or damaged."""
    path = Path(cache_dir) / f"{feature_id}.onnx"
    if onnx_spec(path) is not None:  # present, parseable and ours
        return path
    if module is None:
        raise ImgclfError(f"no exported featurizer {path} and no network to export it from",
                          hint="run `imgclf featurize` (or `imgclf run`) again")
    return export_onnx(module, spec, path)


@contextlib.contextmanager
def export_dir(cache_dir: str | os.PathLike | None) -> Iterator[Path]:
    """``cache_dir`` when given, else a temp folder removed once the engine has loaded the file."""
    if cache_dir is not None:
        yield Path(cache_dir)
        return
    with tempfile.TemporaryDirectory(prefix="imgclf-onnx-") as d:
        yield Path(d)
