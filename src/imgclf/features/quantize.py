"""Static int8 quantisation of a featurizer ONNX file, calibrated on the user's own images.

QDQ format, per-channel int8 weights, uint8 activations, MinMax ranges: ONNX Runtime then runs
the convolutions as integer kernels, faster than fp32 with features close to fp32's (figures:
BENCHMARKS.md).
Dynamic quantisation is not offered: on this network it is slower than fp32 and inaccurate.
"""
from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..util.errors import ImageError, ImgclfError
from ..util.files import atomic_path, sha256_bytes
from .backbones import DataSpec
from .engines import cpu_threads
from .ids import FeatureId
from .preprocess import load_and_preprocess

#: What an int8 model is; part of the calibration digest, so changing it invalidates caches.
SCHEME = {"format": "QDQ", "weights": "int8 per-channel", "activations": "uint8", "calibration": "minmax", "version": 1}
_CALIBRATION_BATCH = 2  # images per calibration pass: the calibrator's memory grows ~110 MB per image (ranges don't depend on it)


def calibration_digest(paths: Sequence[str]) -> str:
    """SHA-256 of the calibration images' bytes (in order) and the quantisation scheme."""
    parts = [repr(sorted(SCHEME.items()))]
    for p in paths:
        try:
            parts.append(sha256_bytes(Path(p).read_bytes()))
        except OSError:
            parts.append(f"unreadable:{p}")
    return sha256_bytes("\n".join(parts).encode())


def load_calibration(paths: Sequence[str], spec: DataSpec, threads: int = 0) -> np.ndarray:
    """Preprocessed calibration inputs (N, 3, H, W); undecodable images are left out."""

    def one(p: str) -> np.ndarray | None:
        try:
            return load_and_preprocess(p, spec)
        except (ImageError, OSError):
            return None

    with ThreadPoolExecutor(cpu_threads(threads)) as pool:
        arrays = [a for a in pool.map(one, paths) if a is not None]
    if not arrays:
        raise ImgclfError(f"none of the {len(paths)} calibration images could be decoded",
                          hint="check the train split (skipped.csv) or use engine.precision = 'fp32'")
    return np.stack(arrays)


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike, inputs: np.ndarray) -> Path:
    """Quantise ``fp32_path`` statically with calibration ``inputs`` (N, 3, H, W) → ``out_path`` (atomic)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        """Feeds the calibration inputs in small batches, which bounds the calibrator's memory."""

        def __init__(self, name: str):
            self.batches = (inputs[i : i + _CALIBRATION_BATCH] for i in range(0, len(inputs), _CALIBRATION_BATCH))
            self.name = name

        def get_next(self) -> dict[str, np.ndarray] | None:
            b = next(self.batches, None)
            return None if b is None else {self.name: np.ascontiguousarray(b)}

    ort.set_default_logger_severity(3)
    input_name = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    reader = Reader(input_name)
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="imgclf-quant-") as d:
        pre = Path(d) / "pre.onnx"
        # folds the constant padding subgraphs and infers shapes, as ORT advises before quantising
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        with atomic_path(out_path) as tmp:
            quantize_static(str(pre), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
    return out_path


def cached_int8(fp32_path: str | os.PathLike, spec: DataSpec, feature_id: FeatureId, calibration: Sequence[str],
                cache_dir: str | os.PathLike, threads: int = 0) -> tuple[Path, FeatureId]:
    """(int8 ONNX path, its feature id): ``cache_dir/<feature id with the calibration digest>.onnx``, made if absent."""
    fid = feature_id.calibrated(calibration_digest(calibration))
    path = Path(cache_dir) / f"{fid}.onnx"
    if not path.is_file():
        quantize_int8(fp32_path, path, load_calibration(calibration, spec, threads))
    return path, fid


_QUANTIZED_OPS = ("QuantizeLinear", "QLinearConv")


def onnx_precision(path: str | os.PathLike | bytes) -> str:
    """"int8" when the ONNX graph (a file, or its content) holds quantisation nodes, else "fp32".

    A node's operator is stored as its name's bytes, so content without those names is fp32 without being
    parsed (``import onnx`` costs more than half a second of CPU in every process that loads a bundle).
    """
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    if not any(op.encode() in data for op in _QUANTIZED_OPS):
        return "fp32"
    import onnx

    model = onnx.load_model_from_string(data)
    return "int8" if any(n.op_type in _QUANTIZED_OPS for n in model.graph.node) else "fp32"


def quantization_info(n_images: int, digest: str) -> dict[str, Any]:
    """What bundle.json records about an int8 featurizer."""
    return {**SCHEME, "calibration_images": n_images, "calibration_digest": digest}
