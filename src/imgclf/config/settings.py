"""One typed configuration for every command (the 2017 sample's PARAMETERS.py).

Every setting is declared once, here: its type, default, unit, constraint and one line of help
(:func:`imgclf.config.schema.setting`); the validator, ``imgclf config --explain``, the TOML that
``imgclf config`` prints, docs/configuration.md and the error messages all read that declaration.
:func:`load_config` is the one precedence rule: defaults (or a run's saved config) < a TOML/JSON file
given with ``--config`` < the command's own options < ``--set section.key=value``. Unknown keys get
the closest valid name; keys renamed since the previous release (:data:`RENAMED`) are still read.
Plug-in names are checked against ``imgclf.util.registry``. Functions receive only their section.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
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
from .schema import HINT, check_section, coerce, describe, fields_of, setting, spec_of
from .values import parse_featurizer as parse_featurizer  # re-exported: callers name the featurizer grammar here
from .values import parse_override, read_file

log = logging.getLogger(__name__)

BACKBONE_DEFAULT = "efficientnet_lite0"
PRESET_DEFAULT = "fast"
PINNED_BY = ("model.backbone", "model.resolution", "model.featurizers")  # keys that, set by the user, fix the featurizer a preset would choose
BUNDLE_FIXED = ("model", "svm", "train", "refine")  # sections whose settings a trained bundle fixed (commands that load one ignore them)


#: What makes a ``data/`` folder imgclf's: any of the things imgclf keeps in its data folder.
DATA_MARKERS = ("runs", "features", "engines", "mlruns.db")


def find_data_root(start: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The data folder (run history, feature cache, datasets) and why it is that one, the same from any folder
    of a project: ``$IMGCLF_DATA_DIR``; else the nearest ``data/`` upward from ``start`` (the current folder)
    that holds imgclf data (one of :data:`DATA_MARKERS`); else the per-user folder
    ``$XDG_DATA_HOME/imgclf`` (``~/.local/share/imgclf``)."""
    env = os.environ.get("IMGCLF_DATA_DIR")
    if env:
        return Path(env).absolute(), "$IMGCLF_DATA_DIR"
    here = Path(start or os.getcwd()).absolute()
    for folder in (here, *here.parents):
        data = folder / "data"
        if any((data / m).exists() for m in DATA_MARKERS):
            return data, "the nearest data/ folder upward with imgclf data"
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "imgclf", "the per-user folder ($XDG_DATA_HOME/imgclf)"
    try:
        return Path.home() / ".local" / "share" / "imgclf", "the per-user folder (~/.local/share/imgclf)"
    except RuntimeError:  # no home folder (some containers): the current folder's data/
        return here / "data", "data/ in the current folder (no home folder)"


def _default_root() -> str:
    return str(find_data_root()[0])


def _default_backend() -> str:
    """OpenVINO on x86 CPUs (the faster engine there, bf16 where the CPU has it), ONNX Runtime elsewhere."""
    return "openvino" if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86") else "onnxruntime"


def _precisions() -> list[str]:
    """Every ``engine.precision``: auto, then what some engine of the registry runs."""
    return ["auto", *sorted({p for runs in ENGINE_PRECISIONS.values() for p in runs})]


_RES = {"multiple_of": 32, "ge": 32, "le": 896, "unit": "px"}  # a network input size


@dataclass
class DataConfig:
    root: str = setting(help="where datasets/, features/, runs/ and the run history live", factory=_default_root,
                        shown_default="$IMGCLF_DATA_DIR, else the nearest data/ upward holding imgclf data, else ~/.local/share/imgclf")
    dataset: str = setting("demo", "dataset name: images are read from ROOT/datasets/NAME unless data.images is set")
    images: str = setting("", "images folder (one subfolder per class); overrides data.dataset", zero="not set: ROOT/datasets/DATASET")
    train_ratio: float = setting(0.75, "fraction of each class that goes to train", gt=0, lt=1)
    split_by: Literal["file", "subdir"] = setting("file", '"subdir": whole sub-subfolders go to one side of the split')
    seed: int = setting(0, "seed of the split (and of everything else that draws)", ge=0, le=2**32 - 1)
    test_list: str = setting("", "TSV of label, tab, filename rows naming the test images (the sample's dedicatedTestImages.tsv)",
                             zero="not set: the split draws the test images")
    min_images_per_class: int = setting(2, "a class with fewer usable images is an error", ge=2, unit="images")
    check_leakage: bool = setting(True, "report near-duplicate train/test pairs (leakage.csv)")
    group_duplicates: bool = setting(False, "keep each group of near-duplicate images on one side of the split")
    duplicate_distance: int = setting(20, "dhash (16x16 = 256 bits) Hamming distance up to which two images are near duplicates",
                                      ge=0, le=256, unit="bits")
    pool: str = setting("", "folder of unlabelled images (never a class) that `imgclf suggest` picks from, inside the images folder",
                        zero="not set: IMAGES/_unlabeled")


