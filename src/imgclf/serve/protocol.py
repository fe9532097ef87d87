"""Request and response shapes: ``/predict``, the 2017 sample's ``/score`` and the Open Inference
Protocol (KServe v2 REST), plus the base64 decoding they share.

``/score`` keeps the sample's contract so its client works unchanged: request
``{"input_df": [{"image base64 string": "<b64>"}]}``, answer
``{"label", "score", "allScores", "Id2Labels", "executionTimeMs"}`` (a list of such objects
when several images are sent). ``allScores`` lists the class scores in id order and
``Id2Labels`` maps each id (as a string) to its label. Added, for models with an unknown-image
detector: ``unknown`` (bool) and ``oodScore``; ``label`` is then "unknown" (or "uncertain") as
:meth:`imgclf.inference.compute.Compute.answer` decides, on every route.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..util.errors import InvalidRequest

INPUT_NAME = "image"
OUTPUT_PROBA = "probabilities"
OUTPUT_LABEL = "label"
OUTPUT_OOD = "ood_score"
MODEL_VERSION = "1"


class Prediction(BaseModel):
    filename: str | None = None
    label: str
    score: float
    scores: dict[str, float]
    executionTimeMs: float = Field(description="Server time for the request: decode, queue and inference")
    ood_score: float | None = Field(None, description="Out-of-distribution score: higher = less like the training images")
    unknown: bool | None = Field(None, description="The OOD score is above the model's threshold")
    nearest_label: str | None = Field(None, description="The best known class when label is 'unknown' or 'uncertain'")


class PredictResponse(BaseModel):
    model: str
    iteration: str | None = None  # the run whose bundle answered (its folder name), when the bundle is a run's
    predictions: list[Prediction]
    executionTimeMs: float


class ScoreRow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    image: str = Field(alias="image base64 string", description="A base64-encoded image file",
                       json_schema_extra={"format": "byte"})


class ScoreRequest(BaseModel):
    input_df: list[ScoreRow] = Field(min_length=1)


class ScoreResult(BaseModel):
    label: str
    score: float
    allScores: list[float]
    Id2Labels: dict[str, str]
    executionTimeMs: float
    unknown: bool = False
    oodScore: float | None = None


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = {}


class InferInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutput]
    parameters: dict[str, Any] = {}


def decode_base64(text: str, what: str) -> bytes:
    """Strict base64 (a ``data:...;base64,`` prefix is allowed) → bytes; InvalidRequest otherwise."""
    if not isinstance(text, str):
        raise InvalidRequest(f"{what} must be a base64 string; got {type(text).__name__}", reason="invalid_base64")
    if text.startswith("data:") and "," in text[:200]:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidRequest(f"{what} is not valid base64 ({e}); encode the image file with base64",
                             reason="invalid_base64") from None
    if not data:
        raise InvalidRequest(f"{what} is empty; send a base64-encoded image file", reason="empty")
    return data


def infer_images(req: InferRequest) -> list[bytes]:
    """The image files of an OIP infer request: one BYTES input of shape [n] (or [n, 1])."""
    if len(req.inputs) != 1:
        raise InvalidRequest(f"expected exactly one input ({INPUT_NAME!r}, BYTES); got {len(req.inputs)}",
                             reason="invalid_input")
    inp = req.inputs[0]
    if inp.datatype != "BYTES":
        raise InvalidRequest(f"input {inp.name!r} must have datatype BYTES (base64 images); got {inp.datatype!r}",
                             reason="invalid_input")
    data = inp.data
    if data and all(isinstance(x, list) and len(x) == 1 for x in data):  # shape [n, 1] sent nested
        data = [x[0] for x in data]
    n = len(data)
    if n == 0 or inp.shape not in ([n], [n, 1]):
        raise InvalidRequest(f"input {inp.name!r} has shape {inp.shape} but {n} data items; "
                             f"use shape [{max(n, 1)}] with one base64 image per item", reason="invalid_input")
    return [decode_base64(x, f"input {inp.name!r} item {i}") for i, x in enumerate(data)]


def infer_response(model_name: str, req: InferRequest, proba: np.ndarray, labels: list[str],
                   results: list[dict[str, Any]] | None = None) -> InferResponse:
    """FP32 probabilities [n, k], the answered labels [n] ("unknown" / "uncertain" included) and, for a
    model with an unknown-image detector, FP32 OOD scores [n]; filtered by ``req.outputs``."""
    n, k = proba.shape
    answered = [r["label"] for r in results] if results is not None else [labels[int(i)] for i in proba.argmax(axis=1)]
    outputs = {
        OUTPUT_PROBA: InferOutput(name=OUTPUT_PROBA, shape=[n, k], datatype="FP32",
                                  data=[float(v) for v in proba.astype(np.float32).ravel()]),
        OUTPUT_LABEL: InferOutput(name=OUTPUT_LABEL, shape=[n], datatype="BYTES", data=answered),
    }
    if results and all("ood_score" in r for r in results):
        outputs[OUTPUT_OOD] = InferOutput(name=OUTPUT_OOD, shape=[n], datatype="FP32", data=[float(r["ood_score"]) for r in results])
    wanted = [o.name for o in req.outputs] if req.outputs else list(outputs)
    unknown = [w for w in wanted if w not in outputs]
    if unknown:
        raise InvalidRequest(f"unknown output {unknown[0]!r}; this model has outputs {', '.join(outputs)}",
                             reason="invalid_output")
    return InferResponse(model_name=model_name, model_version=MODEL_VERSION, id=req.id,
                         outputs=[outputs[w] for w in wanted], parameters={"labels": labels})


def model_metadata(model_name: str, labels: list[str], platform: str, ood: bool = False) -> ModelMetadata:
    k = len(labels)
    extra = [TensorMetadata(name=OUTPUT_OOD, datatype="FP32", shape=[-1])] if ood else []
    return ModelMetadata(
        name=model_name, versions=[MODEL_VERSION], platform=platform,
        inputs=[TensorMetadata(name=INPUT_NAME, datatype="BYTES", shape=[-1])],
        outputs=[TensorMetadata(name=OUTPUT_PROBA, datatype="FP32", shape=[-1, k]),
                 TensorMetadata(name=OUTPUT_LABEL, datatype="BYTES", shape=[-1]), *extra],
        parameters={"labels": labels},
    )


def score_result(proba_row: np.ndarray, labels: list[str], ms: float, result: dict[str, Any] | None = None) -> ScoreResult:
    """The sample's answer for one image; ``result`` (:meth:`Compute.answer`) adds the unknown answer."""
    i = int(np.argmax(proba_row))
    result = result or {}
    return ScoreResult(label=result.get("label", labels[i]), score=round(float(proba_row[i]), 6),
                       allScores=[round(float(p), 6) for p in proba_row],
                       Id2Labels={str(j): name for j, name in enumerate(labels)}, executionTimeMs=ms,
                       unknown=bool(result.get("unknown", False)), oodScore=result.get("ood_score"))
