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

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backbones import DataSpec
from .errors import BundleError
from .fileio import read_json, read_npz, sha256_file, write_json, write_npz
from .linear import LinearHead

FORMAT = "imgclf-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class Bundle:
    dir: Path
    meta: dict[str, Any]
    head: LinearHead

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def spec(self) -> DataSpec:
        return DataSpec.from_dict(self.meta["preprocessing"])

    @property
    def metrics(self) -> dict[str, Any]:
        p = self.dir / "metrics.json"
        return read_json(p) if p.exists() else {}

    def file(self, name: str) -> Path | None:
        """Path of a bundled file named in bundle.json's featurizer section, or None."""
        name = self.meta.get("featurizer", {}).get(name)
        return self.dir / name if name else None

    def state_dict(self) -> dict | None:
        """Refined featurizer weights, or None for the backbone's pretrained weights."""
        p = self.file("state_dict")
        if p is None:
            return None
        from safetensors.torch import load_file

        return load_file(str(p))

    def build_engine(self, engine_cfg: Any, **kw: Any):
        """The featurizer of this bundle on the engine ``engine_cfg.backend``."""
        from .engines import build_engine
        from .featurize import build_featurizer

        f = self.meta["featurizer"]
        onnx = self.file("onnx")
        if engine_cfg.backend == "onnxruntime" and onnx is not None:
            return build_engine(None, self.spec, f["feature_id"], engine_cfg, onnx_path=onnx, **kw)
        return build_featurizer(self._model_cfg(), engine_cfg, state_dict=self.state_dict(), weights=f.get("weights", "imagenet"), **kw)

    def fp32_engine(self, threads: int = 0, cache_dir: str | os.PathLike | None = None):
        """This bundle's network in fp32 on ONNX Runtime, whatever precision its featurizer.onnx has:
        the reference an int8 bundle is judged against. ``cache_dir`` keeps pretrained exports only."""
        from .config import EngineConfig
        from .featurize import build_featurizer

        state = self.state_dict()
        return build_featurizer(self._model_cfg(), EngineConfig(backend="onnxruntime", precision="fp32", threads=threads),
                                state_dict=state, weights=self.meta["featurizer"].get("weights", "imagenet"),
                                cache_dir=cache_dir if state is None else None)

    def _model_cfg(self) -> Any:
        from .config import ModelConfig

        return ModelConfig(backbone=self.meta["backbone"], resolution=self.meta["resolution"], pretrained=True)


def write_bundle(
    out_dir: str | os.PathLike,
    meta: dict[str, Any],
    head: LinearHead,
    files: dict[str, str | os.PathLike] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write a complete bundle to ``out_dir`` (replacing any previous one atomically).

    ``meta`` needs labels, backbone, resolution, preprocessing, featurizer, classifier;
    ``files`` maps bundle file names to existing files to copy in (ONNX, safetensors).
    """
    out_dir = Path(out_dir)
    for key in ("labels", "backbone", "resolution", "preprocessing", "featurizer", "classifier"):
        if key not in meta:
            raise ValueError(f"bundle meta lacks {key!r}")
    if head.weight.shape[0] != len(meta["labels"]):
        raise ValueError(f"head has {head.weight.shape[0]} classes but {len(meta['labels'])} labels")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        full = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta}
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
    return Bundle(d, meta, head)


def rewrite_bundle(bundle_dir: str | os.PathLike, *, metrics: dict[str, Any] | None = None, meta_update: dict[str, Any] | None = None,
                   files: dict[str, str | os.PathLike] | None = None) -> Bundle:
    """Write a verified bundle again with new metrics / meta keys / files (atomic swap)."""
    b = load_bundle(bundle_dir)
    keep = {n: b.dir / n for n in verify_bundle(b.dir) if n not in ("bundle.json", "head.npz", MANIFEST, "metrics.json")}
    keep.update(files or {})
    meta = {k: v for k, v in b.meta.items() if k not in ("format", "format_version", "created")}
    meta.update(meta_update or {})
    with tempfile.TemporaryDirectory(dir=Path(bundle_dir).parent) as staging:
        staged = {}
        for n, src in keep.items():  # the swap removes the old folder: stage its files first
            staged[n] = Path(staging) / n
            shutil.copyfile(src, staged[n])
        write_bundle(bundle_dir, meta, b.head, staged, metrics if metrics is not None else (b.metrics or None))
    return load_bundle(bundle_dir)


def describe(bundle: Bundle) -> str:
    return json.dumps({k: bundle.meta[k] for k in ("labels", "backbone", "resolution", "classifier")})