@dataclass
class ImagesConfig:
    max_pixels: int = setting(40_000_000, "images with more pixels are refused (a small file can declare a huge image)",
                              ge=1, unit="pixels")


@dataclass
class ModelConfig:
    backbone: str = setting(BACKBONE_DEFAULT, "featurizer network (see `imgclf backbones`)")
    resolution: int = setting(224, "network input size", **_RES)
    pretrained: bool = setting(True, "start from ImageNet weights")
    resampler: Literal["fast", "area", "native"] = setting(
        "area", "how the center crop is resized: OpenCV (fast: bicubic, area average beyond a 1.25x shrink; area: area average) "
                "or the backbone's own filter (native)")
    featurizers: list[str] = setting([], "more featurizers (NAME@RESOLUTION) whose L2-normalised features are concatenated "
                                         "after model.backbone's; preset balanced sets it", form="featurizer", zero="none")


@dataclass
class FeaturizeConfig:
    batch_size: int = setting(32, "images per forward pass", ge=1, unit="images")
    cache: bool = setting(True, "reuse features cached by (featurizer, file content hash)")


@dataclass
class EngineConfig:
    backend: str = setting(help="inference engine (openvino: default on x86; onnxruntime elsewhere; torch)", factory=_default_backend,
                           choices=ENGINES.names, shown_default='"openvino" on x86, else "onnxruntime"')
    precision: str = setting("auto", "auto: bf16 on OpenVINO where the CPU has bf16 instructions, else fp32; int8: static "
                                     "quantisation calibrated on the training images", choices=_precisions)
    threads: int = setting(0, "compute threads (decode threads are sized to match)", ge=1, zero="auto: all cores")
    streams: int = setting(0, "OpenVINO: single-threaded streams a large batch is split over (1: one stream of all threads)",
                           ge=1, zero="auto: one per thread")
    calibration_images: int = setting(128, "training images used to calibrate int8", ge=1, unit="images")
    compare_fp32: bool = setting(True, "int8 runs also train and test an fp32 SVM to report the accuracy int8 costs")


@dataclass
class SvmConfig:
    l2_normalize: bool = setting(True, "L2-normalise features before the SVM")
    c_values: list[float] = setting([1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0], "grid for C", gt=0, nonempty=True)
    cv_folds: int = setting(5, "stratified folds on the train split to choose C", ge=2)
    class_weight: Literal["balanced", "none"] = setting("balanced", "weight classes inversely to their frequency")
    max_iter: int = setting(10000, "LinearSVC iterations", ge=1)
    max_s: float = setting(0.0, "time the C search may take: C values smallest first, the larger ones left unscored when the "
                                "next would not fit; a time limit gives it what is left, within this", gt=0, zero="no limit", unit="s")


@dataclass
class TrainConfig:
    classifier: str = setting("svm", "what `imgclf run` trains (dnn: refine the network; svm_on_refined: refine, then an SVM on "
                                     "its features; ensemble: both and the SVM, pooled; preset best turns svm into ensemble)",
                              choices=TRAINERS.names)
    device: Literal["auto", "cpu", "cuda"] = setting("auto", "where refinement runs (auto: CUDA when PyTorch sees one)")
    preset: Literal["fast", "balanced", "best"] = setting(
        PRESET_DEFAULT, "fast: model.* as set; balanced: the featurizer(s) chosen by nested CV on the train split; best: "
                        "balanced, then the ensemble trainer (refinement + calibrated ensemble)")
    candidates: list[str] = setting([], 'featurizers (NAME@RESOLUTION, "+" joins a concatenation) balanced chooses among',
                                    form="featurizers", zero="the preset's own list")
    concat_best: int = setting(3, "balanced's winner: the concatenation of this many best-scoring candidates (1: the best alone)",
                               ge=1)
    max_upscale: float = setting(2.0, "balanced leaves out candidates that would enlarge the median train image's short side "
                                      "more than this (the cheapest stays)", gt=0)
    ensemble_weights: list[float] = setting([], "ensemble trainer: weights of [svm, refined head, svm on refined features] "
                                                "(weights chosen on validation are recorded, not used)",
                                            ge=0, length=3, not_all_zero=True, zero="equal")
    tta: Literal["auto", "flip", "none"] = setting("auto", "ensemble trainer: horizontal-flip test-time augmentation "
                                                           "(auto: where validation on train shows a gain)")
    time_limit_s: float = setting(0.0, "time the run should take at most: best shortens, then drops refinement, then the most "
                                       "expensive candidates go; the C search and refinement get what is left", gt=0,
                                  zero="no limit", unit="s")


