"""The model bundle: one folder that ``predict``, the REST service and the web UI all load.

    model/
      bundle.json      what the model is: labels, backbone, resolution, preprocessing, classifier
      head.npz         the linear classifier (weight, bias, temperature, l2_normalize)
      backbone.safetensors   refined featurizer weights (only when the network was refined)
      featurizer.onnx  the featurizer exported for ONNX Runtime (when exported)
      trust.npz        the unknown-image detector (train features, out-of-fold scores); absent in older bundles
      featurizer-<i>.onnx    the i-th (from 1) further featurizer (bundle.json's ``featurizers``): its
                       L2-normalised features follow the first one's, each normalised too
      backbone-<i>.safetensors  refined weights of the i-th further featurizer (a ``featurizers`` entry's state_dict)
      metrics.json     test metrics of the run that made it
      manifest.json    SHA-256 of every file above; a mismatch refuses the load

Format version 2 names the further featurizers ``featurizers``; version 1 called them ``ensemble``
and still loads (read as ``featurizers``).

Nothing in a bundle is a pickle. Every file a load reads (bundle.json, head.npz, metrics.json,
trust.npz and the files bundle.json names) must be listed in the manifest and match it, else the
load is refused. :func:`load_bundle` reads each file once, checks the bytes it read and keeps them:
nothing of a loaded :class:`Bundle` reads the folder again, so replacing or moving the folder under
a running server changes nothing it answers (class activation maps included). An ONNX file that
keeps its weights in external data files (which the manifest cannot cover) is refused. The
manifest checks integrity, not authenticity: whoever can write the folder can write a matching
manifest too.

A bundle is written into a temp folder ``.model.new-<pid>-*`` and swapped into place by two
renames (``model`` → ``.model.old-<pid>-<ns>``, then the new folder → ``model``). A process
killed between them leaves no ``model``; :func:`locate_bundle`, which every load goes through, then
answers the old folder (and, once its writer is gone, renames it back), so at every instant the old
or the new bundle loads, whichever command or route opens it.
The swap and its recovery live in :mod:`imgclf.bundle.swap`; the manifest, written last, marks a whole folder.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..classifier.linear import LinearHead
from ..config.settings import EngineConfig, ModelConfig
from ..features.backbones import OPENCV_RESAMPLERS, DataSpec
from ..features.engines import FlipAveraged, flip_id
from ..features.ids import FeatureId, join_ids
from ..trust.ood import OodDetector
from ..util.errors import BundleError, ImgclfError, ModelFileError
from ..util.files import read_json, sha256_bytes, sha256_file, write_json, write_npz
from .swap import link_or_copy, remove_stale, resolve_dir, swap_dir

FORMAT = "imgclf-bundle"
FORMAT_VERSION = 2
V1_FEATURIZERS = "ensemble"  # what format version 1 called bundle.json's "featurizers"
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
    featurizers: list[dict[str, Any]] | None = None  # further featurizers: backbone, resolution, preprocessing and the featurizer keys
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
        ids = [self.featurizer["feature_id"], *(m["feature_id"] for m in self.featurizers or ())]
        return join_ids([flip_id(i) for i in ids] if self.tta == "flip" else ids)

    @property
    def kind(self) -> str:
        """The classifier type (the trainer's name)."""
        return str(self.classifier.get("type", ""))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        for key in ("training_history", "trust", "featurizers", "tta"):
            if d[key] is None:
                del d[key]
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BundleMeta":
        """What bundle.json holds (version 1's ``ensemble`` read as ``featurizers``)."""
        if V1_FEATURIZERS in d and "featurizers" not in d:
            d = {("featurizers" if k == V1_FEATURIZERS else k): v for k, v in d.items()}
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing = [k for k in ("labels", "backbone", "resolution", "preprocessing", "featurizer", "classifier") if k not in d]
        if missing:
            raise BundleError(f"bundle.json lacks {', '.join(missing)}", hint="re-run `imgclf train` to rewrite the bundle")
        return cls(**{k: v for k, v in d.items() if k in names and v is not None},
                   extra={k: v for k, v in d.items() if k not in names and k not in _WRITTEN})


@dataclass
class Bundle:
    """A loaded bundle: ``contents`` holds every file it lists, as read and checked once by :func:`load_bundle`."""

    dir: Path
    meta: BundleMeta
    head: LinearHead
    contents: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels)

    @property
    def spec(self) -> DataSpec:
        return self.meta.spec

    @property
    def metrics(self) -> dict[str, Any]:
        data = self.contents.get("metrics.json")
        if data is None:
            return {}
        try:
            return json.loads(data)
        except ValueError as e:
            raise BundleError(f"{self.dir / 'metrics.json'} is not valid JSON ({e})", hint=_REBUILD) from None

    def ood(self) -> OodDetector | None:
        """The unknown-image detector, or None for a bundle written without one (it then never answers "unknown")."""
        if not self.meta.trust or TRUST not in self.contents:
            return None
        try:
            return OodDetector.from_arrays(_npz(self.contents[TRUST]))
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
        """The refined weights a featurizer section (the first one or a ``featurizers`` entry) names, or None."""
        name = featurizer.get("state_dict")
        if not name:
            return None
        from safetensors.torch import load

        with _readable(self.dir / name, "safetensors"):
            return load(self.contents[name])

    def build_engine(self, engine_cfg: EngineConfig, **kw: Any):
        """The (first) featurizer of this bundle on the engine ``engine_cfg.backend``."""
        return self._engine(self.meta.featurizer, self.spec, self._model_cfg(), engine_cfg, self.state_dict, **kw)

    def build_engines(self, engine_cfg: EngineConfig, **kw: Any) -> list:
        """Every featurizer of this bundle, in the order the head reads their features (one unless an ensemble),
        each averaging the image and its mirror image when the bundle says ``tta = "flip"``."""
        engines = [self.build_engine(engine_cfg, **kw)]
        for m in self.meta.featurizers or ():
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
                return build_engine(None, spec, f["feature_id"], engine_cfg, onnx_path=onnx, onnx_model=self.contents[f["onnx"]],
                                    **kw)
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
        if isinstance(e, ModelFileError):  # the runtime's own words, said of the bundle's file
            first = e.detail[:300]
        elif e is None or isinstance(e, (ImgclfError, KeyboardInterrupt, MemoryError)) or not isinstance(e, Exception):
            return False
        else:
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
    link: bool = False,
) -> Path:
    """Write a complete bundle to ``out_dir`` (replacing any previous one atomically).

    ``files`` maps bundle file names to existing files to copy in (ONNX, safetensors), hard-linked instead
    with ``link`` (copied where the file system has no hard links); ``ood`` the unknown-image detector
    (trust.npz, named in bundle.json's ``trust``).
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
                (link_or_copy if link else shutil.copyfile)(src, tmp / name)
        if metrics is not None:
            write_json(tmp / "metrics.json", metrics)
        _publish(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def copy_bundle(bundle: Bundle, out_dir: str | os.PathLike) -> Path:
    """Write a loaded bundle to ``out_dir`` from the bytes its load checked (not from its folder again),
    replacing a bundle there atomically; the copy is loaded and verified before it replaces anything."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir, MANIFEST)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-{os.getpid()}-", dir=out_dir.parent))
    try:
        for name, data in bundle.contents.items():
            (tmp / name).write_bytes(data)
        _publish(tmp, out_dir, check=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _publish(tmp: Path, out_dir: Path, check: bool = False) -> None:
    """The manifest of every file in the staged folder ``tmp``, then ``tmp`` swapped in place of ``out_dir``."""
    manifest = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    write_json(tmp / MANIFEST, {"algorithm": "sha256", "files": manifest})
    if check:
        _read_verified(tmp)
    swap_dir(tmp, out_dir, MANIFEST)


def locate_bundle(bundle_dir: str | os.PathLike) -> Path:
    """The folder that holds the bundle ``bundle_dir``: itself or, after a writer was killed between the two
    renames of a swap, the old folder it had moved aside (see :mod:`imgclf.bundle.swap`). Every command and
    route that opens a bundle goes through here (by :func:`load_bundle`); BundleError when there is none."""
    d = resolve_dir(Path(bundle_dir), MANIFEST)
    if not d.exists():
        raise BundleError(f"{d} is not a model bundle: the folder is missing",
                          hint=f"run `imgclf train --run-dir {d.parent}` first (or `imgclf run`), or point at RUN_DIR/model")
    return d


def verify_bundle(bundle_dir: str | os.PathLike) -> dict[str, str]:
    """Check every file against manifest.json; raise :class:`BundleError` on any mismatch, and when a
    file a load reads (bundle.json, head.npz, metrics.json, the files bundle.json names) is not listed.
    Returns the manifest (file name → SHA-256)."""
    d = locate_bundle(bundle_dir)
    return {name: sha256_bytes(data) for name, data in _read_verified(d).items()}


def _manifest(d: Path) -> dict[str, str]:
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
    return files


def _read_verified(d: Path) -> dict[str, bytes]:
    """Every file manifest.json lists, read once and checked against it (the bytes checked are the bytes
    returned); refuses a bundle whose loads would read a file the manifest does not list, and an ONNX
    file with external data."""
    files = _manifest(d)
    contents: dict[str, bytes] = {}
    for name, digest in files.items():
        p = d / name
        if Path(name).name != name or not p.is_file():
            raise BundleError(f"model bundle {d} is incomplete: {name} (listed in {MANIFEST}) is missing", hint=_REBUILD)
        data = p.read_bytes()
        if sha256_bytes(data) != digest:
            raise BundleError(
                f"model bundle {d} was modified: SHA-256 of {name} does not match manifest.json",
                hint="the bundle is corrupt or tampered with; re-run `imgclf train` or restore it",
            )
        contents[name] = data
    if META not in contents:
        raise BundleError(f"model bundle {d}: {META} is read by a load but not listed in {MANIFEST}, so it is "
                          "refused unchecked", hint=_REBUILD)
    for name, onnx in _loaded_files(d, contents[META]):
        if name not in files:
            raise BundleError(f"model bundle {d}: {name} is read by a load but not listed in {MANIFEST}, so it is "
                              "refused unchecked", hint=_REBUILD)
        if onnx:
            _refuse_external_data(d / name, contents[name])
    return contents


def _loaded_files(d: Path, meta_bytes: bytes) -> list[tuple[str, bool]]:
    """(name, is an ONNX file) of every file a load of ``d`` reads: bundle.json, head.npz, metrics.json and
    trust.npz when present, and the files bundle.json's featurizer sections name (``meta_bytes``: its checked content)."""
    names = [(META, False), (HEAD, False)] + [(n, False) for n in ("metrics.json", TRUST) if (d / n).exists()]
    try:
        meta = json.loads(meta_bytes)
        featurizers = [("featurizer", meta.get("featurizer", {}))]
    except (ValueError, AttributeError):
        raise BundleError(f"{d / META} is not valid JSON", hint=_REBUILD) from None
    key = "featurizers" if "featurizers" in meta else V1_FEATURIZERS
    more = meta.get(key) or []
    featurizers += [(f"{key}[{i}]", m) for i, m in enumerate(more if isinstance(more, list) else [more])]
    for where, featurizer in featurizers:
        for key in _FILE_KEYS:
            name = featurizer.get(key) if isinstance(featurizer, dict) else None
            if name:
                if not isinstance(name, str) or Path(name).name != name:
                    raise BundleError(f"{d / META}: {where}.{key} must be a file name inside the bundle; got {name!r}",
                                      hint=_REBUILD)
                names.append((name, key == "onnx"))
    return names


def _refuse_external_data(path: Path, data: bytes) -> None:
    """Refuse an ONNX file whose tensors live in files beside it: the manifest vouches for this file's bytes only.

    A tensor kept outside names its file under the key "location" (the ONNX format requires it), so a file
    without those bytes has none and is not parsed here: ``import onnx`` costs more than half a second of CPU
    in every process that loads a bundle, and the engine parses the file anyway.
    """
    if b"location" not in data:
        return
    import onnx

    with _readable(path, "onnx"):
        model = onnx.load_model_from_string(data)  # from bytes, external data is never loaded
    external = [t for t in _tensors([model.graph], [n for f in model.functions for n in f.node])
                if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        where = sorted({e.value for t in external for e in t.external_data if e.key == "location"})
        raise BundleError(f"{path} keeps {len(external)} weight tensor(s) in external data files ({', '.join(where)}), which "
                          f"{MANIFEST} does not cover", hint="save the ONNX file with its weights inside it "
                          "(onnx.save_model(model, path, save_as_external_data=False)), or " + _REBUILD)


def _tensors(graphs: list[Any], nodes: list[Any]) -> Iterator[Any]:
    """Every tensor of ``graphs`` (initializers, sparse ones, node attributes, subgraphs) and of ``nodes``' attributes."""
    for g in graphs:
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from _tensors([], list(g.node))
    for node in nodes:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            yield from _tensors(([a.g] if a.HasField("g") else []) + list(a.graphs), [])


def _npz(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file's content, never unpickling."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_bundle(bundle_dir: str | os.PathLike) -> Bundle:
    """Verify and load a bundle (never unpickles anything): every file it lists is read once, checked, and kept."""
    d = locate_bundle(bundle_dir)
    contents = _read_verified(d)
    try:
        meta = json.loads(contents[META])
    except ValueError as e:
        raise BundleError(f"{d / META} cannot be read: {e}", hint=_REBUILD) from None
    try:
        head = LinearHead.from_arrays(_npz(contents[HEAD]))
    except (ValueError, KeyError, OSError, TypeError) as e:
        raise BundleError(f"{d / HEAD} is not a plain NumPy archive of the classifier's arrays ({e})",
                          hint=f"imgclf never unpickles a file; {_REBUILD}") from None
    version = meta.get("format_version", 0) if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(version, int) or version > FORMAT_VERSION:
        got = (meta.get("format"), meta.get("format_version")) if isinstance(meta, dict) else (type(meta).__name__, "?")
        raise BundleError(f"{d} has format {got[0]} v{got[1]}; this imgclf reads {FORMAT} v{FORMAT_VERSION}",
                          hint="load it with the imgclf that wrote it, or " + _REBUILD)
    return Bundle(d, BundleMeta.from_dict(meta), head, contents)


def rewrite_bundle(bundle_dir: str | os.PathLike, *, metrics: dict[str, Any] | None = None, meta_update: dict[str, Any] | None = None,
                   files: dict[str, str | os.PathLike] | None = None) -> Bundle:
    """Write a verified bundle again with new metrics / meta keys / files (atomic swap)."""
    b = load_bundle(bundle_dir)
    meta = BundleMeta.from_dict({**b.meta.to_dict(), **(meta_update or {})})
    target = Path(bundle_dir)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.stage-{os.getpid()}-", dir=target.parent) as staging:
        staged: dict[str, str | os.PathLike] = {}
        for n, data in b.contents.items():  # the bytes the load checked, not the folder's files again
            if n not in (META, HEAD, MANIFEST, "metrics.json"):
                staged[n] = Path(staging) / n
                Path(staged[n]).write_bytes(data)
        staged.update(files or {})
        write_bundle(bundle_dir, meta, b.head, staged, metrics if metrics is not None else (b.metrics or None))
    return load_bundle(bundle_dir)


def load_head(bundle_dir: str | os.PathLike) -> tuple[Path, BundleMeta, LinearHead]:
    """(folder, description, linear head) of a bundle: bundle.json and head.npz only, each checked against the
    manifest, its featurizer files neither read nor parsed: what a refit of the head needs (see :func:`derive_bundle`)."""
    d = locate_bundle(bundle_dir)
    listed = _manifest(d)
    data = {}
    for name in (META, HEAD):
        data[name] = (d / name).read_bytes() if name in listed and (d / name).is_file() else b""
        if sha256_bytes(data[name]) != listed.get(name):
            raise BundleError(f"model bundle {d}: {name} is missing or does not match {MANIFEST}", hint=_REBUILD)
    try:
        meta = BundleMeta.from_dict(json.loads(data[META]))
        head = LinearHead.from_arrays(_npz(data[HEAD]))
    except (ValueError, KeyError, OSError, TypeError) as e:
        raise BundleError(f"model bundle {d} cannot be read ({e})", hint=_REBUILD) from None
    return d, meta, head


def derive_bundle(parent_dir: str | os.PathLike, out_dir: str | os.PathLike, meta: BundleMeta, head: LinearHead, *,
                  metrics: dict[str, Any] | None = None, ood: OodDetector | None = None) -> Path:
    """A bundle at ``out_dir`` with a new ``head`` (``meta``, ``metrics``, detector ``ood``) over the featurizer files
    of the bundle ``parent_dir`` (those ``meta`` names): hard-linked, not read, parsed or exported again, and each
    checked against the SHA-256 the parent's manifest lists before anything is written (BundleError otherwise)."""
    parent = locate_bundle(parent_dir)
    listed = _manifest(parent)
    out_dir = Path(out_dir)
    names = [n for n, _ in _loaded_files(parent, json.dumps(meta.to_dict()).encode()) if n not in (META, HEAD, TRUST, "metrics.json")]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.stage-{os.getpid()}-", dir=out_dir.parent) as staging:
        files: dict[str, str | os.PathLike] = {}
        for name in names:
            files[name] = Path(staging) / name
            if name not in listed or not (parent / name).is_file():
                raise BundleError(f"model bundle {parent}: {name} is missing or not listed in {MANIFEST}", hint=_REBUILD)
            link_or_copy(parent / name, files[name])
            if sha256_file(files[name]) != listed[name]:
                raise BundleError(f"model bundle {parent} was modified: SHA-256 of {name} does not match {MANIFEST}",
                                  hint="the bundle is corrupt or tampered with; re-run `imgclf train` or restore it")
        return write_bundle(out_dir, meta, head, files, metrics, ood, link=True)


def describe(bundle: Bundle) -> str:
    m = bundle.meta
    return json.dumps({"labels": m.labels, "backbone": m.backbone, "resolution": m.resolution, "classifier": m.classifier})


def bundle_engine(bundle_dir: str | os.PathLike) -> EngineConfig:
    """The engine settings a bundle was made with (defaults where bundle.json is absent or unreadable:
    loading the bundle then reports what is wrong with it)."""
    try:
        engine = read_json(resolve_dir(Path(bundle_dir), MANIFEST) / META).get("engine", {})
        return EngineConfig(**{k: v for k, v in engine.items() if k in ("backend", "precision", "threads")})
    except (OSError, ValueError, TypeError, AttributeError):
        return EngineConfig()
