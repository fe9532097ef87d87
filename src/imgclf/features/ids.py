"""Feature ids: which featurizer made a feature vector, as one typed value with one string form.

The string is the feature-cache key (a folder name under ``DATA_ROOT/features``), the
``feature_id`` of features.npz and of bundle.json, and the stem of cached ONNX exports:

    <backbone>-r<resolution>[.<resampler>]-<weights>-<precision>[-<calibration>]

e.g. ``efficientnet_lite0-r224-imagenet-fp32``, ``efficientnet_lite2-r320-refined-3f2a9c1b7d4e-fp32``,
``efficientnet_lite0-r224-imagenet-int8-9c0ffee12345`` (int8 carries the first 12 hex digits of its
calibration digest: other calibration images, other int8 network). Engines of the same precision
give the same features (ONNX Runtime and OpenVINO fp32: cosine >= 0.9999998), so the engine is not
part of the id; bf16 features are not fp32 features (cosine ~0.9997), so the precision is, and so is
the resampler of the crop when it is not the backbone's own filter (``.area``).

Features of several featurizers, concatenated (a feature ensemble), carry their ids joined by
``+`` in features.npz; each featurizer keeps its own cache folder, so ensembles share work.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

PRECISIONS = ("fp32", "bf16", "int8")
_PATTERN = re.compile(r"^(?P<backbone>.+?)-r(?P<resolution>\d+)(?:\.(?P<resampler>area|fast))?-(?P<weights>.+)-(?P<precision>fp32|bf16|int8)"
                      r"(?:-(?P<calibration>[0-9a-f]{12}))?$")


@dataclass(frozen=True)
class FeatureId:
    backbone: str
    resolution: int
    weights: str = "imagenet"  # "imagenet", "random" or "refined-<sha256[:12] of the refined weights>"
    precision: str = "fp32"  # "fp32", "bf16" or "int8": the precision the features were computed in
    calibration: str = ""  # int8 only: sha256[:12] of the calibration images and quantisation scheme
    resampler: str = ""  # "" = the backbone's own filter (Pillow), "area" / "fast" = OpenCV's (see features.preprocess)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"feature id precision must be one of {PRECISIONS}; got {self.precision!r}")

    def __str__(self) -> str:
        res = f"r{self.resolution}.{self.resampler}" if self.resampler else f"r{self.resolution}"
        s = f"{self.backbone}-{res}-{self.weights}-{self.precision}"
        return f"{s}-{self.calibration}" if self.calibration else s

    @classmethod
    def parse(cls, text: str) -> "FeatureId":
        """The id whose string form is ``text``; ValueError for anything else."""
        m = _PATTERN.match(str(text))
        if m is None:
            raise ValueError(f"{text!r} is not a feature id (expected <backbone>-r<resolution>[.area]-<weights>-fp32|bf16|int8[-<calibration>])")
        return cls(m["backbone"], int(m["resolution"]), m["weights"], m["precision"], m["calibration"] or "", m["resampler"] or "")

    def with_precision(self, precision: str) -> "FeatureId":
        """The same featurizer at another precision (without a calibration digest)."""
        return dataclasses.replace(self, precision=precision, calibration="")

    def calibrated(self, digest: str) -> "FeatureId":
        """This int8 featurizer calibrated on the images of ``digest`` (a hex SHA-256)."""
        return dataclasses.replace(self, precision="int8", calibration=digest[:12])


ENSEMBLE_SEP = "+"


def join_ids(ids: "list[FeatureId] | list[str]") -> str:
    """The features.npz id of features concatenated from ``ids`` (one id: its own string)."""
    return ENSEMBLE_SEP.join(str(i) for i in ids)


def split_ids(text: str) -> list[FeatureId]:
    """The ids :func:`join_ids` joined; ValueError when one part is not a feature id."""
    return [FeatureId.parse(part) for part in str(text).split(ENSEMBLE_SEP)]