@dataclass
class RefineConfig:
    backbone: str = setting("efficientnet_lite2", "network that dnn and svm_on_refined refine", zero="not set: model.backbone")
    resolution: int = setting(320, "input size while refining and in the refined bundle", zero="auto: model.resolution", **_RES)
    epochs: int = setting(8, "passes over the train split", ge=1, unit="epochs")
    max_s: float = setting(0.0, "time refinement may take: after each epoch the epochs are cut to those that fit at the pace "
                                "so far; a time limit gives it what is left, within this", gt=0, zero="no limit", unit="s")
    batch_size: int = setting(16, "minibatch size per process (lower it after an out-of-memory error)", ge=1, unit="images")
    lr: list[float] = setting([], "per-epoch learning rates, the last one repeating", gt=0, zero="use refine.lr_schedule")
    lr_schedule: Literal["cosine", "onecycle", "constant"] = setting("cosine", "per-step schedule used when refine.lr is empty")
    base_lr: float = setting(0.001, "peak learning rate of the schedule", gt=0)
    head_lr_mult: float = setting(1.0, "learning-rate factor of the new head (much above 1 diverges)", gt=0)
    momentum: float = setting(0.9, "SGD momentum", ge=0, lt=1)
    weight_decay: float = setting(5e-4, "L2 penalty on weights (not on biases and BatchNorm parameters)", ge=0)
    dropout: float = setting(0.5, "dropout before the new linear head", ge=0, lt=1)
    label_smoothing: float = setting(0.1, "cross-entropy label smoothing", ge=0, lt=1)
    freeze_backbone: bool = setting(False, "train only the new head")
    head_init: Literal["probe", "random"] = setting("probe", "start the head from a linear probe on the pretrained features "
                                                             "(fine-tuning then distorts them less)")
    freeze_stages: int = setting(4, "leading stages kept at their pretrained weights (the stem counts as one; 0: train all)", ge=0)
    balance: bool = setting(False, "oversample small classes to the size of the largest")
    max_images_per_epoch: int = setting(1000, "train images per epoch, drawn afresh each epoch", ge=1, zero="no limit: all",
                                        unit="images")
    val_fraction: float = setting(0.1, "part of the TRAIN split held out for validation (never the test split)", ge=0, lt=1)
    augment: Literal["none", "basic", "trivialaugment"] = setting(
        "basic", "random resized crop + flip, then rotate/jitter (basic) or one TrivialAugment op")
    crop_scale: float = setting(0.25, "smallest area fraction kept by the random resized crop", gt=0, le=1)
    rotation: float = setting(10.0, "largest random rotation (basic augmentation)", ge=0, le=180, unit="degrees")
    color_jitter: float = setting(0.2, "brightness/contrast/saturation jitter (basic augmentation)", ge=0)
    bn_freeze: bool = setting(True, "keep BatchNorm statistics frozen (small batches give noisy statistics)")
    warmup_epochs: int = setting(0, "linear warm-up epochs before the schedule", ge=0, unit="epochs")
    precision: Literal["auto", "bf16", "fp32"] = setting("auto", "CPU: bf16 autocast where the CPU has bf16 instructions, else "
                                                                 "fp32; CUDA: mixed precision unless fp32")
    onnx_frozen: bool = setting(True, "on CPU, run the frozen leading stages with ONNX Runtime (inference only)")
    decode_threads: int = setting(0, "threads decoding and augmenting images", ge=1, zero="auto: one per core")
    log_samples: bool = setting(False, "write the sample ids each process trained on, per epoch, to refine/samples_seen.json")


