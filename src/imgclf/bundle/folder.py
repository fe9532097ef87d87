"""The model bundle: one folder that ``predict``, the REST service and the web UI all load.

    model/
      bundle.json      what the model is: labels, backbone, resolution, preprocessing, classifier
      head.npz         the linear classifier (weight, bias, temperature, l2_normalize)
      backbone.safetensors   refined featurizer weights (only when the network was refined)
      featurizer.onnx  the featurizer exported for ONNX Runtime (when exported)
      trust.npz        the unknown-image detector (train features, out-of-fold scores); absent in older bundles
      featurizer-<i>.onnx    the i-th (from 1) further featurizer of a feature ensemble (bundle.json's
                       ``ensemble``): its L2-normalised features follow the first one's, each normalised too
      backbone-<i>.safetensors  refined weights of the i-th further featurizer (an ``ensemble`` member's state_dict)
      metrics.json     test metrics of the run that made it
      manifest.json    SHA-256 of every file above; a mismatch refuses the load

Nothing in a bundle is a pickle. Every file a load reads (bundle.json, head.npz, metrics.json
and the files bundle.json names) must be listed in the manifest and match it, else the load is
refused. The manifest checks integrity, not authenticity: whoever can write the folder can write
a matching manifest too.

A bundle is written into a temp folder ``.model.new-<pid>-*`` and swapped into place by two
renames (``model`` → ``.model.old-<pid>-<ns>``, then the new folder → ``model``). A process
killed between them leaves no ``model``; :func:`load_bundle` then loads the old folder (and,
once its writer is gone, renames it back), so at every instant the old or the new bundle loads.
The swap and its recovery live in :mod:`imgclf.bundle.swap`; the manifest, written last, marks a whole folder.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..classifier.linear import LinearHead
from ..config.settings import EngineConfig, ModelConfig
from ..features.backbones import OPENCV_RESAMPLERS, DataSpec
from ..features.engines import FlipAveraged, flip_id
from ..features.ids import FeatureId, join_ids
from ..trust.ood import OodDetector
from ..util.errors import BundleError, ImgclfError
from ..util.files import read_json, read_npz, sha256_file, write_json, write_npz
from .swap import remove_stale, resolve_dir, swap_dir

FORMAT = "imgclf-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
META = "bundle.json"  # what the bundle is: featurizers, classes, classifier, calibration
HEAD = "head.npz"  # the linear head every classifier reduces to
TRUST = "trust.npz"
ONNX_ENGINES = ("openvino", "onnxruntime")  # engines that run the bundle's featurizer.onnx (torch rebuilds the network)
_WRITTEN = ("format", "format_version", "created")  # keys write_bundle adds itself
_FILE_KEYS = ("onnx", "state_dict")  # keys of bundle.json's featurizer section that name a bundled file
_REBUILD = "re-run `imgclf train` (or `imgclf run`) to write the bundle again, or restore it from a copy"

@dataclass
class BundleMeta:
    """What bundle.json says of a model (serialised with the same keys, so older bundles load).

    ``featurizer``: weights ("imagenet" or "refined-<hash>"), feature_id, dim, and where present
    onnx (file name), state_dict (file name), precision, onnx_opset, quantization.
    ``classifier``: type (the trainer: svm, dnn, svm_on_refined), temperature, and the trainer's
    own choices (C, cv_folds, cv_class_avg_accuracy, refine settings).
    """

    labels: list[str]
    backbone: str
    resolution: int
    preprocessing: dict[str, Any]  # DataSpec.to_dict()
    featurizer: dict[str, Any]
    classifier: dict[str, Any]
    engine: dict[str, Any] = field(default_factory=dict)  # backend, precision, threads the model was made with
    dataset: str = ""
    training_history: list[dict[str, Any]] | None = None  # refined models: per-epoch errors and losses
    trust: dict[str, Any] | None = None  # the unknown-image detector: file (trust.npz), score, train images (absent: none)
    ensemble: list[dict[str, Any]] | None = None  # further featurizers: backbone, resolution, preprocessing and the featurizer keys
    tta: str | None = None  # "flip": each featurizer's features are the mean of the image's and its mirror image's (absent: none)
    extra: dict[str, Any] = field(default_factory=dict)  # keys written by a newer or other imgclf, kept as they are

    @classmethod
    def create(cls, model: ModelConfig, engine: EngineConfig, dataset: str, labels: list[str], spec: DataSpec,
               featurizer: dict[str, Any], classifier: dict[str, Any]) -> "BundleMeta":
        return cls(labels=list(labels), backbone=model.backbone, resolution=model.resolution, preprocessing=spec.to_dict(),
                   featurizer=featurizer, classifier=classifier,
                   engine={"backend": engine.backend, "precision": engine.precision, "threads": engine.threads},
                   dataset=dataset)

    @property
    def spec(self) -> DataSpec:
        return DataSpec.from_dict(self.preprocessing)

    @property
    def feature_id(self) -> FeatureId:
        return FeatureId.parse(self.featurizer["feature_id"])

    @property
    def feature_ids(self) -> str:
        """The features.npz id of the features this bundle's head reads (every featurizer's, joined)."""
        ids = [self.featurizer["feature_id"], *(m["feature_id"] for m in self.ensemble or ())]
        return join_ids([flip_id(i) for i in ids] if self.tta == "flip" else ids)

    @property
    def kind(self) -> str:
        """The classifier type (the trainer's name)."""
        return str(self.classifier.get("type", ""))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        for key in ("training_history", "trust", "ensemble", "tta"):
            if d[key] is None:
                del d[key]
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BundleMeta":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing = [k for k in ("labels", "backbone", "resolution", "preprocessing", "featurizer", "classifier") if k not in d]
        if missing:
            raise BundleError(f"bundle.json lacks {', '.join(missing)}", hint="re-run `imgclf train` to rewrite the bundle")
        return cls(**{k: v for k, v in d.items() if k in names and v is not None},
                   extra={k: v for k, v in d.items() if k not in names and k not in _WRITTEN})


@dataclass
class Bundle:
    dir: Path
    meta: BundleMeta
    head: LinearHead

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels)

    @property
    def spec(self) -> DataSpec:
        return self.meta.spec

    @property
    def metrics(self) -> dict[str, Any]:
        p = self.dir / "metrics.json"
        if not p.exists():
            return {}
        try:
            return read_json(p)
        except (ValueError, OSError) as e:
            raise BundleError(f"{p} is not valid JSON ({e})", hint=_REBUILD) from None

    def ood(self) -> OodDetector | None:
        """The unknown-image detector, or None for a bundle written without one (it then never answers "unknown")."""
        if not self.meta.trust or not (self.dir / TRUST).is_file():
            return None
        try:
            return OodDetector.from_arrays(read_npz(self.dir / TRUST))
        except (ValueError, KeyError, OSError, TypeError) as e:
            raise BundleError(f"{self.dir / TRUST} is not a plain NumPy archive of the detector's arrays ({e})",
                              hint=f"imgclf never unpickles a file; {_REBUILD}") from None

    def file(self, name: str) -> Path | None:
        """Path of a bundled file named in bundle.json's featurizer section, or None."""
        name = self.meta.featurizer.get(name)
        return self.dir / name if name else None

    def state_dict(self) -> dict | None:
        """Refined featurizer weights, or None for the backbone's pretrained weights."""
        return self._state_dict_of(self.meta.featurizer)

    def _state_dict_of(self, featurizer: dict[str, Any]) -> dict | None:
        """The refined weights a featurizer section (the first one or an ``ensemble`` member) names, or None."""
        name = featurizer.get("state_dict")
        if not name:
            return None
        p = self.dir / name
        from safetensors.torch import load_file

        with _readable(p, "safetensors"):
            return load_file(str(p))

    def build_engine(self, engine_cfg: EngineConfig, **kw: Any):
        """The (first) featurizer of this bundle on the engine ``engine_cfg.backend``."""
        return self._engine(self.meta.featurizer, self.spec, self._model_cfg(), engine_cfg, self.state_dict, **kw)

    def build_engines(self, engine_cfg: EngineConfig, **kw: Any) -> list:
        """Every featurizer of this bundle, in the order the head reads their features (one unless an ensemble),
        each averaging the image and its mirror image when the bundle says ``tta = "flip"``."""
        engines = [self.build_engine(engine_cfg, **kw)]
        for m in self.meta.ensemble or ():
            spec = DataSpec.from_dict(m["preprocessing"])
            model = dataclasses.replace(self._model_cfg(), backbone=m["backbone"], resolution=int(m["resolution"]))
            engines.append(self._engine(m, spec, model, engine_cfg, lambda m=m: self._state_dict_of(m), **kw))
        return [FlipAveraged(e) for e in engines] if self.meta.tta == "flip" else engines

    def _engine(self, f: dict[str, Any], spec: DataSpec, model: ModelConfig, engine_cfg: EngineConfig, state_dict: Any, **kw: Any):
        from ..features.engines import build_engine, resolve_engine
        from ..features.featurize import build_featurizer

        onnx = self.dir / f["onnx"] if f.get("onnx") else None
        engine_cfg = resolve_engine(engine_cfg)
        if onnx is not None and engine_cfg.backend in ONNX_ENGINES:
            with _readable(onnx, {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}[engine_cfg.backend]):
                return build_engine(None, spec, f["feature_id"], engine_cfg, onnx_path=onnx, **kw)
        return build_featurizer(model, engine_cfg, state_dict=state_dict(), weights=f.get("weights", "imagenet"), **kw)

    def fp32_engine(self, threads: int = 0, cache_dir: str | os.PathLike | None = None):
        """This bundle's network in fp32 on ONNX Runtime, whatever precision its featurizer.onnx has:
        the reference an int8 bundle is judged against. ``cache_dir`` keeps pretrained exports only."""
        from ..features.featurize import build_featurizer

        state = self.state_dict()
        return build_featurizer(self._model_cfg(), EngineConfig(backend="onnxruntime", precision="fp32", threads=threads),
                                state_dict=state, weights=self.meta.featurizer.get("weights", "imagenet"),
                                cache_dir=cache_dir if state is None else None)

    def _model_cfg(self) -> ModelConfig:
        return ModelConfig(backbone=self.meta.backbone, resolution=self.meta.resolution, pretrained=True,
                           resampler=self.spec.interpolation if self.spec.interpolation in OPENCV_RESAMPLERS else "native")


