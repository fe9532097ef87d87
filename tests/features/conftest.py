"""The pretrained featurizer exported once for every engine test of this folder."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from datagen import build_once
from features_helpers import _generated

from imgclf.features.backbones import create_backbone
from imgclf.features.export import export_onnx
from imgclf.features.preprocess import normalize
from imgclf.features.quantize import quantize_int8


@pytest.fixture(scope="session")
def lite0(tmp_path_factory):
    """The pretrained featurizer, its fp32 export and an int8 model calibrated on 16 generated images (the two
    files made once for the whole test run)."""
    module, spec = create_backbone("efficientnet_lite0", 224, pretrained=True)

    def build(d: Path) -> None:
        d.mkdir(parents=True)
        t0 = time.perf_counter()
        fp32 = export_onnx(module, spec, d / "fp32.onnx")
        (d / "export_s.json").write_text(json.dumps(time.perf_counter() - t0))
        quantize_int8(fp32, d / "int8.onnx", normalize(_generated(spec, 16, seed=10), spec))

    d = build_once(tmp_path_factory, "lite0_onnx", build)
    return {"module": module, "spec": spec, "fp32": d / "fp32.onnx", "int8": d / "int8.onnx", "dir": d,
            "export_s": json.loads((d / "export_s.json").read_text())}