@dataclass
class ServeConfig:
    host: str = setting("127.0.0.1", "bind address")
    port: int = setting(8000, "TCP port", ge=1, le=65535)
    max_body_mb: float = setting(20.0, "request body limit", gt=0, unit="MB")
    max_batch_size: int = setting(16, "micro-batch size", ge=1, unit="images")
    max_wait_ms: float = setting(5.0, "how long a micro-batch waits to fill", ge=0, unit="ms")
    queue_size: int = setting(64, "images waiting at most; beyond that 503 + Retry-After", ge=1, unit="images")
    timeout_s: float = setting(30.0, "per-request deadline (504 after it)", gt=0, unit="s")
    model_name: str = setting("imgclf", "name in the Open Inference Protocol routes")
    drain_s: float = setting(2.0, "after SIGTERM, ready answers 503 this long before the server stops accepting", ge=0, unit="s")
    max_connections: int = setting(256, "concurrent connections at most; beyond that uvicorn answers 503", ge=1)
    max_request_pixels: int = setting(256_000_000, "pixels all images of one request may hold together (413 beyond)", ge=1,
                                      unit="pixels")
    header_timeout_s: float = setting(10.0, "a request's line and headers must arrive within this (408 and close after it)", gt=0,
                                      unit="s")
    body_timeout_s: float = setting(20.0, "a request body must arrive within this plus 1 s per serve.body_min_rate bytes "
                                          "(408 after it)", gt=0, unit="s")
    body_min_rate: int = setting(1000, "bytes per second that earn a slow upload 1 more second (see serve.body_timeout_s)", ge=1,
                                 unit="bytes/s")
    allowed_hosts: list[str] = setting([], 'Host names accepted without a token besides loopback ("*": any)', zero="loopback only")
    keep_inputs: bool = setting(False, "keep the images the service is asked about (once each, with its answer) for labelling "
                                       "next; never delays an answer")
    keep_dir: str = setting("", "folder the kept images go to", zero="not set: the pool (data.pool) of the model's dataset")
    keep_quota_mb: float = setting(1000.0, "disk the kept images may take; beyond it the oldest kept images are deleted",
                                   gt=0, unit="MB")
    keep_rate_per_min: int = setting(60, "new images kept per minute at most; more are dropped (counted in /metrics)", ge=1,
                                     zero="no limit", unit="images/min")


@dataclass
class PredictConfig:
    unknown_tpr: float = setting(0.95, "the unknown-image threshold accepts this share of the train images (out-of-fold)",
                                 gt=0, le=1)
    reject_unknown: bool = setting(True, 'answer "unknown" above the threshold (false: answer the class, still report ood_score)')
    min_confidence: float = setting(0.0, 'answer "uncertain" when the top calibrated score is below this (0: always answer)',
                                    ge=0, le=1)


@dataclass
class TrackingConfig:
    enabled: bool = setting(True, "log every run to MLflow")
    uri: str = setting("", "tracking URI", zero="not set: $MLFLOW_TRACKING_URI, else sqlite in data.root")
    experiment: str = setting("", "experiment name", zero="not set: the dataset name")


