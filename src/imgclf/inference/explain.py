"""Class activation maps (CAM, Zhou et al., CVPR 2016): where in an image the model finds each class.

Every imgclf classifier is a :class:`~imgclf.linear.LinearHead` on globally average-pooled features.
With ``F(x, y)`` the featurizer's last feature map (D, h, w), ``f = mean_xy F(x, y)`` the pooled
features and ``s = 1 / ‖f‖`` when the head L2-normalises them (the SVM's heads) else ``s = 1`` (the
refined network's head), the head's decision value for class ``c`` is

    d_c = s · w_c · f + b_c = mean_xy [ s · w_c · F(x, y) ] + b_c

so the map ``M_c(x, y) = s · w_c · F(x, y)`` decomposes ``d_c`` exactly: ``mean(M_c) + b_c == d_c``,
no gradients involved. The score shown to users is ``softmax(T · d)_c`` (``T`` the calibrated
temperature): a map explains the decision value, the logit behind that probability. The map covers
the center crop the network sees; overlays colour that square and dim the rest of the image.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from ..classifier.linear import LinearHead, softmax
from ..features.backbones import DataSpec
from ..features.decode import decode_rgb
from ..features.engines import MapEngine
from ..features.preprocess import crop_box, crop_resize_array, resize_size
from ..util.errors import ImageError, InvalidRequest, NotExplainable
from ..util.files import write_bytes

_OUTSIDE = 0.35  # brightness of the image outside the crop the network sees
_ALPHA = 0.5  # weight of the map's colour over the image
# "jet": dark blue (least evidence) → cyan → yellow → dark red (most), as in the CAM paper's figures
_STOPS = np.array([0.0, 0.125, 0.375, 0.625, 0.875, 1.0])
_COLOURS = np.array([[0, 0, 143], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0], [128, 0, 0]], dtype=np.float32)


def map_scale(feature_map: np.ndarray, head: LinearHead) -> float:
    """``s``: 1 / ‖pooled features‖ for a head that L2-normalises them, else 1."""
    if not head.l2_normalize:
        return 1.0
    pooled = feature_map.reshape(feature_map.shape[0], -1).mean(axis=1)  # (D,)
    return 1.0 / max(float(np.linalg.norm(pooled)), 1e-12)


def class_maps(feature_map: np.ndarray, head: LinearHead, classes: Sequence[int]) -> np.ndarray:
    """Maps (n, h, w) of ``classes`` for one image's feature map (D, h, w): ``mean + bias == decision value``."""
    d = feature_map.shape[0]
    if head.weight.shape[1] != d:
        raise NotExplainable(f"the classifier takes {head.weight.shape[1]} features but the featurizer's last map has {d} "
                             "channels", hint="class activation maps need a linear head on one featurizer's pooled map")
    w = head.weight[list(classes)].astype(np.float32)  # (n, D)
    return map_scale(feature_map, head) * np.einsum("nd,dhw->nhw", w, feature_map.astype(np.float32))


def _bilinear(n_out: int, n_in: int, start: float, length: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, t): each of ``n_out`` pixel centres samples ``(1 - t) * cell[lo] + t * cell[hi]`` of ``n_in``
    cells spread over [start, start + length). Index arrays, not an (n_out, n_in) matrix: the cost grows
    with the output's pixels alone, whatever the image's shape."""
    u = ((np.arange(n_out) + 0.5 - start) / length) * n_in - 0.5
    u = np.clip(u, 0, n_in - 1)
    lo = np.floor(u).astype(np.intp)
    return lo, np.minimum(lo + 1, n_in - 1), (u - lo).astype(np.float32)


def upsample(cam: np.ndarray, width: int, height: int, box: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A map (h, w) over the crop ``box`` (left, top, side) → (height, width) values and the mask of the crop."""
    left, top, side = box
    lo, hi, t = _bilinear(height, cam.shape[0], top, side)
    cam = cam.astype(np.float32)
    rows = (1 - t)[:, None] * cam[lo] + t[:, None] * cam[hi]  # (height, w)
    lo, hi, t = _bilinear(width, cam.shape[1], left, side)
    values = (1 - t)[None, :] * rows[:, lo] + t[None, :] * rows[:, hi]  # (height, width)
    ys, xs = np.arange(height) + 0.5, np.arange(width) + 0.5
    mask = ((ys >= top) & (ys < top + side))[:, None] & ((xs >= left) & (xs < left + side))[None, :]
    return values, mask


