"""The steps of a run, each reading and writing files in one run directory.

    prepare    images → split.csv, skipped.csv, config.json
    featurize  split.csv → features.npz (features of every usable image, cached by content)
    train      features.npz → model/ (the bundle), with the classifier ``train.classifier``
    evaluate   model/ + test split → metrics.json, predictions.csv, roc.png,
               confusion_matrix.png, report.html (and the metrics go into the bundle)

``run`` does all four. Each step can be re-run alone on the same run directory, like the
2017 sample's numbered scripts.
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import Config, config_from_dict, to_toml
from .dataset import scan_dataset
from .engines import cpu_threads
from .errors import DatasetError, RunDirError
from .fileio import read_csv, read_json, read_npz, write_csv, write_json, write_npz, write_text
from .images import ImageError, decode_image
from .split import load_split, make_split, save_split
from .registry import Registry


@dataclass(frozen=True)
class RunDir:
    """File names inside a run directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda s: s.root / "config.json")
    split = property(lambda s: s.root / "split.csv")
    skipped = property(lambda s: s.root / "skipped.csv")
    features = property(lambda s: s.root / "features.npz")
    model = property(lambda s: s.root / "model")
    metrics = property(lambda s: s.root / "metrics.json")
    predictions = property(lambda s: s.root / "predictions.csv")
    report = property(lambda s: s.root / "report.html")

    def need(self, path: Path, step: str) -> Path:
        if not path.exists():
            raise RunDirError(f"{path} is missing", hint=f"run `imgclf {step} --run-dir {self.root}` first (or `imgclf run`)")
        return path


def run_config(run_dir: str | os.PathLike) -> Config | None:
    """The resolved config saved in a run directory, or None."""
    p = RunDir(run_dir).config
    return config_from_dict(read_json(p)) if p.exists() else None


def save_config(cfg: Config, rd: RunDir) -> None:
    write_json(rd.config, cfg.to_dict())
    write_text(rd.root / "config.toml", to_toml(cfg))


def feature_cache_dir(cfg: Config) -> Path | None:
    return Path(cfg.data.root) / "features" if cfg.featurize.cache else None


def engine_cache_dir(cfg: Config) -> Path:
    """Where exported (and quantised) featurizer ONNX files are kept between runs."""
    return Path(cfg.data.root) / "engines"


def calibration_paths(cfg: Config, rd: RunDir) -> list[str]:
    """``engine.calibration_images`` train images for int8, drawn by ``data.seed`` (same draw every time)."""
    train = sorted(r.path for r in load_split(str(rd.need(rd.split, "prepare"))) if r.split == "train")
    n = min(cfg.engine.calibration_images, len(train))
    pick = np.random.default_rng(cfg.data.seed).choice(len(train), size=n, replace=False)
    return [train[i] for i in sorted(pick)]


def _engine_kw(cfg: Config, rd: RunDir) -> dict[str, Any]:
    kw: dict[str, Any] = {"cache_dir": engine_cache_dir(cfg)}
    if cfg.engine.precision == "int8":
        kw["calibration"] = calibration_paths(cfg, rd)
    return kw


# ---------------------------------------------------------------- skipped files


def _read_skipped(rd: RunDir) -> list[tuple[str, str, str]]:
    return [(r["path"], r["reason"], r["stage"]) for r in read_csv(rd.skipped)] if rd.skipped.exists() else []


def add_skipped(rd: RunDir, rows: list[tuple[str, str, str]], replace_stage: str | None = None) -> None:
    old = [r for r in _read_skipped(rd) if r[2] != replace_stage]
    seen = {r[0] for r in old}
    write_csv(rd.skipped, ["path", "reason", "stage"], old + [r for r in rows if r[0] not in seen])


def skipped_paths(rd: RunDir) -> set[str]:
    return {r[0] for r in _read_skipped(rd)}


def _check(path: str, want_hash: bool) -> tuple[str, np.ndarray | None]:
    """(reason it can't be used or "", its dhash when asked): one decode serves both."""
    try:
        if not want_hash:
            decode_image(path, draft_size=64)
            return "", None
        from .acquire.dedup import HASH_DRAFT, dhash_image

        return "", dhash_image(decode_image(path, draft_size=HASH_DRAFT))
    except ImageError as e:
        return str(e), None


# ---------------------------------------------------------------- steps


