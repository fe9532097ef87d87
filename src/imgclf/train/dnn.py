"""Refinement (fine-tuning), the 2017 sample's part 2: the "dnn" and "svm_on_refined" trainers.

    dnn             refine the pretrained network with a new head; that head is the classifier
    svm_on_refined  refine, featurize every image with the refined network (sharded over the
                    processes under torchrun), then a LinearSVC on those features

Both write the usual bundle: ``backbone.safetensors`` (the refined featurizer), its
``featurizer.onnx`` export and the linear head, so predict, serve and the UI load a refined
model unchanged; ``training_history`` (per-epoch train and validation error) goes into
bundle.json and ``training_curves.png`` into the run directory. The loop itself is
:mod:`imgclf.refine.loop`.
"""
from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle.folder import ONNX_ENGINES, BundleMeta, write_bundle
from ..classifier.linear import LinearHead
from ..config.settings import Config
from ..features.backbones import resampler_of
from ..features.engines import TorchEngine, build_engine, cpu_threads, resolve_engine
from ..features.featurize import featurize_paths
from ..features.ids import FeatureId
from ..features.step import calibration_paths, quantization_meta
from ..prepare.step import prepare
from ..refine import distributed
from ..refine.checkpoint import clear_checkpoints
from ..refine.distributed import Dist
from ..refine.loop import Refined, checkpoint_dir, fit
from ..rundir.layout import RunDir
from ..trust.ood import OodDetector
from ..util.budget import TimeBudget
from ..util.files import sha256_file
from .svm import fit_svm, svm_detector
from .trainers import register_trainer

REFINED = ("dnn", "svm_on_refined")