_LUT = np.stack([np.interp(np.linspace(0, 1, 256), _STOPS, _COLOURS[:, k]) for k in range(3)], axis=-1).astype(np.float32)


def colourize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) → RGB float32 (…, 3) on the jet colour scale (256 steps: a table
    lookup, 20× faster than interpolating every pixel)."""
    return _LUT[(np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)]


def overlay(image: np.ndarray, cam: np.ndarray, box: tuple[float, float, float], size: int | None = None) -> Image.Image:
    """The image (H, W, 3) uint8 with ``cam`` coloured over its crop ``box`` (min → blue, max → red) and
    the rest dimmed; scaled down so its longer side is at most ``size``."""
    h, w = image.shape[:2]
    k = min(1.0, size / max(w, h)) if size else 1.0
    img = Image.fromarray(image)
    if k < 1.0:  # box-reduced first (reducing_gap): Lanczos alone costs and allocates by the scale factor
        img = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS, reducing_gap=3.0)
    base = np.asarray(img, dtype=np.float32)
    values, inside = upsample(cam, base.shape[1], base.shape[0], tuple(v * k for v in box))
    lo, hi = float(cam.min()), float(cam.max())
    colour = colourize((values - lo) / (hi - lo) if hi > lo else np.zeros_like(values))
    out = np.where(inside[..., None], (1 - _ALPHA) * base + _ALPHA * colour, _OUTSIDE * base)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def png_bytes(img: Image.Image) -> bytes:
    """PNG at zlib level 1: a 512-px overlay encodes ~3× faster than at the default level 6, for a larger file."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@dataclass