@dataclass
class DoctorConfig:
    enabled: bool = setting(True, "`imgclf run` also runs the data doctor: label issues, outliers, duplicates, leakage")
    folds: int = setting(5, "K of the K-fold out-of-fold probabilities (no image is scored by a model that saw its label)", ge=2)
    c: float = setting(10.0, "inverse L2 regularisation of the logistic regressions on the features", gt=0)
    components: int = setting(128, "principal components of the L2-normalised features the regressions see", ge=2)
    partitions: int = setting(2, "different K-fold partitions whose out-of-fold probabilities are averaged", ge=1)
    rounds: int = setting(3, "confident-learning rounds: images flagged in one are left out of the next one's training folds", ge=1)
    outlier_neighbors: int = setting(5, "nearest train images whose mean cosine distance scores an image", ge=1, unit="images")
    outlier_iqr: float = setting(3.0, "outlier threshold: Q3 + this many IQRs of the train images' distances", gt=0)
    duplicate_cosine: float = setting(0.95, "feature cosine similarity from which two images are near duplicates "
                                            "(dhash: data.duplicate_distance)", gt=0, le=1)


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
    #: What a preset or a command changed after the user's settings: ``{"key", "from", "to", "by"}`` each
    #: (a record of the run, saved in config.json; not a setting, so two configs compare without it).
    changed: list[dict[str, Any]] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """``{section: {key: value}}`` of every setting, and ``changed`` when something was."""
        out: dict[str, Any] = {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
        if self.changed:
            out["changed"] = copy.deepcopy(self.changed)
        return out

    def images_dir(self) -> Path:
        """The images folder this config points at."""
        if self.data.images:
            return Path(self.data.images)
        return Path(self.data.root) / "datasets" / self.data.dataset

    def dataset_name(self) -> str:
        """The dataset's name (run history, bundle.json, default run folders): the images folder's name, or ``data.dataset``."""
        return Path(self.data.images).name if self.data.images else self.data.dataset

    def validate(self) -> "Config":
        """Every setting against its declaration (:mod:`imgclf.config.schema`), then the one rule that joins two
        keys (an engine runs only its own precisions); returns self."""
        for name in SECTIONS:
            check_section(name, getattr(self, name))
        e = self.engine
        runs = ENGINE_PRECISIONS.get(e.backend)
        if e.precision != "auto" and runs is not None and e.precision not in runs:
            able = [b for b, p in ENGINE_PRECISIONS.items() if e.precision in p]
            raise ConfigError(f"engine.backend {e.backend!r} cannot run engine.precision {e.precision!r} "
                              f"(it runs {', '.join(runs)})", hint=f"use engine.backend = {' or '.join(map(repr, able))}")
        return self

    def with_change(self, key: str, value: Any, by: str) -> "Config":
        """A copy with ``key`` (``section.key``) set to ``value`` by ``by`` (a preset, a command, another key), the
        change logged and recorded in ``changed``; self itself when the value is already that."""
        sec, k = key.split(".")
        before = getattr(getattr(self, sec), k)
        if before == value:
            return self
        log.info("%s = %s (was %s): set by %s", key, json.dumps(value), json.dumps(before), by)
        out = copy.deepcopy(self)
        setattr(getattr(out, sec), k, copy.deepcopy(value))
        out.changed.append({"key": key, "from": before, "to": value, "by": by})
        return out

    def refine_model(self) -> ModelConfig:
        """The network refinement trains: ``model`` with ``refine.backbone`` / ``refine.resolution`` where set."""
        return dataclasses.replace(self.model, backbone=self.refine.backbone or self.model.backbone,
                                   resolution=self.refine.resolution or self.model.resolution)

    def for_refinement(self) -> "Config":
        """A copy whose ``model`` is :meth:`refine_model` (what every refinement step reads)."""
        return dataclasses.replace(self, model=self.refine_model())


#: Section name -> its class, in the order of :class:`Config`.
SECTIONS: dict[str, type] = {f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)
                             if f.name != "changed"}
#: Keys renamed since the previous release: still read from --set, --config files and saved run configs.
RENAMED = {"train.time_limit": "train.time_limit_s", "svm.max_seconds": "svm.max_s",
           "refine.max_seconds": "refine.max_s", "model.ensemble": "model.featurizers"}


def all_keys() -> list[str]:
    """Every ``section.key``, in declaration order."""
    return [f"{sec}.{f.name}" for sec, cls in SECTIONS.items() for f, _ in fields_of(cls)]


def _unknown(sec: str, k: str | None, source: str) -> ConfigError:
    """The error for an unknown section (``k`` None) or key, with the closest valid names."""
    if k is None:
        close = difflib.get_close_matches(sec, SECTIONS, n=1)
        guess = f"; did you mean [{close[0]}]?" if close else ""
        return ConfigError(f"unknown section {sec!r} in {source}{guess}",
                           hint=f"sections: {', '.join(SECTIONS)}; every key: `imgclf config --explain`")
    keys = all_keys()
    close = difflib.get_close_matches(f"{sec}.{k}", keys, n=1) or [x for x in keys if x.endswith(f".{k}")][:1]
    guess = f"; did you mean {close[0]}?" if close else ""
    return ConfigError(f"unknown key {sec}.{k} in {source}{guess}",
                       hint=f"keys of [{sec}]: {', '.join(f.name for f, _ in fields_of(SECTIONS[sec]))}; "
                            "every key: `imgclf config --explain`")


def apply_dict(cfg: Config, values: dict[str, Any], source: str = "config", reported: set[str] | None = None) -> Config:
    """Apply a nested ``{section: {key: value}}`` mapping onto ``cfg``, each value checked against its type.

    A key of :data:`RENAMED` sets its new name and is logged as renamed once per ``reported`` set; a
    ``changed`` list (a saved run's record, see :attr:`Config.changed`) is not a setting and is skipped."""
    for sec, kv in values.items():
        if sec == "changed" and isinstance(kv, list):
            continue
        if sec not in SECTIONS:
            raise _unknown(sec, None, source)
        if not isinstance(kv, dict):
            raise ConfigError(f"section {sec!r} in {source} must be a table of keys; got {kv!r}", hint=HINT)
        obj = getattr(cfg, sec)
        types = {f.name: tp for f, tp in fields_of(type(obj))}
        for k, v in kv.items():
            old = f"{sec}.{k}"
            if old in RENAMED:
                k = RENAMED[old].split(".", 1)[1]
                if reported is None or old not in reported:
                    log.warning("%s is now %s (read from %s)", old, RENAMED[old], source)
                    if reported is not None:
                        reported.add(old)
            if k not in types:
                raise _unknown(sec, k, source)
            setattr(obj, k, coerce(f"{sec}.{k}", types[k], v))
    return cfg


