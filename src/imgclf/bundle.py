"""The model bundle: one folder that ``predict``, the REST service and the web UI all load.

    model/
      bundle.json      what the model is: labels, backbone, resolution, preprocessing, classifier
      head.npz         the linear classifier (weight, bias, temperature, l2_normalize)
      backbone.safetensors   refined featurizer weights (only when the network was refined)
      featurizer.onnx  the featurizer exported for ONNX Runtime (when exported)
      metrics.json     test metrics of the run that made it
      manifest.json    SHA-256 of every file above; a mismatch refuses the load

Nothing in a bundle is a pickle. A bundle is written into a temp folder and swapped into place,
so an interrupted save leaves the previous bundle loadable.
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

from .config import EngineConfig, ModelConfig
from .errors import BundleError
from .features.backbones import DataSpec
from .features.ids import FeatureId
from .fileio import read_json, read_npz, sha256_file, write_json, write_npz
from .linear import LinearHead

FORMAT = "imgclf-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_ENGINES = ("openvino", "onnxruntime")  # engines that run the bundle's featurizer.onnx (torch rebuilds the network)
_WRITTEN = ("format", "format_version", "created")  # keys write_bundle adds itself


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
    def kind(self) -> str:
        """The classifier type (the trainer's name)."""
        return str(self.classifier.get("type", ""))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        if d["training_history"] is None:
            del d["training_history"]
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
        return read_json(p) if p.exists() else {}

    def file(self, name: str) -> Path | None:
        """Path of a bundled file named in bundle.json's featurizer section, or None."""
        name = self.meta.featurizer.get(name)
        return self.dir / name if name else None

    def state_dict(self) -> dict | None:
        """Refined featurizer weights, or None for the backbone's pretrained weights."""
        p = self.file("state_dict")
        if p is None:
            return None
        from safetensors.torch import load_file

        return load_file(str(p))

    def build_engine(self, engine_cfg: EngineConfig, **kw: Any):
        """The featurizer of this bundle on the engine ``engine_cfg.backend``."""
        from .features.engines import build_engine, resolve_engine
        from .features.featurize import build_featurizer

        f = self.meta.featurizer
        onnx = self.file("onnx")
        engine_cfg = resolve_engine(engine_cfg)
        if onnx is not None and engine_cfg.backend in ONNX_ENGINES:
            return build_engine(None, self.spec, f["feature_id"], engine_cfg, onnx_path=onnx, **kw)
        return build_featurizer(self._model_cfg(), engine_cfg, state_dict=self.state_dict(), weights=f.get("weights", "imagenet"), **kw)

    def fp32_engine(self, threads: int = 0, cache_dir: str | os.PathLike | None = None):
        """This bundle's network in fp32 on ONNX Runtime, whatever precision its featurizer.onnx has:
        the reference an int8 bundle is judged against. ``cache_dir`` keeps pretrained exports only."""
        from .features.featurize import build_featurizer

        state = self.state_dict()
        return build_featurizer(self._model_cfg(), EngineConfig(backend="onnxruntime", precision="fp32", threads=threads),
                                state_dict=state, weights=self.meta.featurizer.get("weights", "imagenet"),
                                cache_dir=cache_dir if state is None else None)

    def _model_cfg(self) -> ModelConfig:
        return ModelConfig(backbone=self.meta.backbone, resolution=self.meta.resolution, pretrained=True,
                           resampler="area" if self.spec.interpolation == "area" else "native")


def write_bundle(
    out_dir: str | os.PathLike,
    meta: BundleMeta,
    head: LinearHead,
    files: dict[str, str | os.PathLike] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write a complete bundle to ``out_dir`` (replacing any previous one atomically).

    ``files`` maps bundle file names to existing files to copy in (ONNX, safetensors).
    """
    out_dir = Path(out_dir)
    if head.weight.shape[0] != len(meta.labels):
        raise ValueError(f"head has {head.weight.shape[0]} classes but {len(meta.labels)} labels")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        full = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta.to_dict()}
        write_json(tmp / "bundle.json", full)
        write_npz(tmp / "head.npz", **head.to_arrays())
        for name, src in (files or {}).items():
            if Path(src).resolve() != (tmp / name).resolve():
                shutil.copyfile(src, tmp / name)
        if metrics is not None:
            write_json(tmp / "metrics.json", metrics)
        manifest = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        write_json(tmp / MANIFEST, {"algorithm": "sha256", "files": manifest})
        _swap_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _swap_dir(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def verify_bundle(bundle_dir: str | os.PathLike) -> dict[str, str]:
    """Check every file against manifest.json; raise :class:`BundleError` on any mismatch."""
    d = Path(bundle_dir)
    if not (d / "bundle.json").is_file():
        raise BundleError(
            f"{d} is not a model bundle (no bundle.json)",
            hint="point at RUN_DIR/model, written by `imgclf run` or `imgclf train`",
        )
    if not (d / MANIFEST).is_file():
        raise BundleError(f"model bundle {d} has no {MANIFEST}", hint="re-run `imgclf train` to rewrite the bundle")
    try:
        files = read_json(d / MANIFEST)["files"]
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"{d / MANIFEST} is not a valid manifest") from None
    for name, digest in files.items():
        p = d / name
        if Path(name).name != name or not p.is_file():
            raise BundleError(f"model bundle {d} is incomplete: {name} is missing")
        if sha256_file(p) != digest:
            raise BundleError(
                f"model bundle {d} was modified: SHA-256 of {name} does not match manifest.json",
                hint="the bundle is corrupt or tampered with; re-run `imgclf train` or restore it",
            )
    for required in ("bundle.json", "head.npz"):
        if required not in files:
            raise BundleError(f"model bundle {d}: {required} is not covered by the manifest")
    return files


def load_bundle(bundle_dir: str | os.PathLike) -> Bundle:
    """Verify and load a bundle (never unpickles anything)."""
    d = Path(bundle_dir)
    verify_bundle(d)
    try:
        meta = read_json(d / "bundle.json")
        head = LinearHead.from_arrays(read_npz(d / "head.npz"))
    except (ValueError, KeyError, OSError) as e:
        raise BundleError(f"model bundle {d} cannot be read: {e}") from None
    if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise BundleError(f"{d} has format {meta.get('format')} v{meta.get('format_version')}; this imgclf reads {FORMAT} v{FORMAT_VERSION}")
    return Bundle(d, BundleMeta.from_dict(meta), head)


def rewrite_bundle(bundle_dir: str | os.PathLike, *, metrics: dict[str, Any] | None = None, meta_update: dict[str, Any] | None = None,
                   files: dict[str, str | os.PathLike] | None = None) -> Bundle:
    """Write a verified bundle again with new metrics / meta keys / files (atomic swap)."""
    b = load_bundle(bundle_dir)
    keep = {n: b.dir / n for n in verify_bundle(b.dir) if n not in ("bundle.json", "head.npz", MANIFEST, "metrics.json")}
    keep.update(files or {})
    meta = BundleMeta.from_dict({**b.meta.to_dict(), **(meta_update or {})})
    with tempfile.TemporaryDirectory(dir=Path(bundle_dir).parent) as staging:
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
        engine = read_json(Path(bundle_dir) / "bundle.json").get("engine", {})
        return EngineConfig(**{k: v for k, v in engine.items() if k in ("backend", "precision", "threads")})
    except (OSError, ValueError, TypeError, AttributeError):
        return EngineConfig()