class Explanation:
    """One image's prediction and its class activation maps."""

    labels: list[str]
    proba: np.ndarray  # (K,) probabilities: softmax(temperature * decision)
    decision: np.ndarray  # (K,) decision values of the pooled map: what each map decomposes
    maps: dict[str, np.ndarray]  # class → (h, w): mean + bias[class] == decision of that class
    bias: dict[str, float]
    temperature: float
    image: np.ndarray  # (H, W, 3) uint8, as decoded for the network
    box: tuple[float, float, float]  # the network's crop of ``image``: left, top, side (pixels)
    features: np.ndarray  # (D,) the pooled features the head read
    # the answer predict gives for these features (label, score, scores, and with a detector ood_score, unknown,
    # nearest_label; see Compute.answer); empty = the head's top class alone
    prediction: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The class with the highest score: the one mapped by default (predict's ``nearest_label`` when it says unknown)."""
        return self.labels[int(np.argmax(self.proba))]

    def answer(self, decimals: int = 6) -> dict[str, Any]:
        """What predict answers for this image: :attr:`prediction`, else the top class and every class's score."""
        if self.prediction:
            return dict(self.prediction)
        return {"label": self.label, "score": round(float(self.proba.max()), decimals),
                "scores": {n: round(float(p), decimals) for n, p in zip(self.labels, self.proba)}}

    def overlay(self, cls: str | None = None, size: int | None = None) -> Image.Image:
        """The map of ``cls`` (default: the predicted class) over the image."""
        return overlay(self.image, self.maps[cls or self.label], self.box, size)

    def overlay_png(self, cls: str | None = None, size: int | None = None) -> bytes:
        return png_bytes(self.overlay(cls, size))

    def to_dict(self, decimals: int = 6) -> dict[str, Any]:
        """The JSON form: prediction, each map's values (rows top to bottom) and where the map lies in the image."""
        h, w = self.image.shape[:2]
        left, top, side = self.box
        r = lambda v: round(float(v), decimals)  # noqa: E731
        return {
            **self.answer(decimals),
            "temperature": r(self.temperature),
            "explains": "decision value: mean(values) + bias; score = softmax(temperature * decision values)",
            "crop_box": [r(left / w), r(top / h), r((left + side) / w), r((top + side) / h)],  # fractions of width, height
            "maps": {c: {"decision": r(self.decision[self.labels.index(c)]), "bias": r(self.bias[c]),
                         "values": [[r(v) for v in row] for row in m]} for c, m in self.maps.items()},
        }


class Explainer:
    """Class activation maps of a linear ``head`` on ``engine``'s featurizer (any :class:`~imgclf.features.engines.MapEngine`)."""

    def __init__(self, engine: Any, head: LinearHead, labels: Sequence[str], spec: DataSpec):
        self.engine, self.head, self.labels, self.spec = engine, head, list(labels), spec

    def class_index(self, cls: str) -> int:
        if cls not in self.labels:
            raise InvalidRequest(f"unknown class {cls!r}; the model's classes are {', '.join(self.labels)}", reason="unknown_class")
        return self.labels.index(cls)

    def feature_maps(self, inputs: np.ndarray) -> np.ndarray:
        """Engine inputs (crops (B, H, W, 3) uint8, or normalised (B, 3, H, W)) → last feature maps (B, D, h, w)."""
        if not isinstance(self.engine, MapEngine):
            raise NotExplainable(f"class activation maps need a model on a single CNN featurizer; the {type(self.engine).__name__} "
                                 "featurizer does not give one feature map",
                                 hint="class activation maps need a model on a single CNN featurizer")
        return self.engine.run_maps(inputs)

    def explain_map(self, feature_map: np.ndarray, image: np.ndarray, classes: Sequence[str] = ()) -> Explanation:
        """The explanation of one image's feature map (D, h, w): maps of the predicted class and ``classes``."""
        idx = [self.class_index(c) for c in classes]
        if feature_map.shape[0] != self.head.weight.shape[1]:  # a feature ensemble: the head reads several featurizers
            raise NotExplainable(f"class activation maps need a model on a single CNN featurizer; this model's classifier reads "
                                 f"{self.head.weight.shape[1]} features, the first featurizer's map has {feature_map.shape[0]} channels",
                                 hint="class activation maps need a model on a single CNN featurizer")
        pooled = feature_map.reshape(feature_map.shape[0], -1).mean(axis=1)[None]  # (1, D)
        decision = self.head.decision_function(pooled)[0]  # (K,)
        pred = int(np.argmax(decision))
        wanted = list(dict.fromkeys([pred, *idx]))
        maps = class_maps(feature_map, self.head, wanted)
        h, w = image.shape[:2]
        return Explanation(
            labels=self.labels, proba=softmax(self.head.temperature * decision[None].astype(np.float64))[0],
            decision=decision, maps={self.labels[i]: m for i, m in zip(wanted, maps)},
            bias={self.labels[i]: float(self.head.bias[i]) for i in wanted}, temperature=self.head.temperature,
            image=image, box=crop_box(w, h, self.spec), features=pooled[0])

    def explain(self, source: bytes | str | os.PathLike, classes: Sequence[str] = (), *, max_pixels: int | None = None) -> Explanation:
        """Decode ``source`` safely (ImageError when unusable; ``max_pixels`` default ``images.max_pixels``), run
        the featurizer, compute the maps."""
        for c in classes:
            self.class_index(c)
        image = decode_rgb(source, resize_size(self.spec), max_pixels=max_pixels)  # (H, W, 3) uint8, as predict decodes it
        x = crop_resize_array(image, self.spec)[None]  # (1, R, R, 3) uint8: the crop every engine takes
        return self.explain_map(self.feature_maps(x)[0], image, classes)


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "image"


def write_overlays(explainer: Any, paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                   classes: Sequence[str] = (), size: int | None = None) -> Iterator[dict[str, Any]]:
    """Overlay PNGs ``out_dir/<image stem>.<class>.png`` of each image: its top class, ``classes``, and
    the class its folder is named after when that is one of the model's (the true class of a dataset image).

    ``explainer``: an :class:`Explainer`, or a Predictor, whose answer is then predict's (``"unknown"`` included).
    Yields one dict per image, ``{"path", <the answer: label, score, scores...>, "maps": {class: png path}}`` or
    ``{"path", "error"}``: an unusable image is listed, never fatal. Stems met twice get ``-2``, ``-3``... .
    """
    out = Path(out_dir)
    used: dict[str, int] = {}
    for p in paths:
        p = Path(p)
        folder = p.parent.name
        wanted = [*classes, *([folder] if folder in explainer.labels and folder not in classes else [])]
        try:
            e = explainer.explain(p, wanted)
        except ImageError as err:
            yield {"path": str(p), "error": str(err)}
            continue
        except OSError as err:
            yield {"path": str(p), "error": f"unreadable: {err.strerror or err}"}
            continue
        stem = _safe_name(p.stem)
        used[stem] = used.get(stem, 0) + 1
        if used[stem] > 1:
            stem = f"{stem}-{used[stem]}"
        written = {}
        for cls in e.maps:
            target = out / f"{stem}.{_safe_name(cls)}.png"
            write_bytes(target, e.overlay_png(cls, size))
            written[cls] = str(target)
        yield {"path": str(p), **e.answer(), "maps": written}
