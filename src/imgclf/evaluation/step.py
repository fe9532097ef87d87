"""The evaluate step: the bundle on the test split, once → metrics.json, predictions.csv, figures, report.html."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..bundle.folder import Bundle, load_bundle, rewrite_bundle
from ..classifier.linear import LinearHead
from ..classifier.svm import SvmClassifier
from ..config.settings import Config, EngineConfig
from ..data.split import SplitRow
from ..features.featurize import featurize_many, featurize_paths
from ..features.step import engine_cache_dir, feature_cache_dir
from ..inference.explain import Explainer
from ..rundir.layout import RunDir
from ..train.trainers import get_trainer
from ..util.arrays import class_averaged_accuracy
from ..util.errors import DatasetError, ImageError, NotExplainable
from ..util.figures import save_figure
from ..util.files import read_json, read_npz, write_bytes, write_json
from .int8 import int8_only, int8_report
from .metrics import Metrics, compute_metrics, trust_metrics
from .report import plot_confusion, plot_coverage, plot_reliability, plot_roc, write_report


def test_features(cfg: Config, rd: RunDir, bundle: Bundle) -> tuple[list[SplitRow], np.ndarray]:
    """Test rows and their features under the bundle's featurizer (reusing features.npz when it matches)."""
    bad = rd.skipped_paths()
    rows = [r for r in rd.split_rows("test") if r.path not in bad]
    if rd.features.exists():
        index, feats, ok, fid = rd.load_features()
        if fid == bundle.meta.feature_ids and all(r.path in index for r in rows):
            rows = [r for r in rows if ok[index[r.path]]]
            return rows, feats[[index[r.path] for r in rows]]
    engines = bundle.build_engines(cfg.engine)
    res = featurize_many([r.path for r in rows], engines, batch_size=cfg.featurize.batch_size,
                          cache_dir=feature_cache_dir(cfg), threads=cfg.engine.threads, progress=True, desc="featurize test")
    rd.add_skipped([(p, reason, "evaluate") for p, reason in res.errors])
    keep = np.flatnonzero(res.ok)
    return [rows[i] for i in keep], res.features[keep]


def evaluate(cfg: Config, run_dir: str | os.PathLike) -> Metrics:
    """Evaluate the bundle on the test split once; write metrics, plots, predictions, report."""
    rd = RunDir(run_dir)
    bundle = load_bundle(rd.model)  # recovers a bundle swap killed between its renames
    labels = bundle.labels
    rows, x = test_features(cfg, rd, bundle)
    if not rows:
        raise DatasetError("no usable test images", hint="see skipped.csv and split.csv")
    unknown = sorted({r.label for r in rows} - set(labels))
    if unknown:
        raise DatasetError(f"test labels {unknown} are not classes of the model {labels}")
    y = np.array([labels.index(r.label) for r in rows])
    proba = bundle.head.predict_proba(x)
    m = compute_metrics(y, proba, labels)
    bad = rd.skipped_paths()
    m.n_train = sum(1 for r in rd.split_rows("train") if r.path not in bad)
    m.n_skipped = len(rd.skipped_rows())
    m.leakage_pairs = rd.leakage_count()
    m.classifier = bundle.meta.classifier
    m.backbone = bundle.meta.backbone
    m.resolution = bundle.meta.resolution
    m.training_history = bundle.meta.training_history or None
    ood = bundle.ood()
    head = bundle.head
    logits = head.decision_function(x)
    trust_metrics(m, y, logits, head.temperature, ood.score(x, head.temperature * logits) if ood is not None else None,
                  ood.threshold(cfg.predict.unknown_tpr) if ood is not None else None)
    m.int8 = int8_vs_fp32(cfg, rd, bundle, rows, y, m)
    m.preset = {"name": cfg.train.preset, "time_limit": cfg.train.time_limit_s or None}
    if cfg.train.preset != "fast" and rd.candidates.exists():
        m.preset.update({k: v for k, v in read_json(rd.candidates).items() if k != "preset"})
    scores = component_scores(rd, x, y)
    if scores:
        m.preset.setdefault("ensemble", {})["test"] = scores
    preds = rd.write_predictions(rows, proba, labels)
    save_figure(plot_roc(m.to_dict()), rd.roc)
    save_figure(plot_confusion(m.to_dict()), rd.confusion)
    save_figure(plot_reliability(m.to_dict()), rd.reliability)
    save_figure(plot_coverage(m.to_dict()), rd.coverage)
    write_json(rd.metrics, m.to_dict())
    write_class_maps(cfg, rd, bundle, preds)
    write_run_report(rd, m, preds)
    rewrite_bundle(rd.model, metrics=m.summary())
    return m


