"""The network being refined, what of it trains, how fast, and in which precision.

:class:`RefineNet` is the pretrained featurizer (pooled features) plus dropout and a new linear
head. Its backbone's state dict is exactly what a bundle's ``backbone.safetensors`` holds, and
its head maps onto the bundle's :class:`~imgclf.linear.LinearHead` (no L2 normalisation, T = 1).
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import torch
from torch import nn

from ..config.settings import ModelConfig, RefineConfig
from ..features.backbones import DataSpec, model_backbone
from ..features.engines import cpu_has_bf16
from ..util.errors import ImgclfError

_STAGED = ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "forward_head")  # timm's EfficientNet / MobileNet layout


class RefineNet(nn.Module):
    """``head(dropout(backbone(x)))``: x (B, 3, H, W) → logits (B, K).

    Stages count as in ``refine.freeze_stages``: 0 is the stem, ``i`` is ``backbone.blocks[i-1]``.
    With ``skip = n``, ``x`` is the output of the first ``n`` stages (see :meth:`prefix`).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(backbone.num_features), num_classes)

    def features(self, x: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """Pooled features (B, D)."""
        if not skip:
            return self.backbone(x)
        b = self.backbone
        return b.forward_head(b.bn2(b.conv_head(b.blocks[skip - 1 :](x))), pre_logits=True)

    def forward(self, x: torch.Tensor, skip: int = 0) -> torch.Tensor:
        return self.head(self.dropout(self.features(x, skip)))  # (B, K)

    def splittable(self) -> bool:
        """Whether the backbone has the stem + blocks layout that :meth:`prefix` cuts."""
        return all(hasattr(self.backbone, a) for a in _STAGED)

    def prefix(self, n: int) -> nn.Module:
        """The first ``n`` stages as one module: (B, 3, H, W) → the input of stage ``n``."""
        b = self.backbone
        return nn.Sequential(b.conv_stem, b.bn1, *b.blocks[: n - 1])


def frozen_prefix_stages(net: RefineNet, rcfg: RefineConfig) -> int:
    """How many leading stages never train (they can run as inference only); 0 when unknown."""
    if not net.splittable():
        return 0
    stages = len(net.backbone.blocks) + 1
    return stages if rcfg.freeze_backbone else min(rcfg.freeze_stages, stages)


def onnx_prefix(net: RefineNet, rcfg: RefineConfig, spec: DataSpec, device: str, threads: int,
                precision: str = "fp32") -> "OnnxPrefix | None":
    """The frozen leading stages on an inference engine when ``refine.onnx_frozen`` (CPU only)."""
    n = frozen_prefix_stages(net, rcfg)
    if not (rcfg.onnx_frozen and n and device == "cpu"):
        return None
    return OnnxPrefix(net, n, spec, threads, precision)


class OnnxPrefix:
    """The frozen leading stages run by an inference engine on CPU: inference only, and several times
    faster than eager torch there (BatchNorm, ReLU6 and padding fused into the convolutions).

    OpenVINO where it runs (in bf16 when training autocasts to bf16: the stages would compute in
    bf16 under torch too), else ONNX Runtime in fp32.
    """

    def __init__(self, net: RefineNet, stages: int, spec: DataSpec, threads: int, precision: str = "fp32"):
        import tempfile
        from pathlib import Path

        from ..features.export import INPUT_NAME, export_onnx
        from ..features.ovcore import openvino_problem

        self.stages = stages
        self.input_name = INPUT_NAME
        with tempfile.TemporaryDirectory(prefix="imgclf-prefix-") as d:
            path = export_onnx(net.prefix(stages), spec, Path(d) / "prefix.onnx")
            self.engine = "onnxruntime" if openvino_problem() else "openvino"
            self._run = _openvino_prefix(path, threads, precision) if self.engine == "openvino" else _ort_prefix(path, threads)

    def __call__(self, x: Any) -> Any:
        """(B, 3, H, W) float32 array → the input of stage ``stages`` (B, C, h, w) float32 array."""
        return self._run(x)


def _ort_prefix(path: Any, threads: int) -> Any:
    import onnxruntime as ort

    from ..features.onnxruntime import session_options

    session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _openvino_prefix(path: Any, threads: int, precision: str) -> Any:
    from ..features.ovcore import ov_core

    core = ov_core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads})
    return lambda x: compiled(x)[0]