@dataclass(frozen=True)
class Uses:
    """The settings one command reads (``sections``), and those a model bundle fixes (``fixed``) for a
    command that loads one: a ``--set`` of any other key is refused with the reason."""

    command: str
    sections: tuple[str, ...]
    fixed: tuple[str, ...] = ()

    def check(self, key: str) -> None:
        """Nothing when this command reads ``key`` (``section.key``); else the ConfigError saying why not."""
        sec = key.split(".")[0]
        if sec in self.sections:
            return
        reads = ", ".join(f"{s}.*" for s in self.sections)
        if sec in self.fixed:
            raise ConfigError(f"{self.command} does not use {key}: the model bundle decides it (fixed when the bundle was trained)",
                              hint=f"drop --set {key}; {self.command} reads {reads}; to change it, train a new bundle")
        raise ConfigError(f"{self.command} does not use {key}; it reads {reads}",
                          hint=f"drop --set {key} (every key and what it does: `imgclf config --explain`)")


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] | None = None, *,
                base: Config | None = None, flags: Sequence[str] = (), uses: Uses | None = None) -> Config:
    """The one precedence rule of every command, lowest first; the result is validated.

    1. ``base``: what is already known (a run's saved config, a bundle's engine), else the defaults;
    2. the TOML/JSON file ``path`` (``--config``);
    3. ``flags``: the command's own options (``--images``, ``--host``, ...) as ``section.key=value``;
    4. ``overrides``: ``--set section.key=value``, which always win.

    ``uses``: the sections a command reads; a ``--set`` of any other key is refused (it would be ignored).
    A featurizer key given (:data:`PINNED_BY`) pins ``train.candidates`` to it, recorded in ``changed``.
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
            if uses is not None and source == "--set":
                uses.check(RENAMED.get(f"{sec}.{k}", f"{sec}.{k}"))
            given.add(f"{sec}.{k}")
    given = {RENAMED.get(key, key) for key in given}
    cfg = cfg.validate()  # a mistake is reported before any change is announced
    pinned = sorted(given.intersection(PINNED_BY))
    if pinned and "train.candidates" not in given:  # the user's featurizer: the preset has nothing to choose
        cfg = cfg.with_change("train.candidates", ["+".join(featurizer_names(cfg.model))], by=f"the featurizer given ({', '.join(pinned)})")
    return cfg


def featurizer_names(model: ModelConfig) -> list[str]:
    """``NAME@RESOLUTION`` of every featurizer of ``model``: model.backbone's, then model.featurizers'."""
    return [f"{model.backbone}@{model.resolution}", *model.featurizers]


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a Config from ``Config.to_dict()`` output (e.g. a run's config.json), its ``changed`` record too."""
    cfg = apply_dict(Config(), values, source="saved config").validate()
    cfg.changed = list(values.get("changed") or [])
    return cfg


def to_toml(cfg: Config) -> str:
    """The config as TOML that ``load_config`` reads back, each key under a comment with its help, unit and
    what it accepts; what a preset or command changed is listed first, as comments."""
    lines = [f"# changed: {c['key']} = {json.dumps(c['to'])} (was {json.dumps(c['from'])}) by {c['by']}" for c in cfg.changed]
    lines += [""] if lines else []
    for sec, cls in SECTIONS.items():
        lines.append(f"[{sec}]")
        for f, tp in fields_of(cls):
            spec = spec_of(f)
            unit = f"; unit: {spec.unit}" if spec.unit else ""
            lines.append(f"# {spec.help} ({describe(tp, spec)}{unit})")
            lines.append(f"{f.name} = {json.dumps(getattr(getattr(cfg, sec), f.name))}")
        lines.append("")
    return "\n".join(lines)


def flatten(cfg: Config) -> dict[str, Any]:
    """``{"section.key": value}`` for every key (for run tracking)."""
    return {f"{s}.{k}": v for s in SECTIONS for k, v in dataclasses.asdict(getattr(cfg, s)).items()}