def component_scores(rd: RunDir, x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    """Test accuracy and class-averaged accuracy of each component of a best run's ensemble, each alone
    (ensemble_components.npz), beside the pool's: what pooling gained. Empty for other runs."""
    if not rd.ensemble_components.exists():
        return {}
    arrays = read_npz(rd.ensemble_components)
    names = [k[len("weight_"):] for k in arrays if k.startswith("weight_")]
    if any(arrays[f"weight_{n}"].shape[1] != x.shape[1] for n in names):
        return {}
    out = {}
    for n in names:
        pred = LinearHead(arrays[f"weight_{n}"], arrays[f"bias_{n}"]).predict(x)
        out[n] = {"accuracy": round(float(np.mean(pred == y)), 4), "class_avg_accuracy": round(class_averaged_accuracy(y, pred), 4)}
    return out


MAX_CLASS_MAPS = 24  # misclassified test images whose class activation maps the report shows
MAP_SIZE = 256  # longest side of those maps, pixels


def write_class_maps(cfg: Config, rd: RunDir, bundle: Bundle, preds: list[dict]) -> int:
    """Overlays of the predicted and the true class's maps of the most confidently misclassified test images
    (RUN_DIR/class_maps, made afresh); none for a model maps cannot explain. Returns how many images got maps."""
    import shutil

    shutil.rmtree(rd.class_maps, ignore_errors=True)
    errors = sorted((i for i, p in enumerate(preds) if p["label"] != p["predicted"]), key=lambda i: -preds[i]["score"])
    if not errors:
        return 0
    # ONNX Runtime on the bundle's file starts in a third of OpenVINO's time (~0.5 s against ~1.6 s with its map
    # output) and gives fp32 maps; a bundle without the file runs on the configured engine.
    engine_cfg = EngineConfig(backend="onnxruntime", precision="fp32", threads=cfg.engine.threads) if bundle.file("onnx") else cfg.engine
    explainer = Explainer(bundle.build_engine(engine_cfg), bundle.head, bundle.labels, bundle.spec)
    done = 0
    for i in errors[:MAX_CLASS_MAPS]:
        p = preds[i]
        try:
            e = explainer.explain(p["path"], [p["predicted"], p["label"]])
        except NotExplainable:
            return 0
        except (ImageError, OSError):
            continue  # changed or gone since it was featurized: the report shows it without maps
        for which, cls in (("predicted", p["predicted"]), ("true", p["label"])):
            write_bytes(rd.class_map(i, which), e.overlay_png(cls, MAP_SIZE))
        done += 1
    return done


def write_run_report(rd: RunDir, m: Metrics, preds: list[dict], label_issues: Sequence[dict] = ()) -> None:
    """report.html of the run: its metrics, the figures that exist, the errors and their class activation
    maps (and the doctor's label issues)."""
    maps = [(p, rd.class_map(i, "predicted"), rd.class_map(i, "true")) for i, p in enumerate(preds)
            if rd.class_map(i, "predicted").exists() and rd.class_map(i, "true").exists()]
    write_report(rd.report, m.to_dict(), preds, title=f"imgclf run {rd.root.name}",
                 figures=[p for p in (rd.roc, rd.confusion, rd.reliability, rd.coverage, rd.training_curves) if p.exists()],
                 label_issues=label_issues, class_maps=maps)


def int8_vs_fp32(cfg: Config, rd: RunDir, bundle: Bundle, rows: list[SplitRow], y: np.ndarray, int8: Metrics) -> dict:
    """int8 bundles: test accuracy of the same run in fp32 beside int8's. The fp32 reference is the
    bundle's own network in fp32 with, for linear classifiers on features (svm, svm_on_refined), an
    SVM trained on its fp32 features of the same train split, and otherwise (dnn) the network's own head."""
    if bundle.meta.featurizer.get("precision") != "int8":
        return {}
    if bundle.meta.featurizers:
        return int8_only(int8)  # the fp32 reference is defined for one featurizer
    out = int8_only(int8)
    if not cfg.engine.compare_fp32:
        return out
    refit = get_trainer(bundle.meta.kind).linear_on_features
    train_rows = rd.split_features("train")[0] if refit else []
    engine = bundle.fp32_engine(cfg.engine.threads, cache_dir=engine_cache_dir(cfg))
    res = featurize_paths([r.path for r in train_rows + rows], engine, batch_size=cfg.featurize.batch_size,
                          cache_dir=feature_cache_dir(cfg), threads=cfg.engine.threads, progress=False)
    labels = bundle.labels
    n = len(train_rows)
    ok_train, ok_test = res.ok[:n], res.ok[n:]
    if not refit:
        fp32 = compute_metrics(y[ok_test], bundle.head.predict_proba(res.features[n:][ok_test]), labels)
        return {**out, **int8_report(int8, fp32)}
    y_train = np.array([labels.index(r.label) for r in train_rows])
    clf = SvmClassifier.from_config(cfg.svm, cfg.data.seed).fit(res.features[:n][ok_train], y_train[ok_train])
    fp32 = compute_metrics(y[ok_test], clf.predict_proba(res.features[n:][ok_test]), labels)
    return {**out, "fp32_C": clf.C_, **int8_report(int8, fp32)}
