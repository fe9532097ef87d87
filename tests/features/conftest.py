"""The pretrained featurizer exported once for every engine test of this folder."""
from __future__ import annotations

import time

import pytest
from features_helpers import _generated

from imgclf.features.backbones import create_backbone
from imgclf.features.export import export_onnx
from imgclf.features.preprocess import normalize
from imgclf.features.quantize import quantize_int8


@pytest.fixture(scope="session")
def lite0(tmp_path_factory):
    """The pretrained featurizer, its fp32 export and an int8 model calibrated on 16 generated images."""
    d = tmp_path_factory.mktemp("onnx")
    module, spec = create_backbone("efficientnet_lite0", 224, pretrained=True)
    t0 = time.perf_counter()
    fp32 = export_onnx(module, spec, d / "fp32.onnx")
    export_s = time.perf_counter() - t0
    int8 = quantize_int8(fp32, d / "int8.onnx", normalize(_generated(spec, 16, seed=10), spec))
    return {"module": module, "spec": spec, "fp32": fp32, "int8": int8, "dir": d, "export_s": export_s}
