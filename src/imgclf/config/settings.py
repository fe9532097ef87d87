"""One typed configuration for every command (the 2017 sample's PARAMETERS.py).

Defaults live here, each with a short comment. :func:`load_config` is the one precedence rule:
defaults (or a run's saved config) < a TOML/JSON file given with ``--config`` < the command's
own options < ``--set section.key=value``. Unknown keys and wrong types are errors that name the
key and what it accepts (the parsing and type checks are in :mod:`imgclf.config.values`); plug-in
names are checked against ``imgclf.util.registry``. Functions receive only their section.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import platform
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from ..util.errors import ConfigError
from ..util.registry import ENGINE_PRECISIONS, ENGINES, TRAINERS
from .values import coerce, parse_featurizer, parse_override, read_file

log = logging.getLogger(__name__)

BACKBONE_DEFAULT = "efficientnet_lite0"
PRESET_DEFAULT = "fast"
PINNED_BY = ("model.backbone", "model.resolution", "model.featurizers")  # keys that, set by the user, fix the featurizer a preset would choose


def _default_root() -> str:
    return os.environ.get("IMGCLF_DATA_DIR", "data")


def _default_backend() -> str:
    """OpenVINO on x86 CPUs (bf16 there where the CPU has it: 2.4x ONNX Runtime fp32), ONNX Runtime elsewhere."""
    return "openvino" if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86") else "onnxruntime"


@dataclass
class DataConfig:
    root: str = field(default_factory=_default_root)  # where datasets/, features/ and runs/ live ($IMGCLF_DATA_DIR)
    dataset: str = "demo"  # dataset name: images are read from ROOT/datasets/NAME unless data.images is set
    images: str = ""  # explicit images folder (one subfolder per class); overrides data.dataset
    train_ratio: float = 0.75  # fraction of each class that goes to train
    split_by: Literal["file", "subdir"] = "file"  # "subdir": whole sub-subfolders go to one side
    seed: int = 0  # seed of the split (and of everything else that draws)
    test_list: str = ""  # TSV of label<TAB>filename naming the test images (the sample's dedicatedTestImages.tsv)
    min_images_per_class: int = 2  # a class with fewer usable images is an error
    check_leakage: bool = True  # report near-duplicate train/test pairs (leakage.csv)
    group_duplicates: bool = False  # keep each group of near-duplicate images on one side of the split
    duplicate_distance: int = 20  # dhash (16x16 = 256 bits) Hamming distance up to which two images are near duplicates
    pool: str = ""  # folder of unlabelled images (never a class) that `imgclf suggest` picks from, inside the images folder; "" = IMAGES/_unlabeled


@dataclass
class ImagesConfig:
    max_pixels: int = 40_000_000  # refuse images with more pixels (8000 x 5000): a classifier sees a few hundred a side, and a small file can declare 89 M


@dataclass
class ModelConfig:
    backbone: str = BACKBONE_DEFAULT  # featurizer name (see `imgclf backbones`)
    resolution: int = 224  # network input size in pixels: a multiple of 32 up to 896
    pretrained: bool = True  # start from ImageNet weights
    resampler: Literal["fast", "area", "native"] = "area"  # how the center crop is resized: OpenCV (fast: bicubic up to a 1.25x shrink, area average beyond; area: area average) or the backbone's own filter (Pillow bicubic)
    featurizers: list[str] = field(default_factory=list)  # more featurizers (NAME@RESOLUTION) whose L2-normalised features are concatenated after model.backbone's; preset balanced sets it


@dataclass
class FeaturizeConfig:
    batch_size: int = 32  # images per forward pass
    cache: bool = True  # reuse features cached by (featurizer, file content hash)


@dataclass
class EngineConfig:
    backend: str = field(default_factory=_default_backend)  # openvino (default on x86), onnxruntime or torch (see imgclf.registry.ENGINES)
    precision: str = "auto"  # auto, or one of imgclf.registry.ENGINE_PRECISIONS: fp32, bf16, int8. auto: bf16 on OpenVINO where the CPU has bf16 instructions, else fp32; int8: static quantisation calibrated on the training images
    threads: int = 0  # compute threads; 0 = all cores (decode threads are sized to match)
    streams: int = 0  # OpenVINO: single-threaded streams a large batch is split over; 0 = one per thread, 1 = one stream of all threads
    calibration_images: int = 128  # training images used to calibrate int8
    compare_fp32: bool = True  # int8 runs also train and test an fp32 SVM to report the accuracy int8 costs


@dataclass
class SvmConfig:
    l2_normalize: bool = True  # L2-normalise features before the SVM
    c_values: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0])  # grid for C
    cv_folds: int = 5  # stratified folds on the train split to choose C
    class_weight: Literal["balanced", "none"] = "balanced"  # weight classes inversely to their frequency
    max_iter: int = 10000  # LinearSVC iterations
    max_s: float = 0.0  # seconds the C search may take (0 = no limit): C values are tried smallest first (each costs more than the last) and the larger ones left unscored when the next would not fit; --time-limit sets it from the plan


@dataclass
class TrainConfig:
    classifier: str = "svm"  # what `imgclf run` trains (see imgclf.registry.TRAINERS) (dnn: refine the network; svm_on_refined: refine, then an SVM on its features; ensemble: both and the SVM on model.* features, pooled; preset best turns svm into ensemble)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where refinement runs (auto: CUDA when PyTorch sees one)
    preset: Literal["fast", "balanced", "best"] = PRESET_DEFAULT  # fast: model.* as set; balanced: the featurizer(s) chosen by nested CV on the train split; best: balanced, then the "ensemble" trainer (refinement + calibrated ensemble, weights from validation on train)
    candidates: list[str] = field(default_factory=list)  # featurizers (NAME@RESOLUTION, "+" joins a concatenation) balanced chooses among; empty = its own list
    concat_best: int = 3  # balanced's winner: the concatenation of this many best-scoring candidates (1 = the best alone): 3 scored at or above every single featurizer on four sets
    max_upscale: float = 2.0  # balanced leaves out candidates that would enlarge the median train image's short side more than this (the cheapest stays): 1.25 cost 4.7 points on cub_warblers
    ensemble_weights: list[float] = field(default_factory=list)  # ensemble trainer: weights of [svm, refined head, svm on refined features] (empty = equal; weights chosen on validation are recorded, not used)
    tta: Literal["auto", "flip", "none"] = "auto"  # ensemble trainer: horizontal-flip test-time augmentation (auto = where validation on train shows a gain)
    time_limit_s: float = 0.0  # seconds the run should take at most (0 = no limit): best shortens refinement (to half its epochs at least), then drops it, then balanced/best drop their most expensive candidates to fit; the SVM's C search and refinement then get what is left (svm.max_s, refine.max_s)


@dataclass
class RefineConfig:
    backbone: str = "efficientnet_lite2"  # network that dnn and svm_on_refined refine ("" = model.backbone): lite2 beat lite0 by 2.6 points on hymenoptera
    resolution: int = 320  # input size while refining and in the refined bundle (0 = model.resolution); a multiple of 32
    epochs: int = 8  # passes over the train split
    max_s: float = 0.0  # seconds refinement may take (0 = no limit): after each epoch, the epochs are cut to those that fit at the pace so far (the schedule then ends at the new last epoch); --time-limit sets it from the plan
    batch_size: int = 16  # minibatch size (per process; lower it after an out-of-memory error)
    lr: list[float] = field(default_factory=list)  # per-epoch learning rates, the last one repeating (the sample's [0.01]*20+[0.001]*20+[0.0001]); empty = use lr_schedule
    lr_schedule: Literal["cosine", "onecycle", "constant"] = "cosine"  # per-step schedule used when refine.lr is empty
    base_lr: float = 0.001  # peak learning rate of the schedule (hymenoptera, lite0: 0.001 beat 0.003 and 0.01)
    head_lr_mult: float = 1.0  # learning-rate factor of the new head (pooled features have norm ~15: much above 1 diverges)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 5e-4  # L2 penalty on weights (not on biases and BatchNorm parameters)
    dropout: float = 0.5  # dropout before the new linear head
    label_smoothing: float = 0.1  # cross-entropy label smoothing
    freeze_backbone: bool = False  # train only the new head
    head_init: Literal["probe", "random"] = "probe"  # start the head from a linear probe on the pretrained features (LP-FT: fine-tuning then distorts them less)
    freeze_stages: int = 4  # leading stages kept at their pretrained weights (the stem counts as one; 0 = train all): faster, and early features are generic
    balance: bool = False  # oversample small classes to the size of the largest
    max_images_per_epoch: int = 1000  # cap on train images per epoch, drawn afresh each epoch (0 = all): ~1 min per epoch on 2 cores at 224 px
    val_fraction: float = 0.1  # part of the TRAIN split held out for validation (never the test split)
    augment: Literal["none", "basic", "trivialaugment"] = "basic"  # random resized crop + flip, then rotate/jitter (basic) or one TrivialAugment op
    crop_scale: float = 0.25  # smallest area fraction kept by the random resized crop
    rotation: float = 10.0  # max random rotation in degrees (basic augmentation)
    color_jitter: float = 0.2  # brightness/contrast/saturation jitter (basic augmentation)
    bn_freeze: bool = True  # keep BatchNorm statistics frozen (small batches give noisy statistics)
    warmup_epochs: int = 0  # linear warm-up epochs before the schedule
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # CPU: bf16 autocast where the CPU has bf16 instructions, else fp32; CUDA: mixed precision unless fp32
    onnx_frozen: bool = True  # on CPU, run the frozen leading stages with ONNX Runtime (inference only, faster than eager torch)
    decode_threads: int = 0  # threads decoding and augmenting images (0 = one per core)
    log_samples: bool = False  # write the sample ids each process trained on, per epoch, to refine/samples_seen.json


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # bind address
    port: int = 8000  # TCP port
    max_body_mb: float = 20.0  # request body limit
    max_batch_size: int = 16  # micro-batch size
    max_wait_ms: float = 5.0  # how long a micro-batch waits to fill
    queue_size: int = 64  # images waiting at most; beyond that 503 + Retry-After
    timeout_s: float = 30.0  # per-request deadline (504 after it)
    model_name: str = "imgclf"  # name in the Open Inference Protocol routes
    drain_s: float = 2.0  # after SIGTERM, ready answers 503 this long before the server stops accepting
    max_connections: int = 256  # concurrent connections at most; beyond that uvicorn answers 503
    max_request_pixels: int = 256_000_000  # pixels all images of one request may hold together (413 beyond)
    header_timeout_s: float = 10.0  # a request's line and headers must arrive within this (408 and close after it)
    body_timeout_s: float = 20.0  # a request body must arrive within this plus 1 s per body_min_rate bytes (408 after it)
    body_min_rate: int = 1000  # bytes per second that earn a slow upload 1 more second (see body_timeout_s)
    allowed_hosts: list[str] = field(default_factory=list)  # Host names accepted without a token besides loopback ("*": any)


@dataclass
class PredictConfig:
    unknown_tpr: float = 0.95  # the unknown-image threshold accepts this share of the train images (out-of-fold)
    reject_unknown: bool = True  # answer "unknown" above the threshold (false: answer the class, still report ood_score)
    min_confidence: float = 0.0  # answer "uncertain" when the top calibrated score is below this (0: always answer)


@dataclass
class TrackingConfig:
    enabled: bool = True  # log every run to MLflow
    uri: str = ""  # tracking URI; empty = $MLFLOW_TRACKING_URI or sqlite in data.root
    experiment: str = ""  # experiment name; empty = the dataset name


@dataclass
class DoctorConfig:
    enabled: bool = True  # `imgclf run` also runs the data doctor: label issues, outliers, duplicates, leakage
    folds: int = 5  # K of the K-fold out-of-fold probabilities (no image is scored by a model that saw its label)
    c: float = 10.0  # inverse L2 regularisation of the logistic regressions on the features
    components: int = 128  # principal components of the L2-normalised features the regressions see
    partitions: int = 2  # different K-fold partitions whose out-of-fold probabilities are averaged
    rounds: int = 3  # confident-learning rounds: images flagged in one are left out of the next one's training folds
    outlier_neighbors: int = 5  # nearest train images whose mean cosine distance scores an image
    outlier_iqr: float = 3.0  # outlier threshold: Q3 + this many IQRs of the train images' distances (Tukey's far out)
    duplicate_cosine: float = 0.95  # feature cosine similarity from which two images are near duplicates (dhash: data.duplicate_distance)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    featurize: FeaturizeConfig = field(default_factory=FeaturizeConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    svm: SvmConfig = field(default_factory=SvmConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    doctor: DoctorConfig = field(default_factory=DoctorConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def images_dir(self) -> Path:
        """The images folder this config points at."""
        if self.data.images:
            return Path(self.data.images)
        return Path(self.data.root) / "datasets" / self.data.dataset

    def dataset_name(self) -> str:
        """The dataset's name (run history, bundle.json, default run folders): the images folder's name, or ``data.dataset``."""
        return Path(self.data.images).name if self.data.images else self.data.dataset

    def validate(self) -> "Config":
        """Check value ranges that types alone can't express; returns self."""
        ENGINES.check(self.engine.backend)
        TRAINERS.check(self.train.classifier)
        r = self.model.resolution
        if r % 32 or not 32 <= r <= 896:
            raise ConfigError(f"model.resolution must be a multiple of 32 from 32 to 896; got {r}")
        if not 0.0 < self.data.train_ratio < 1.0:
            raise ConfigError(f"data.train_ratio must be in (0, 1); got {self.data.train_ratio}")
        if not self.svm.c_values or any(c <= 0 for c in self.svm.c_values):
            raise ConfigError(f"svm.c_values must be a non-empty list of positive numbers; got {self.svm.c_values}")
        if self.svm.cv_folds < 2:
            raise ConfigError(f"svm.cv_folds must be >= 2; got {self.svm.cv_folds}")
        if self.featurize.batch_size < 1:
            raise ConfigError(f"featurize.batch_size must be >= 1; got {self.featurize.batch_size}")
        if not 0.0 <= self.refine.dropout < 1.0:
            raise ConfigError(f"refine.dropout must be in [0, 1); got {self.refine.dropout}")
        if not 0.0 <= self.refine.val_fraction < 1.0:
            raise ConfigError(f"refine.val_fraction must be in [0, 1); got {self.refine.val_fraction}")
        self._validate_engine()
        if self.refine.max_s < 0 or self.svm.max_s < 0:
            raise ConfigError(f"refine.max_s and svm.max_s must be >= 0 (0 = no limit); got {self.refine.max_s}, {self.svm.max_s}")
        if self.refine.epochs < 1 or self.refine.batch_size < 1:
            raise ConfigError("refine.epochs and refine.batch_size must be >= 1")
        if self.images.max_pixels < 1:
            raise ConfigError(f"images.max_pixels must be >= 1; got {self.images.max_pixels}")
        for text in self.model.featurizers:
            parse_featurizer(text)
        for text in self.train.candidates:
            for part in str(text).split("+"):
                parse_featurizer(part, "train.candidates")
        if self.train.concat_best < 1:
            raise ConfigError(f"train.concat_best must be at least 1; got {self.train.concat_best}")
        if self.train.max_upscale <= 0:
            raise ConfigError(f"train.max_upscale must be a positive number; got {self.train.max_upscale}")
        w = self.train.ensemble_weights
        if w and (len(w) != 3 or min(w) < 0 or sum(w) <= 0):
            raise ConfigError(f"train.ensemble_weights must be 3 numbers >= 0, not all 0 (svm, refined head, svm on refined features); got {w}")
        if self.train.time_limit_s < 0:
            raise ConfigError(f"train.time_limit_s must be >= 0 seconds (0 = no limit); got {self.train.time_limit_s}")
        self._validate_refine()
        self._validate_doctor()
        if not 0.0 < self.predict.unknown_tpr <= 1.0:
            raise ConfigError(f"predict.unknown_tpr must be in (0, 1] (the share of train images accepted); got {self.predict.unknown_tpr}")
        if not 0.0 <= self.predict.min_confidence <= 1.0:
            raise ConfigError(f"predict.min_confidence must be in [0, 1] (a calibrated score); got {self.predict.min_confidence}")
        return self

    def refine_model(self) -> ModelConfig:
        """The network refinement trains: ``model`` with ``refine.backbone`` / ``refine.resolution`` where set."""
        return dataclasses.replace(self.model, backbone=self.refine.backbone or self.model.backbone,
                                   resolution=self.refine.resolution or self.model.resolution)

    def for_refinement(self) -> "Config":
        """A copy whose ``model`` is :meth:`refine_model` (what every refinement step reads)."""
        return dataclasses.replace(self, model=self.refine_model())

    def _validate_engine(self) -> None:
        e = self.engine
        known = ("auto", *sorted({p for runs in ENGINE_PRECISIONS.values() for p in runs}))
        if e.precision not in known:
            raise ConfigError(f"engine.precision must be one of {', '.join(map(repr, known))}; got {e.precision!r}")
        runs = ENGINE_PRECISIONS.get(e.backend)
        if e.precision != "auto" and runs is not None and e.precision not in runs:
            able = [b for b, p in ENGINE_PRECISIONS.items() if e.precision in p]
            raise ConfigError(f"engine.backend {e.backend!r} cannot run engine.precision {e.precision!r} "
                              f"(it runs {', '.join(runs)})", hint=f"use engine.backend = {' or '.join(map(repr, able))}")
        if e.threads < 0 or e.calibration_images < 1:
            raise ConfigError("engine.threads must be >= 0 and engine.calibration_images >= 1")

    def _validate_doctor(self) -> None:
        d = self.doctor
        for key, value in (("folds", d.folds), ("components", d.components)):
            if value < 2:
                raise ConfigError(f"doctor.{key} must be an integer >= 2; got {value}")
        for key, value in (("partitions", d.partitions), ("rounds", d.rounds), ("outlier_neighbors", d.outlier_neighbors)):
            if value < 1:
                raise ConfigError(f"doctor.{key} must be an integer >= 1; got {value}")
        if d.c <= 0 or d.outlier_iqr <= 0:
            raise ConfigError(f"doctor.c and doctor.outlier_iqr must be positive numbers; got {d.c} and {d.outlier_iqr}")
        if not 0.0 < d.duplicate_cosine <= 1.0:
            raise ConfigError(f"doctor.duplicate_cosine must be in (0, 1] (a cosine similarity); got {d.duplicate_cosine}")

    def _validate_refine(self) -> None:
        r = self.refine
        if r.resolution and (r.resolution % 32 or not 32 <= r.resolution <= 896):
            raise ConfigError(f"refine.resolution must be 0 (= model.resolution) or a multiple of 32 from 32 to 896; got {r.resolution}")
        if any(v <= 0 for v in r.lr) or r.base_lr <= 0 or r.head_lr_mult <= 0:
            raise ConfigError(f"refine.lr, refine.base_lr and refine.head_lr_mult must be positive; got {r.lr}, {r.base_lr}, {r.head_lr_mult}")
        if not 0.0 < r.crop_scale <= 1.0:
            raise ConfigError(f"refine.crop_scale must be in (0, 1]; got {r.crop_scale}")
        if not 0.0 <= r.label_smoothing < 1.0:
            raise ConfigError(f"refine.label_smoothing must be in [0, 1); got {r.label_smoothing}")
        if min(r.freeze_stages, r.max_images_per_epoch, r.warmup_epochs, r.decode_threads) < 0:
            raise ConfigError("refine.freeze_stages, max_images_per_epoch, warmup_epochs and decode_threads must be >= 0")
        if r.momentum < 0 or r.weight_decay < 0 or r.rotation < 0 or r.color_jitter < 0:
            raise ConfigError("refine.momentum, weight_decay, rotation and color_jitter must be >= 0")


