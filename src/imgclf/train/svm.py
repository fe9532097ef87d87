"""The ``svm`` trainer: a linear SVM (C by cross-validation on train) on the pretrained featurizer's features.

:func:`fit_svm` and :func:`svm_detector` are shared with the trainers that put an SVM on refined features.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..bundle.folder import BundleMeta, write_bundle
from ..classifier.svm import SvmClassifier
from ..config.settings import Config, featurizer_names
from ..features.backbones import model_backbone
from ..features.engines import resolve_engine
from ..features.export import onnx_featurizer
from ..features.ids import join_ids, split_ids
from ..features.step import featurizer_models, featurizer_onnx
from ..rundir.layout import RunDir
from ..trust.ood import OodDetector, fit_ood
from ..util.budget import TimeBudget
from ..util.errors import DatasetError, RunDirError
from .trainers import class_labels, register_trainer


def fit_svm(cfg: Config, rd: RunDir, labels: list[str], max_s: float | None = None) -> tuple[SvmClassifier, int]:
    """An SVM (``[svm]`` settings; ``max_s`` for its C search instead of ``svm.max_s``) fit on the train features
    of features.npz → (classifier, train images)."""
    rows, x = rd.split_features("train")
    y = np.array([labels.index(r.label) for r in rows])
    missing = [lab for i, lab in enumerate(labels) if not (y == i).any()]
    if missing:
        raise DatasetError(f"no usable train images for class(es) {missing}", hint="see skipped.csv and the split")
    return SvmClassifier.from_config(cfg.svm, cfg.data.seed, max_s=max_s).fit(x, y), len(rows)


def svm_detector(rd: RunDir, clf: SvmClassifier) -> OodDetector:
    """The unknown-image detector of an SVM fit by :func:`fit_svm`: the train features and their out-of-fold
    calibrated logits (the same rows, in the same order, as the SVM saw)."""
    _, x = rd.split_features("train")
    return fit_ood(x, clf.head_.temperature * clf.oof_decision_)


@register_trainer("svm", needs_features=True, linear_on_features=True)
def train_svm(cfg: Config, rd: RunDir, budget: TimeBudget) -> dict[str, Any]:
    """LinearSVC on the backbone's pretrained features (C by CV on train, within ``budget``)."""
    labels = class_labels(rd)
    max_s = round(budget.cap(cfg.svm.max_s), 1)
    clf, n_train = fit_svm(cfg, rd, labels, max_s)
    fids = split_ids(rd.load_features()[3])
    models = featurizer_models(cfg.model)
    if [(f.backbone, f.resolution) for f in fids] != [(m.backbone, m.resolution) for m in models]:
        raise RunDirError(f"features.npz was made by featurizer(s) {join_ids(fids)}, not by {', '.join(featurizer_names(cfg.model))} "
                          "as the config now says", hint=f"run `imgclf featurize --run-dir {rd.root}` again")
    members, files = [], {}
    for i, (fid, model) in enumerate(zip(fids, models)):
        name = f"featurizer-{i}.onnx" if i else "featurizer.onnx"
        files[name], onnx_info = featurizer_onnx(cfg, rd, fid, model, name)
        found = onnx_featurizer(files[name])  # what the file says: building the network would import torch, slow to load
        if found is None:  # an int8 file keeps no preprocessing record: the network says it
            module, spec = model_backbone(model, pretrained=False)
            found = spec, int(module.num_features)
        spec, dim = found
        members.append(({"weights": "imagenet", "feature_id": str(fid), "dim": dim, **onnx_info}, model, spec))
    engine = dataclasses.replace(resolve_engine(cfg.engine), precision=fids[0].precision)  # what made the features
    (featurizer, model, spec), rest = members[0], members[1:]
    meta = BundleMeta.create(model, engine, cfg.dataset_name(), labels, spec, featurizer, {"type": "svm", **clf.info()})
    if rest:
        meta.featurizers = [{"backbone": m.backbone, "resolution": m.resolution, "preprocessing": sp.to_dict(), **f} for f, m, sp in rest]
    write_bundle(rd.model, meta, clf.head_, files=files, ood=svm_detector(rd, clf))
    out = {"classifier": "svm", "C": clf.C_, "cv_class_avg_accuracy": clf.cv_scores_[clf.C_], "n_train": n_train}
    return {**out, "max_s": max_s} if max_s else out