def prepare(cfg: Config, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Scan the images, drop undecodable ones (listed in skipped.csv), split, save config."""
    rd = RunDir(run_dir)
    rd.root.mkdir(parents=True, exist_ok=True)
    ds = scan_dataset(cfg.images_dir())
    want_hash = cfg.data.check_leakage or cfg.data.group_duplicates
    with ThreadPoolExecutor(cpu_threads()) as pool:
        checked = list(pool.map(lambda it: _check(it.path, want_hash), ds.items))
    bad = [(it.path, r, "prepare") for it, (r, _) in zip(ds.items, checked) if r]
    good = [(it, code) for it, (r, code) in zip(ds.items, checked) if not r]
    ds.items = [it for it, _ in good]
    add_skipped(rd, bad, replace_stage="prepare")
    groups: list[list[str]] = []
    if want_hash and good:
        from .acquire.dedup import groups_from_codes

        groups = groups_from_codes([it.path for it, _ in good], np.stack([c for _, c in good]), cfg.data.duplicate_distance)
    rows = make_split(ds, cfg.data, groups if cfg.data.group_duplicates else ())
    save_split(str(rd.split), rows)
    save_config(cfg, rd)
    summary = {
        "images": len(rows),
        "train": sum(r.split == "train" for r in rows),
        "test": sum(r.split == "test" for r in rows),
        "classes": ds.counts(),
        "skipped": len(bad),
        "excluded_by_annotations": len(ds.excluded),
    }
    if want_hash:
        summary["duplicate_groups"] = len(groups)
        summary["leakage"] = _report_leakage(rd, rows, groups)
    return summary


def _report_leakage(rd: RunDir, rows: list, groups: list[list[str]]) -> int:
    """Write leakage.csv: near-duplicate pairs that straddle train and test; returns their count."""
    side = {r.path: r.split for r in rows}
    pairs = []
    for g in groups:
        train = [p for p in g if side.get(p) == "train"]
        test = [p for p in g if side.get(p) == "test"]
        pairs.extend((a, b) for a in train for b in test)
    write_csv(rd.root / "leakage.csv", ["train_path", "test_path"], pairs)
    return len(pairs)


def featurize(cfg: Config, run_dir: str | os.PathLike, progress: bool = True) -> dict[str, Any]:
    """Features of every image in split.csv with the configured backbone → features.npz."""
    from .featurize import build_featurizer, featurize_paths

    rd = RunDir(run_dir)
    rows = load_split(str(rd.need(rd.split, "prepare")))
    t0 = time.perf_counter()
    engine = build_featurizer(cfg.model, cfg.engine, **_engine_kw(cfg, rd))
    t1 = time.perf_counter()  # building (exporting, quantising) the engine happens once per featurizer
    res = featurize_paths([r.path for r in rows], engine, batch_size=cfg.featurize.batch_size,
                          cache_dir=feature_cache_dir(cfg), threads=cfg.engine.threads, progress=progress)
    seconds = time.perf_counter() - t0
    add_skipped(rd, [(p, reason, "featurize") for p, reason in res.errors], replace_stage="featurize")
    write_npz(rd.features, paths=np.array(res.paths), features=res.features, ok=res.ok,
              feature_id=np.array(engine.feature_id))
    return {"images": len(rows), "featurized": int(res.ok.sum()), "cache_hits": res.cache_hits,
            "errors": len(res.errors), "seconds": round(seconds, 2), "feature_id": engine.feature_id,
            "backend": cfg.engine.backend, "precision": cfg.engine.precision, "engine_seconds": round(t1 - t0, 2),
            "images_per_s": round(len(rows) / (seconds - (t1 - t0)), 1) if seconds > t1 - t0 else None}


def featurizer_onnx(cfg: Config, rd: RunDir, feature_id: str) -> tuple[Path, dict[str, Any]]:
    """The ONNX file of the featurizer that made ``feature_id`` features, and what bundle.json says of it.

    Taken from the engine cache (featurize put it there), else exported (and quantised) again;
    the SVM is trained on the features of this very file, so int8 bundles are judged honestly.
    """
    from .config import EngineConfig
    from .engine_onnxruntime import OPSET
    from .featurize import build_featurizer

    precision = "int8" if "-int8" in feature_id else "fp32"
    path = engine_cache_dir(cfg) / f"{feature_id}.onnx"
    if not path.is_file():
        ecfg = EngineConfig(backend="onnxruntime", precision=precision, threads=cfg.engine.threads)
        engine = build_featurizer(cfg.model, ecfg, **_engine_kw(cfg, rd))
        if engine.feature_id != feature_id:
            raise RunDirError(f"features.npz was made by featurizer {feature_id} but the config now gives {engine.feature_id}",
                              hint=f"run `imgclf featurize --run-dir {rd.root}` again")
        path = engine.onnx_path
    info: dict[str, Any] = {"onnx": "featurizer.onnx", "precision": precision, "onnx_opset": OPSET}
    if precision == "int8":
        from .quantize import calibration_digest, quantization_info

        cal = calibration_paths(cfg, rd)
        info["quantization"] = quantization_info(len(cal), calibration_digest(cal))
    return path, info


def load_features(rd: RunDir) -> tuple[dict[str, int], np.ndarray, np.ndarray, str]:
    """(row of each path, features, ok, feature id) from features.npz."""
    z = read_npz(rd.need(rd.features, "featurize"))
    return {str(p): i for i, p in enumerate(z["paths"])}, z["features"], z["ok"], str(z["feature_id"])


# ---------------------------------------------------------------- classifiers

Trainer = Callable[[Config, RunDir], dict[str, Any]]
# ``train.classifier = name`` runs the function registered as name, which writes RUN_DIR/model;
# the refinement trainers (dnn, svm_on_refined) register themselves when imgclf.refine is imported.
_TRAINERS: Registry[Trainer] = Registry("train.classifier", plugin=lambda _: "imgclf.refine", error=DatasetError)
register_trainer = _TRAINERS.register


def split_features(rd: RunDir, side: str) -> tuple[list[Any], np.ndarray]:
    """Split rows of ``side`` that have features, and their features."""
    index, feats, ok, _ = load_features(rd)
    rows = [r for r in load_split(str(rd.need(rd.split, "prepare"))) if r.split == side and r.path in index and ok[index[r.path]]]
    return rows, feats[[index[r.path] for r in rows]] if rows else np.zeros((0, feats.shape[1]), np.float32)


def bundle_meta(cfg: Config, labels: list[str], spec: Any, featurizer: dict[str, Any], classifier: dict[str, Any]) -> dict[str, Any]:
    return {
        "labels": labels,
        "backbone": cfg.model.backbone,
        "resolution": cfg.model.resolution,
        "preprocessing": spec.to_dict(),
        "featurizer": featurizer,
        "classifier": classifier,
        "engine": {"backend": cfg.engine.backend, "precision": cfg.engine.precision, "threads": cfg.engine.threads},
        "dataset": cfg.data.images or cfg.data.dataset,
    }


@register_trainer("svm")
def train_svm(cfg: Config, rd: RunDir) -> dict[str, Any]:
    """LinearSVC on the backbone's pretrained features (C by CV on train)."""
    from .backbones import create_backbone
    from .bundle import write_bundle
    from .linear import SvmClassifier

    rows, x = split_features(rd, "train")
    labels = sorted({r.label for r in load_split(str(rd.split))})
    y = np.array([labels.index(r.label) for r in rows])
    missing = [lab for i, lab in enumerate(labels) if not (y == i).any()]
    if missing:
        raise DatasetError(f"no usable train images for class(es) {missing}", hint="see skipped.csv and the split")
    clf = SvmClassifier(cfg.svm.c_values, cfg.svm.cv_folds, cfg.svm.l2_normalize, cfg.svm.class_weight, cfg.svm.max_iter, cfg.data.seed)
    clf.fit(x, y)
    _, _, _, fid = load_features(rd)
    _, spec = _spec_of(cfg)
    onnx_path, onnx_info = featurizer_onnx(cfg, rd, fid)
    meta = bundle_meta(cfg, labels, spec, {"weights": "imagenet", "feature_id": fid, "dim": int(x.shape[1]), **onnx_info},
                       {"type": "svm", "C": clf.C_, "cv_folds": clf.cv_folds_, "cv_class_avg_accuracy": clf.cv_scores_,
                        "temperature": clf.head_.temperature})
    write_bundle(rd.model, meta, clf.head_, files={"featurizer.onnx": onnx_path})
    return {"classifier": "svm", "C": clf.C_, "cv_class_avg_accuracy": clf.cv_scores_[clf.C_], "n_train": len(rows)}


def _spec_of(cfg: Config):
    from .backbones import create_backbone

    return create_backbone(cfg.model.backbone, cfg.model.resolution, pretrained=False)


def train(cfg: Config, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Train ``cfg.train.classifier`` and write the model bundle."""
    rd = RunDir(run_dir)
    trainer = _TRAINERS.lookup(cfg.train.classifier)
    t0 = time.perf_counter()
    out = trainer(cfg, rd)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    save_config(cfg, rd)
    return out


# ---------------------------------------------------------------- evaluation


def test_features(cfg: Config, rd: RunDir, bundle: Any) -> tuple[list[Any], np.ndarray]:
    """Test rows and their features under the bundle's featurizer (reusing features.npz when it matches)."""
    from .featurize import featurize_paths

    rows = [r for r in load_split(str(rd.need(rd.split, "prepare"))) if r.split == "test" and r.path not in skipped_paths(rd)]
    if rd.features.exists():
        index, feats, ok, fid = load_features(rd)
        if fid == bundle.meta["featurizer"]["feature_id"] and all(r.path in index for r in rows):
            rows = [r for r in rows if ok[index[r.path]]]
            return rows, feats[[index[r.path] for r in rows]]
    engine = bundle.build_engine(cfg.engine)
    res = featurize_paths([r.path for r in rows], engine, batch_size=cfg.featurize.batch_size,
                          cache_dir=feature_cache_dir(cfg), threads=cfg.engine.threads, progress=True, desc="featurize test")
    add_skipped(rd, [(p, reason, "evaluate") for p, reason in res.errors])
    keep = np.flatnonzero(res.ok)
    return [rows[i] for i in keep], res.features[keep]


def evaluate(cfg: Config, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Evaluate the bundle on the test split once; write metrics, plots, predictions, report."""
    from .bundle import load_bundle, rewrite_bundle
    from .evaluate import compute_metrics, plot_confusion, plot_roc, save_figure, write_report

    rd = RunDir(run_dir)
    bundle = load_bundle(rd.need(rd.model, "train"))
    labels = bundle.labels
    rows, x = test_features(cfg, rd, bundle)
    if not rows:
        raise DatasetError("no usable test images", hint="see skipped.csv and split.csv")
    unknown = sorted({r.label for r in rows} - set(labels))
    if unknown:
        raise DatasetError(f"test labels {unknown} are not classes of the model {labels}")
    y = np.array([labels.index(r.label) for r in rows])
    proba = bundle.head.predict_proba(x)
    metrics = compute_metrics(y, proba, labels)
    split = load_split(str(rd.split))
    metrics["n_train"] = sum(r.split == "train" for r in split) - sum(1 for r in split if r.split == "train" and r.path in skipped_paths(rd))
    metrics["n_skipped"] = len(_read_skipped(rd))
    if (rd.root / "leakage.csv").exists():
        metrics["leakage_pairs"] = len(read_csv(rd.root / "leakage.csv"))
    metrics["classifier"] = bundle.meta["classifier"]
    metrics["backbone"] = bundle.meta["backbone"]
    metrics["resolution"] = bundle.meta["resolution"]
    history = bundle.meta.get("training_history")
    if history:
        metrics["training_history"] = history
    metrics.update(_extra_evaluations(cfg, rd, bundle, rows, y, metrics))
    preds = [{"path": r.path, "rel": r.rel, "label": r.label, "predicted": labels[int(p.argmax())], "score": float(p.max()),
              **{f"p_{n}": float(v) for n, v in zip(labels, p)}} for r, p in zip(rows, proba)]
    write_csv(rd.predictions, list(preds[0].keys()), (list(p.values()) for p in preds))
    save_figure(plot_roc(metrics), rd.root / "roc.png")
    save_figure(plot_confusion(metrics), rd.root / "confusion_matrix.png")
    write_json(rd.metrics, metrics)
    write_report(rd.root, metrics, preds, title=f"imgclf run {rd.root.name}")
    rewrite_bundle(rd.model, metrics={k: v for k, v in metrics.items() if k != "roc_curves"})
    return metrics


_EXTRA_EVALUATIONS: list[Callable[..., dict[str, Any]]] = []


def register_evaluation(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Add a function ``(cfg, rd, bundle, rows, y, metrics) -> extra metrics`` (e.g. int8 accuracy)."""
    _EXTRA_EVALUATIONS.append(fn)
    return fn


def _extra_evaluations(cfg: Config, rd: RunDir, bundle: Any, rows: list, y: np.ndarray, metrics: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fn in _EXTRA_EVALUATIONS:
        out.update(fn(cfg, rd, bundle, rows, y, metrics) or {})
    return out


INT8_WARN_DROP = 0.01  # warn when int8 costs more than 1 point of (class-averaged) accuracy


@register_evaluation
def int8_vs_fp32(cfg: Config, rd: RunDir, bundle: Any, rows: list, y: np.ndarray, metrics: dict) -> dict[str, Any]:
    """int8 bundles: test accuracy of the same run in fp32 beside int8's. The fp32 reference is the
    bundle's own network in fp32 with, for SVMs (svm, svm_on_refined), an SVM trained on its fp32
    features of the same train split, and for dnn the network's own head."""
    if bundle.meta["featurizer"].get("precision") != "int8":
        return {}
    out: dict[str, Any] = {"precision": "int8", "int8_accuracy": metrics["accuracy"],
                           "int8_class_avg_accuracy": metrics["class_avg_accuracy"]}
    kind = bundle.meta["classifier"].get("type")
    if not cfg.engine.compare_fp32 or kind not in ("svm", "svm_on_refined", "dnn"):
        return out
    from .evaluate import compute_metrics
    from .featurize import featurize_paths
    from .linear import SvmClassifier

    train_rows = [] if kind == "dnn" else split_features(rd, "train")[0]
    engine = bundle.fp32_engine(cfg.engine.threads, cache_dir=engine_cache_dir(cfg))
    res = featurize_paths([r.path for r in train_rows + rows], engine, batch_size=cfg.featurize.batch_size,
                          cache_dir=feature_cache_dir(cfg), threads=cfg.engine.threads, progress=False)
    labels = bundle.labels
    n = len(train_rows)
    ok_train, ok_test = res.ok[:n], res.ok[n:]
    if kind == "dnn":
        fp32 = compute_metrics(y[ok_test], bundle.head.predict_proba(res.features[n:][ok_test]), labels)
        return {**out, **_int8_report(metrics, fp32)}
    y_train = np.array([labels.index(r.label) for r in train_rows])
    clf = SvmClassifier(cfg.svm.c_values, cfg.svm.cv_folds, cfg.svm.l2_normalize, cfg.svm.class_weight, cfg.svm.max_iter, cfg.data.seed)
    clf.fit(res.features[:n][ok_train], y_train[ok_train])
    fp32 = compute_metrics(y[ok_test], clf.predict_proba(res.features[n:][ok_test]), labels)
    return {**out, "fp32_C": clf.C_, **_int8_report(metrics, fp32)}


def _int8_report(int8: dict[str, Any], fp32: dict[str, Any]) -> dict[str, Any]:
    """fp32 accuracies, what int8 costs, and a warning (also printed) when that is over 1 point."""
    out = {"fp32_accuracy": fp32["accuracy"], "fp32_class_avg_accuracy": fp32["class_avg_accuracy"],
           "int8_accuracy_drop": fp32["accuracy"] - int8["accuracy"],
           "int8_class_avg_accuracy_drop": fp32["class_avg_accuracy"] - int8["class_avg_accuracy"]}
    drop = max(out["int8_accuracy_drop"], out["int8_class_avg_accuracy_drop"])
    if drop > INT8_WARN_DROP:
        msg = (f"int8 loses {100 * drop:.1f} points of accuracy against fp32 on the test split "
               f"(int8 {100 * int8['accuracy']:.1f}% vs fp32 {100 * fp32['accuracy']:.1f}%, class-averaged "
               f"{100 * int8['class_avg_accuracy']:.1f}% vs {100 * fp32['class_avg_accuracy']:.1f}%); "
               "consider engine.precision = 'fp32' or more engine.calibration_images")
        print(f"warning: {msg}", file=sys.stderr)
        out["int8_warning"] = msg
    return out


def track(cfg: Config, run_dir: str | os.PathLike, command: str) -> None:
    """Log the run to the tracking store when that feature is installed and enabled."""
    try:
        from .tracking import log_run
    except ImportError:
        return
    log_run(cfg, run_dir, command)


def run(cfg: Config, run_dir: str | os.PathLike, progress: bool = True) -> dict[str, Any]:
    """prepare → featurize → train → evaluate in one go; returns the test metrics."""
    t0 = time.perf_counter()
    steps = {"prepare": prepare(cfg, run_dir)}
    if cfg.train.classifier == "svm":
        steps["featurize"] = featurize(cfg, run_dir, progress=progress)
    steps["train"] = train(cfg, run_dir)
    metrics = evaluate(cfg, run_dir)
    metrics["wall_seconds"] = round(time.perf_counter() - t0, 2)
    metrics["steps"] = steps
    write_json(RunDir(run_dir).metrics, metrics)
    track(cfg, run_dir, "run")
    return metrics


def default_run_dir(cfg: Config) -> Path:
    """``ROOT/runs/<dataset>/<timestamp>`` for a run without --run-dir."""
    name = Path(cfg.data.images).name if cfg.data.images else cfg.data.dataset
    return Path(cfg.data.root) / "runs" / name / time.strftime("%Y%m%d-%H%M%S")