def _section_types(section_cls: type) -> dict[str, Any]:
    return typing.get_type_hints(section_cls, include_extras=False)


# Keys renamed since the previous release: still read from --set, --config files and saved run configs.
RENAMED = {"train.time_limit": "train.time_limit_s", "svm.max_seconds": "svm.max_s",
           "refine.max_seconds": "refine.max_s", "model.ensemble": "model.featurizers"}


def apply_dict(cfg: Config, values: dict[str, Any], source: str = "config", reported: set[str] | None = None) -> Config:
    """Apply a nested ``{section: {key: value}}`` mapping onto ``cfg`` with validation.

    A key of :data:`RENAMED` sets its new name and is logged as renamed once per ``reported`` set."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    for sec, kv in values.items():
        if sec not in sections:
            raise ConfigError(f"unknown section {sec!r} in {source}; known sections: {', '.join(sections)}")
        if not isinstance(kv, dict):
            raise ConfigError(f"section {sec!r} in {source} must be a table of keys")
        obj = getattr(cfg, sec)
        types = _section_types(type(obj))
        for k, v in kv.items():
            old = f"{sec}.{k}"
            if old in RENAMED:
                k = RENAMED[old].split(".", 1)[1]
                if reported is None or old not in reported:
                    log.warning("%s is now %s (read from %s)", old, RENAMED[old], source)
                    if reported is not None:
                        reported.add(old)
            if k not in types:
                raise ConfigError(f"unknown key {sec}.{k} in {source}; keys of [{sec}]: {', '.join(types)}")
            setattr(obj, k, coerce(f"{sec}.{k}", types[k], v))
    return cfg


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] | None = None, *,
                base: Config | None = None, flags: Sequence[str] = ()) -> Config:
    """The one precedence rule of every command, lowest first; the result is validated.

    1. ``base``: what is already known (a run's saved config, a bundle's engine), else the defaults;
    2. the TOML/JSON file ``path`` (``--config``);
    3. ``flags``: the command's own options (``--images``, ``--host``, ...) as ``section.key=value``;
    4. ``overrides``: ``--set section.key=value``, which always win.
    """
    cfg = copy.deepcopy(base) if base is not None else Config()
    given: set[str] = set()
    reported: set[str] = set()
    if path:
        values = read_file(path)
        apply_dict(cfg, values, source=str(path), reported=reported)
        given.update(f"{sec}.{k}" for sec, kv in values.items() if isinstance(kv, dict) for k in kv)
    for source, items in (("the command line", flags), ("--set", overrides or ())):
        for item in items:
            sec, k, v = parse_override(item)
            apply_dict(cfg, {sec: {k: v}}, source=source, reported=reported)
            given.add(f"{sec}.{k}")
    given = {RENAMED.get(key, key) for key in given}
    if given.intersection(PINNED_BY) and "train.candidates" not in given:
        cfg.train.candidates = ["+".join(featurizer_names(cfg.model))]  # the user's featurizer: the preset has nothing to choose
    return cfg.validate()


def featurizer_names(model: ModelConfig) -> list[str]:
    """``NAME@RESOLUTION`` of every featurizer of ``model``: model.backbone's, then model.featurizers's."""
    return [f"{model.backbone}@{model.resolution}", *model.featurizers]


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a Config from ``Config.to_dict()`` output (e.g. a run's config.json)."""
    return apply_dict(Config(), values, source="saved config").validate()


def to_toml(cfg: Config) -> str:
    """Render the config as TOML that ``load_config`` reads back."""
    lines = []
    for sec, kv in cfg.to_dict().items():
        lines.append(f"[{sec}]")
        for k, v in kv.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    return "\n".join(lines)


def flatten(cfg: Config) -> dict[str, Any]:
    """``{"section.key": value}`` for every key (for run tracking)."""
    return {f"{s}.{k}": v for s, kv in cfg.to_dict().items() for k, v in kv.items()}