def build_network(model_cfg: ModelConfig, rcfg: RefineConfig, num_classes: int, seed: int) -> tuple[RefineNet, DataSpec]:
    """The pretrained backbone of ``model_cfg`` with a fresh head (initialised from ``seed``)."""
    backbone, spec = model_backbone(model_cfg)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = RefineNet(backbone, num_classes, rcfg.dropout)
    freeze(net, rcfg)
    return net, spec


def freeze(net: RefineNet, rcfg: RefineConfig) -> None:
    """Stop gradients into the parts ``refine.freeze_backbone`` / ``refine.freeze_stages`` keep fixed."""
    if rcfg.freeze_backbone:
        frozen = {n for n, _ in net.backbone.named_parameters()}
    elif rcfg.freeze_stages:
        from timm.models import group_parameters

        try:
            groups = list(group_parameters(net.backbone, net.backbone.group_matcher(coarse=True)).values())
        except (AttributeError, NotImplementedError):
            raise ImgclfError(f"backbone {type(net.backbone).__name__} does not say which layers form its stages",
                              hint="set refine.freeze_stages=0 (or refine.freeze_backbone=true)") from None
        frozen = {n for g in groups[: rcfg.freeze_stages] for n in g}
    else:
        frozen = set()
    for n, p in net.backbone.named_parameters():
        p.requires_grad_(n not in frozen)


def frozen_modules(net: RefineNet) -> set[Any]:
    """Backbone modules none of whose parameters train."""
    out = set()
    for m in net.backbone.modules():
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            out.add(m)
    return out


def set_train_mode(net: RefineNet, bn_freeze: bool) -> None:
    """Training mode, except BatchNorm layers whose statistics stay fixed (bn_freeze or frozen layers)."""
    from torch.nn.modules.batchnorm import _BatchNorm

    net.train()
    fixed = frozen_modules(net)
    for m in net.modules():
        if isinstance(m, _BatchNorm) and (bn_freeze or m in fixed):
            m.eval()


def param_groups(net: RefineNet, rcfg: RefineConfig) -> list[dict[str, Any]]:
    """SGD groups: weight decay on weights only; the head at ``head_lr_mult``."""
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for n, p in net.named_parameters():
        if p.requires_grad:
            groups.setdefault((n.startswith("head."), p.ndim > 1), []).append(p)
    return [{"params": ps, "lr_mult": rcfg.head_lr_mult if head else 1.0, "weight_decay": rcfg.weight_decay if decay else 0.0}
            for (head, decay), ps in sorted(groups.items())]


def learning_rate(rcfg: RefineConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning rate of the pretrained layers at ``step`` of ``epoch`` (both from 0)."""
    t = epoch + step / steps_per_epoch  # epochs done
    if rcfg.lr:
        lr = rcfg.lr[min(epoch, len(rcfg.lr) - 1)]
    elif rcfg.lr_schedule == "constant":
        lr = rcfg.base_lr
    elif rcfg.lr_schedule == "onecycle":  # 30% linear rise from base/25, then cosine down to base/1e4
        u, top, low = t / rcfg.epochs, rcfg.base_lr, rcfg.base_lr / 1e4
        lr = top / 25 + (top - top / 25) * u / 0.3 if u < 0.3 else low + (top - low) * 0.5 * (1 + math.cos(math.pi * (u - 0.3) / 0.7))
    else:  # cosine after the warm-up
        span = max(rcfg.epochs - rcfg.warmup_epochs, 1e-9)
        lr = rcfg.base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, t - rcfg.warmup_epochs) / span)))
    if t < rcfg.warmup_epochs:
        lr *= (epoch * steps_per_epoch + step + 1) / (rcfg.warmup_epochs * steps_per_epoch)
    return lr


class Precision:
    """Autocast (and, for fp16 on CUDA, gradient scaling) as ``refine.precision`` asks."""

    def __init__(self, precision: str, device: str):
        self.device_type = "cuda" if device.startswith("cuda") else "cpu"
        if precision == "fp32":
            self.dtype = None
        elif self.device_type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.dtype = torch.bfloat16 if precision == "bf16" or cpu_has_bf16() else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype is torch.float16)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
        else:
            with torch.autocast(self.device_type, dtype=self.dtype):
                yield

    def step(self, loss: Any, optimizer: Any) -> None:
        """Backward and optimizer step (scaled when fp16)."""
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