def refine(cfg: Config, run_dir: str | Path, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Refine and write RUN_DIR/model (``train.classifier`` dnn or svm_on_refined; "svm" means dnn here).

    Works alone and under ``torchrun`` (every process calls it; rank 0 prepares the split when
    it is missing and writes every file). ``resume`` continues from the last epoch checkpoint.
    """
    d = distributed.setup(cfg.train.device, cfg.engine.threads)
    rd = RunDir(run_dir)
    if cfg.train.classifier not in REFINED:
        cfg = cfg.with_change("train.classifier", "dnn", by="imgclf refine")
    if d.is_main:
        if not rd.split.exists():
            prepare(cfg, rd.root)
        rd.save_config(cfg)  # what --resume reads back
    distributed.barrier(d)
    return _train(cfg, rd, d, resume=resume, progress=progress)


@register_trainer("dnn", needs_features=False, linear_on_features=False)
@register_trainer("svm_on_refined", needs_features=False, linear_on_features=True)
def train_refined(cfg: Config, rd: RunDir, budget: TimeBudget) -> dict[str, Any]:
    """The train step of ``imgclf run`` / ``imgclf train`` for dnn and svm_on_refined (a fresh refinement within ``budget``)."""
    return _train(cfg, rd, distributed.setup(cfg.train.device, cfg.engine.threads), resume=False, progress=True, budget=budget)


def _train(cfg: Config, rd: RunDir, d: Dist, *, resume: bool, progress: bool, budget: TimeBudget | None = None) -> dict[str, Any]:
    cfg = cfg.for_refinement()  # refine.backbone / refine.resolution: what every refinement step reads
    t0 = time.perf_counter()
    refined = fit(cfg, rd, d, resume=resume, progress=progress, budget=budget)
    fit_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="imgclf-refined-") as tmp:
        if cfg.train.classifier == "svm_on_refined":  # every process featurizes its share
            out = _svm_on_refined(cfg, rd, d, refined, *export_featurizer(refined, cfg, rd, Path(tmp)), progress)
        elif d.is_main:
            out = _dnn(cfg, rd, refined, *export_featurizer(refined, cfg, rd, Path(tmp)), progress)
        else:
            out = {"n_train": int(refined.history[-1]["train_images"])}
    if d.is_main:
        rd.add_skipped([(p, reason, "refine") for p, reason in refined.skipped.items()])
        plot_curves(refined.history, rd.training_curves)
        clear_checkpoints(checkpoint_dir(rd))
    distributed.barrier(d)  # the bundle exists before any process goes on
    last = refined.history[-1]
    return {"classifier": cfg.train.classifier, **out, "epochs": len(refined.history), "precision": refined.precision,
            "world_size": refined.world, "final_train_error": last["train_error"], "final_val_error": last["val_error"],
            "seconds_per_epoch": round(float(np.median([h["seconds"] for h in refined.history])), 2),
            "train_images_per_s": round(float(np.median([h["images_per_s"] for h in refined.history])), 2),
            "skipped": len(refined.skipped), "refine_seconds": round(fit_s, 2)}


# ---------------------------------------------------------------- the refined featurizer


def export_featurizer(refined: Refined, cfg: Config, rd: RunDir, folder: Path) -> tuple[dict[str, Any], dict[str, Path], Any]:
    """backbone.safetensors (+ featurizer.onnx when ONNX export is available) in ``folder``;
    with ``engine.precision = "int8"`` featurizer.onnx is quantised like a pretrained one.

    Every process exports its own copy (the replicas are identical, and a multi-node job
    shares no folder); only rank 0's goes into the bundle.
    """
    from safetensors.torch import save_file

    backbone = copy.deepcopy(refined.net.backbone).cpu().float().eval()
    path = folder / "backbone.safetensors"
    save_file({k: v.detach().contiguous() for k, v in backbone.state_dict().items()}, str(path))  # channels_last → contiguous
    weights = f"refined-{sha256_file(path)[:12]}"
    precision = _float_precision(cfg)
    meta: dict[str, Any] = {"weights": weights, "state_dict": path.name,
                            "feature_id": str(FeatureId(cfg.model.backbone, cfg.model.resolution, weights, precision,
                                                        resampler=resampler_of(refined.spec))),
                            "dim": int(backbone.num_features)}
    files = {path.name: path}
    from ..features.export import OPSET, export_onnx

    files["featurizer.onnx"] = export_onnx(backbone, refined.spec, folder / "featurizer.onnx")
    meta.update({"onnx": "featurizer.onnx", "precision": precision, "onnx_opset": OPSET})
    if cfg.engine.precision == "int8":
        _quantize(cfg, rd, refined, folder, meta, files)
    return meta, files, backbone


def _float_precision(cfg: Config) -> str:
    """The precision the refined network's features are computed in when not int8 (fp32, or bf16 where the engine runs it)."""
    precision = resolve_engine(cfg.engine).precision
    return "fp32" if precision == "int8" else precision


def _quantize(cfg: Config, rd: RunDir, refined: Refined, folder: Path, meta: dict[str, Any], files: dict[str, Path]) -> None:
    """Static int8 of the refined export, calibrated on the same train images as a pretrained featurizer's."""
    from ..features.quantize import cached_int8

    fp32 = FeatureId.parse(meta["feature_id"])
    path, fid = cached_int8(files["featurizer.onnx"], refined.spec, fp32.with_precision("int8"), calibration_paths(cfg, rd),
                            folder, threads=cfg.engine.threads)
    files["featurizer.onnx"] = path
    meta.update({"precision": "int8", "feature_id": str(fid), "quantization": quantization_meta(cfg, rd)})


def refine_meta(cfg: Config, refined: Refined) -> dict[str, Any]:
    """What bundle.json's classifier section records of a refinement: its settings and how it ran."""
    r = cfg.refine
    return {"epochs": r.epochs, "batch_size": r.batch_size, "lr": r.lr or r.lr_schedule, "base_lr": r.base_lr,
            "freeze_stages": 0 if r.freeze_backbone else r.freeze_stages, "freeze_backbone": r.freeze_backbone,
            "augment": r.augment, "precision": refined.precision, "world_size": refined.world}


def _bundle_meta(cfg: Config, refined: Refined, featurizer: dict[str, Any], classifier: dict[str, Any]) -> BundleMeta:
    engine = dataclasses.replace(resolve_engine(cfg.engine), precision=featurizer["precision"])
    meta = BundleMeta.create(cfg.model, engine, cfg.dataset_name(), refined.labels, refined.spec, featurizer,
                             {**classifier, "refine": refine_meta(cfg, refined)})
    meta.training_history = refined.history
    return meta


def _dnn(cfg: Config, rd: RunDir, refined: Refined, featurizer: dict[str, Any], files: dict[str, Path], backbone: Any,
         progress: bool) -> dict[str, Any]:
    w = refined.net.head.weight.detach().float().cpu().numpy()  # (K, D)
    b = refined.net.head.bias.detach().float().cpu().numpy()  # (K,)
    head, ood = _calibrated(cfg, rd, refined, featurizer, files, backbone, w, b, progress)
    write_bundle(rd.model, _bundle_meta(cfg, refined, featurizer, {"type": "dnn", "temperature": head.temperature}), head,
                 files=files, ood=ood)
    return {"n_train": int(refined.history[-1]["train_images"]), "temperature": head.temperature}


def _calibrated(cfg: Config, rd: RunDir, refined: Refined, featurizer: dict[str, Any], files: dict[str, Path], backbone: Any,
                w: np.ndarray, b: np.ndarray, progress: bool) -> tuple[LinearHead, OodDetector | None]:
    """The network's head ``softmax(T * (W·f + b))`` with ``T`` fit on the held-out validation part of the train
    split (never on test; 1.0 without one), and the unknown-image detector: the other train images' features
    as reference, the validation images' scores as its out-of-fold ones."""
    from ..trust.calibration import fit_temperature
    from ..trust.ood import fit_ood

    val = set(refined.val_paths)
    if len(val) < 2 or refined.val_labels is None:
        return LinearHead(w, b, temperature=1.0, l2_normalize=False), None
    bad = rd.skipped_paths() | set(refined.skipped)
    train = [r.path for r in rd.split_rows("train") if r.path not in bad and r.path not in val]
    engine = refined_engine(cfg, distributed.Dist(), refined, featurizer, files, backbone)
    res = featurize_paths(refined.val_paths + train, engine, batch_size=cfg.featurize.batch_size, progress=progress,
                          desc="calibrate")
    n = len(refined.val_paths)
    ok_val, ok_train = res.ok[:n], res.ok[n:]
    if ok_val.sum() < 2 or not ok_train.any():
        return LinearHead(w, b, temperature=1.0, l2_normalize=False), None
    logits = res.features[:n][ok_val] @ w.T + b  # (n_val, K)
    t = fit_temperature(logits, np.asarray(refined.val_labels)[ok_val])
    ood = fit_ood(res.features[:n][ok_val], t * logits, reference=res.features[n:][ok_train])
    return LinearHead(w, b, temperature=t, l2_normalize=False), ood


def _svm_on_refined(cfg: Config, rd: RunDir, d: Dist, refined: Refined, featurizer: dict[str, Any],
                    files: dict[str, Path], backbone: Any, progress: bool) -> dict[str, Any]:
    bad = rd.skipped_paths()
    paths = [r.path for r in rd.split_rows() if r.path not in bad]
    mine = paths[d.rank :: d.world]
    res = featurize_paths(mine, refined_engine(cfg, d, refined, featurizer, files, backbone), batch_size=cfg.featurize.batch_size,
                          threads=max(1, cpu_threads(cfg.engine.threads) // d.local_world), progress=progress and d.is_main,
                          desc="featurize (refined)")
    feats = distributed.gather_rows(d, res.features)  # rank r has rows r, r + world, ...
    oks = distributed.gather_rows(d, res.ok.astype(np.uint8))
    errors = dict(e for part in distributed.gather_json(d, res.errors) for e in part)
    out: dict[str, Any] = {}
    if d.is_main:
        features = np.zeros((len(paths), featurizer["dim"]), np.float32)
        ok = np.zeros(len(paths), bool)
        for r, (f, o) in enumerate(zip(feats, oks)):
            features[r :: d.world], ok[r :: d.world] = f, o.astype(bool)
        rd.write_features(paths, features, ok, featurizer["feature_id"])
        rd.add_skipped([(p, reason, "featurize") for p, reason in errors.items()], replace_stage="featurize")
        clf, n_train = fit_svm(cfg, rd, refined.labels)
        meta = _bundle_meta(cfg, refined, featurizer, {"type": "svm_on_refined", **clf.info()})
        write_bundle(rd.model, meta, clf.head_, files=files, ood=svm_detector(rd, clf))
        out = {"C": clf.C_, "cv_class_avg_accuracy": clf.cv_scores_[clf.C_], "n_train": n_train}
    return out


def refined_engine(cfg: Config, d: Dist, refined: Refined, featurizer: dict[str, Any], files: dict[str, Path], backbone: Any) -> Any:
    """The configured engine on the exported file on CPU (several times faster than eager torch), else torch on
    the device. The SVM must see the features the bundle will give: an int8 file always runs as int8."""
    ran = dataclasses.replace(resolve_engine(cfg.engine), threads=max(1, cpu_threads(cfg.engine.threads) // d.local_world))
    int8 = featurizer.get("precision") == "int8"
    if "featurizer.onnx" in files and (int8 or (d.device == "cpu" and ran.backend in ONNX_ENGINES)):
        if ran.backend not in ONNX_ENGINES:
            ran = dataclasses.replace(ran, backend="onnxruntime", precision="int8")
        return build_engine(None, refined.spec, featurizer["feature_id"], ran, onnx_path=files["featurizer.onnx"])
    net = backbone if d.device == "cpu" else refined.net.backbone
    return TorchEngine(net, refined.spec, featurizer["feature_id"], threads=ran.threads, device=d.device,
                       bf16=ran.precision == "bf16")


# ---------------------------------------------------------------- the seed's figure


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Per-epoch train and validation error (and loss), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..util.figures import save_figure

    epochs = [h["epoch"] for h in history]
    fig, (ax_err, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, unit in ((ax_err, "error", 100.0), (ax_loss, "loss", 1.0)):
        ax.plot(epochs, [unit * h[f"train_{key}"] for h in history], "o-", label="train (augmented)")
        val = [(e, unit * h[f"val_{key}"]) for e, h in zip(epochs, history) if h[f"val_{key}"] is not None]
        if val:
            ax.plot(*zip(*val), "s-", label="validation (held out of train)")
        ax.set(xlabel="epoch", ylabel=f"{key} (%)" if key == "error" else key, title=f"Refinement {key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(ax_err, path)