class _readable:
    """Turn any failure to read a bundled model file into one BundleError line (not a protobuf traceback)."""

    def __init__(self, path: Path, reader: str):
        self.path, self.reader = path, reader

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, e: BaseException | None, tb: object) -> bool:
        if e is None or isinstance(e, (ImgclfError, KeyboardInterrupt, MemoryError)) or not isinstance(e, Exception):
            return False
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise BundleError(f"{self.path} cannot be loaded by {self.reader}: {first}",
                          hint=f"the file is damaged or not what the bundle says; {_REBUILD}") from None


def write_bundle(
    out_dir: str | os.PathLike,
    meta: BundleMeta,
    head: LinearHead,
    files: dict[str, str | os.PathLike] | None = None,
    metrics: dict[str, Any] | None = None,
    ood: OodDetector | None = None,
) -> Path:
    """Write a complete bundle to ``out_dir`` (replacing any previous one atomically).

    ``files`` maps bundle file names to existing files to copy in (ONNX, safetensors); ``ood`` the
    unknown-image detector (trust.npz, named in bundle.json's ``trust``).
    """
    out_dir = Path(out_dir)
    if head.weight.shape[0] != len(meta.labels):
        raise ValueError(f"head has {head.weight.shape[0]} classes but {len(meta.labels)} labels")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir, MANIFEST)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-{os.getpid()}-", dir=out_dir.parent))
    try:
        if ood is not None:
            write_npz(tmp / TRUST, **ood.to_arrays())
            meta = dataclasses.replace(meta, trust={"file": TRUST, "score": "knn+maxlogit", "neighbors": ood.neighbors,
                                                    "train_images": int(len(ood.train_scores))})
        full = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta.to_dict()}
        write_json(tmp / META, full)
        write_npz(tmp / HEAD, **head.to_arrays())
        for name, src in (files or {}).items():
            if Path(src).resolve() != (tmp / name).resolve():
                shutil.copyfile(src, tmp / name)
        if metrics is not None:
            write_json(tmp / "metrics.json", metrics)
        manifest = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        write_json(tmp / MANIFEST, {"algorithm": "sha256", "files": manifest})
        swap_dir(tmp, out_dir, MANIFEST)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def verify_bundle(bundle_dir: str | os.PathLike) -> dict[str, str]:
    """Check every file against manifest.json; raise :class:`BundleError` on any mismatch, and when a
    file a load reads (bundle.json, head.npz, metrics.json, the files bundle.json names) is not listed."""
    d = resolve_dir(Path(bundle_dir), MANIFEST)
    if not (d / META).is_file():
        raise BundleError(
            f"{d} is not a model bundle (no bundle.json)",
            hint="point at RUN_DIR/model, written by `imgclf run` or `imgclf train`",
        )
    if not (d / MANIFEST).is_file():
        raise BundleError(f"model bundle {d} has no {MANIFEST}", hint=_REBUILD)
    try:
        files = read_json(d / MANIFEST)["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise TypeError
    except (ValueError, KeyError, TypeError, OSError):
        raise BundleError(f"{d / MANIFEST} is not a valid manifest: expected {{\"files\": {{name: sha256}}}}",
                          hint=_REBUILD) from None
    for name, digest in files.items():
        p = d / name
        if Path(name).name != name or not p.is_file():
            raise BundleError(f"model bundle {d} is incomplete: {name} (listed in {MANIFEST}) is missing", hint=_REBUILD)
        if sha256_file(p) != digest:
            raise BundleError(
                f"model bundle {d} was modified: SHA-256 of {name} does not match manifest.json",
                hint="the bundle is corrupt or tampered with; re-run `imgclf train` or restore it",
            )
    for name in _loaded_files(d):
        if name not in files:
            raise BundleError(f"model bundle {d}: {name} is read by a load but not listed in {MANIFEST}, so it is "
                              "refused unchecked", hint=_REBUILD)
    return files


def _loaded_files(d: Path) -> list[str]:
    """Every file a load of ``d`` reads: bundle.json, head.npz, metrics.json and trust.npz when present, and the files
    bundle.json's featurizer section names (run only after bundle.json matched the manifest)."""
    names = [META, HEAD] + [n for n in ("metrics.json", TRUST) if (d / n).exists()]
    try:
        meta = read_json(d / META)
        featurizers = [("featurizer", meta.get("featurizer", {}))]
    except (OSError, ValueError, AttributeError):
        raise BundleError(f"{d / META} is not valid JSON", hint=_REBUILD) from None
    ensemble = meta.get("ensemble") or []
    featurizers += [(f"ensemble[{i}]", m) for i, m in enumerate(ensemble if isinstance(ensemble, list) else [ensemble])]
    for where, featurizer in featurizers:
        for key in _FILE_KEYS:
            name = featurizer.get(key) if isinstance(featurizer, dict) else None
            if name:
                if not isinstance(name, str) or Path(name).name != name:
                    raise BundleError(f"{d / META}: {where}.{key} must be a file name inside the bundle; got {name!r}",
                                      hint=_REBUILD)
                names.append(name)
    return names


def load_bundle(bundle_dir: str | os.PathLike) -> Bundle:
    """Verify and load a bundle (never unpickles anything)."""
    d = resolve_dir(Path(bundle_dir), MANIFEST)
    verify_bundle(d)
    try:
        meta = read_json(d / META)
    except (ValueError, OSError) as e:
        raise BundleError(f"{d / META} cannot be read: {e}", hint=_REBUILD) from None
    try:
        head = LinearHead.from_arrays(read_npz(d / HEAD))
    except (ValueError, KeyError, OSError, TypeError) as e:
        raise BundleError(f"{d / HEAD} is not a plain NumPy archive of the classifier's arrays ({e})",
                          hint=f"imgclf never unpickles a file; {_REBUILD}") from None
    version = meta.get("format_version", 0) if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(version, int) or version > FORMAT_VERSION:
        got = (meta.get("format"), meta.get("format_version")) if isinstance(meta, dict) else (type(meta).__name__, "?")
        raise BundleError(f"{d} has format {got[0]} v{got[1]}; this imgclf reads {FORMAT} v{FORMAT_VERSION}",
                          hint="load it with the imgclf that wrote it, or " + _REBUILD)
    return Bundle(d, BundleMeta.from_dict(meta), head)


def rewrite_bundle(bundle_dir: str | os.PathLike, *, metrics: dict[str, Any] | None = None, meta_update: dict[str, Any] | None = None,
                   files: dict[str, str | os.PathLike] | None = None) -> Bundle:
    """Write a verified bundle again with new metrics / meta keys / files (atomic swap)."""
    b = load_bundle(bundle_dir)
    keep = {n: b.dir / n for n in verify_bundle(b.dir) if n not in (META, HEAD, MANIFEST, "metrics.json")}
    keep.update(files or {})
    meta = BundleMeta.from_dict({**b.meta.to_dict(), **(meta_update or {})})
    target = Path(bundle_dir)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.stage-{os.getpid()}-", dir=target.parent) as staging:
        staged = {}
        for n, src in keep.items():  # the swap removes the old folder: stage its files first
            staged[n] = Path(staging) / n
            shutil.copyfile(src, staged[n])
        write_bundle(bundle_dir, meta, b.head, staged, metrics if metrics is not None else (b.metrics or None))
    return load_bundle(bundle_dir)


def describe(bundle: Bundle) -> str:
    m = bundle.meta
    return json.dumps({"labels": m.labels, "backbone": m.backbone, "resolution": m.resolution, "classifier": m.classifier})


def bundle_engine(bundle_dir: str | os.PathLike) -> EngineConfig:
    """The engine settings a bundle was made with (defaults where bundle.json is absent or unreadable:
    loading the bundle then reports what is wrong with it)."""
    try:
        engine = read_json(Path(bundle_dir) / META).get("engine", {})
        return EngineConfig(**{k: v for k, v in engine.items() if k in ("backend", "precision", "threads")})
    except (OSError, ValueError, TypeError, AttributeError):
        return EngineConfig()
