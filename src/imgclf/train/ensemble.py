"""The ``ensemble`` trainer (what ``train.preset = "best"`` trains): refinement plus a calibrated ensemble.

Three components, each a calibrated linear model on some features:

    svm             the SVM on the pretrained ``model.*`` features (the featurizer(s) balanced chose)
    refined_head    the refined network's own head
    svm_on_refined  an SVM on the refined network's features

pooled by a weighted average of their calibrated log-probabilities (log-linear pooling), with
horizontal-flip test-time augmentation when it helps. Weights and flip are chosen on the part of the
TRAIN split that refinement held out for its validation (the network never trained on it; the SVMs
are refit without it for the choice). The weights are equal (``train.ensemble_weights`` pins others):
the validation part is a few dozen images, too few to choose weights on (BENCHMARKS.md);
the grid of weights — best class-averaged accuracy, then the lowest log-loss, near ties to the cheaper
ensemble — is still scored and recorded. Flip TTA is kept where validation shows a gain (the same rule
between flip and no flip). A component
with weight 0 is dropped from the bundle, with its featurizer when nothing else reads it.

Every component being linear, the pool is itself ONE linear head over the features of the kept
featurizers, each L2-normalised and concatenated (the bundle's usual feature ensemble):
``W = [a·T_svm·W_svm | b·T_head·s·W_head + c·T_ref·W_ref]`` and the biases summed alike, so predict,
serve and the UI run it unchanged. The refined head was trained on raw pooled features; on unit
features it is rescaled by ``s``, the median feature norm of the train images, and its temperature
refit on the validation part (both forms' validation scores are recorded). The test split is never
read before the bundle exists: features.npz (every image, the bundle's features) is written last.
"""
from __future__ import annotations

import dataclasses
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle.folder import BundleMeta, load_bundle, write_bundle
from ..classifier.linear import LinearHead, fit_head
from ..classifier.svm import SvmClassifier
from ..config.settings import Config
from ..features.backbones import gflops, model_backbone
from ..features.engines import FlipAveraged, resolve_engine
from ..features.featurize import concat_features, featurize_many, featurize_paths
from ..features.ids import FeatureId
from ..features.step import feature_cache_dir, featurizer_models, featurizer_onnx, run_featurizers
from ..refine import distributed
from ..refine.checkpoint import clear_checkpoints
from ..refine.loop import checkpoint_dir, fit
from ..rundir.layout import RunDir
from ..trust.calibration import nll, softmax
from ..trust.ood import fit_ood
from ..util.arrays import class_averaged_accuracy, l2_normalize
from ..util.budget import TimeBudget
from ..util.errors import DatasetError
from ..util.files import read_json, write_json, write_npz
from .dnn import export_featurizer, plot_curves, refine_meta, refined_engine
from .trainers import class_labels, register_trainer

COMPONENTS = ("svm", "refined_head", "svm_on_refined")
GRID = 4  # weights are multiples of 1/GRID summing to 1 (15 triples)
NLL_TIE = 0.05  # validation log-losses within 5% (+ NLL_SLACK) of the best one at the best accuracy count as a tie
NLL_SLACK = 0.002
EQUAL = (1 / 3, 1 / 3, 1 / 3)  # the default pool: every component, equal weights (see the module docstring)


@dataclasses.dataclass
class Choice:
    """One point of the grid: component weights (summing to 1), flip or not, and its validation figures."""

    weights: tuple[float, float, float]
    flip: bool
    accuracy: float = 0.0  # class-averaged, on the validation part of the train split
    nll: float = 0.0
    cost: float = 0.0  # GFLOPs per image of the featurizers it needs (twice with flip)

    def key(self) -> tuple[float, float, float]:
        """Best first: higher accuracy, then lower log-loss, then cheaper."""
        return (-round(self.accuracy, 9), self.nll, round(self.cost, 6))

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(zip(COMPONENTS, self.weights)), "tta_flip": self.flip, "val_class_avg_accuracy": round(self.accuracy, 4),
                "val_nll": round(self.nll, 4), "gflops_per_image": round(self.cost, 2)}


def weight_grid(steps: int = GRID) -> list[tuple[float, float, float]]:
    """Every (a, b, c) of multiples of 1/steps with a + b + c = 1, and the equal pool :data:`EQUAL`."""
    return [(i / steps, j / steps, (steps - i - j) / steps) for i in range(steps + 1) for j in range(steps + 1 - i)] + [EQUAL]


def pool_logits(logits: list[np.ndarray], weights: tuple[float, ...]) -> np.ndarray:
    """The weighted sum of calibrated logits: its softmax is the log-linear pool of the components' probabilities."""
    return sum(w * z for w, z in zip(weights, logits) if w)


def pooled_head(parts: list[tuple[np.ndarray, np.ndarray]], blocks: int) -> LinearHead:
    """One LinearHead (L2-normalising its input) equal to the summed calibrated logits ``(W_i, b_i)`` of the
    components, each ``W_i`` already laid out over the concatenation of ``blocks`` unit-norm feature blocks."""
    w = sum(p[0] for p in parts)
    b = sum(p[1] for p in parts)
    return LinearHead((np.sqrt(blocks) * w).astype(np.float32), np.asarray(b, np.float32), temperature=1.0, l2_normalize=True)


PRIOR_SIGMA = 1.0  # spread of log T around its prior centre, in nats of summed validation log-loss


def map_temperature(logits: np.ndarray, y: np.ndarray, t0: float) -> float:
    """The temperature minimising the summed validation log-loss of ``softmax(T * logits)`` plus
    ``(log T - log t0)² / (2 PRIOR_SIGMA²)``. A few dozen validation images that the refined network classifies
    without error make the plain fit run to its bound (T ~ 1000: every score 0 or 1, and the pool then
    ignores its weights); the prior keeps T near ``t0`` unless the validation images say otherwise: 1 for the
    refined head (trained with label smoothing, its logits are near calibrated), the pretrained SVM's out-of-fold
    temperature for an SVM on refined features."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    if not len(y):
        return float(t0)

    def loss(log_t: float) -> float:
        return len(y) * nll(softmax(np.exp(log_t) * z), y) + 0.5 * ((log_t - np.log(t0)) / PRIOR_SIGMA) ** 2

    centre = np.log(t0)  # the search spans 10^-3..10^3 around the prior's centre, whatever the logits' scale
    return float(np.exp(minimize_scalar(loss, bounds=(centre - np.log(1e3), centre + np.log(1e3)), method="bounded").x))


def _split_parts(x: np.ndarray, dims: list[int]) -> list[np.ndarray]:
    """The per-featurizer blocks of features concatenated by featurize_many (unit-norm each when several)."""
    return np.split(x, np.cumsum(dims)[:-1], axis=1) if len(dims) > 1 else [x]


def _unit_blocks(parts: list[np.ndarray]) -> np.ndarray:
    return np.hstack([l2_normalize(p) for p in parts])


@register_trainer("ensemble", needs_features=False, linear_on_features=False, writes_features=True)
def train_ensemble(cfg: Config, rd: RunDir, budget: TimeBudget) -> dict[str, Any]:
    """Refine ``refine.*``'s network, fit the three components, choose their weights and the flip on the
    validation part of train, write the pooled bundle, then features.npz of every image."""
    t0 = time.perf_counter()
    d = distributed.setup(cfg.train.device, cfg.engine.threads)
    labels = class_labels(rd)
    bad = rd.skipped_paths()
    rows = [r for r in rd.split_rows("train") if r.path not in bad]
    paths = [r.path for r in rows]
    y = np.array([labels.index(r.label) for r in rows])
    cache, bs, threads = feature_cache_dir(cfg), cfg.featurize.batch_size, cfg.engine.threads
    engines = run_featurizers(cfg, rd)
    dims = [e.dim for e in engines]
    xb = featurize_many(paths, engines, batch_size=bs, cache_dir=cache, threads=threads, progress=False)
    rcfg = cfg.for_refinement()
    if budget.refine_epochs:  # the time-limit plan's epochs
        rcfg = dataclasses.replace(rcfg, refine=dataclasses.replace(rcfg.refine, epochs=budget.refine_epochs))
    t_refine = time.perf_counter()
    refined = fit(rcfg, rd, d, progress=False, budget=budget)
    refine_s = time.perf_counter() - t_refine
    val_paths = list(refined.val_paths)
    y_val = np.asarray(refined.val_labels if refined.val_labels is not None else [], dtype=int)
    with tempfile.TemporaryDirectory(prefix="imgclf-ensemble-") as tmp:
        rmeta, rfiles, backbone = export_featurizer(refined, rcfg, rd, Path(tmp))
        rengine = refined_engine(rcfg, d, refined, rmeta, rfiles, backbone)
        g = featurize_paths(paths, rengine, batch_size=bs, threads=threads, progress=False)
        ok = xb.ok & g.ok
        rd.add_skipped(list(dict(xb.errors + g.errors).items()), replace_stage="featurize")
        if not all((y[ok] == i).any() for i in range(len(labels))):
            raise DatasetError("a class has no usable train image left", hint="see skipped.csv and the split")
        svm = _svm(cfg).fit(xb.features[ok], y[ok])
        svm_ref = _svm(cfg).fit(g.features[ok], y[ok])
        w_head = refined.net.head.weight.detach().float().cpu().numpy()  # (K, D)
        b_head = refined.net.head.bias.detach().float().cpu().numpy()  # (K,)
        scale = float(np.median(np.linalg.norm(g.features[ok], axis=1)))  # the refined head on unit features: W·s
        comp = Components(svm, svm_ref, w_head, b_head, scale, len(dims))
        in_val = set(val_paths)
        fit_rows = np.array([ok[i] and p not in in_val for i, p in enumerate(paths)])
        table = _choose(cfg, comp, xb.features, g.features, y, fit_rows, val_paths, y_val, engines, rengine, dims)
        chosen = table["chosen"]
        out = _write(cfg, rd, refined, rcfg, comp, chosen, engines, dims, rmeta, rfiles, labels, table, xb.features[ok],
                     g.features[ok], paths, ok)
    rd.add_skipped([(p, reason, "refine") for p, reason in refined.skipped.items()])
    plot_curves(refined.history, rd.training_curves)
    clear_checkpoints(checkpoint_dir(rd))
    _record(rd, table, refined, refine_s, len(paths))
    bundle = load_bundle(rd.model)
    everything = [r.path for r in rd.split_rows() if r.path not in rd.skipped_paths()]
    res = featurize_many(everything, bundle.build_engines(cfg.engine), batch_size=bs, cache_dir=cache, threads=threads,
                         progress=False)
    rd.add_skipped([(p, reason, "featurize") for p, reason in res.errors], replace_stage="featurize")
    rd.write_features(res.paths, res.features, res.ok, bundle.meta.feature_ids)
    last = refined.history[-1]
    return {"classifier": "ensemble", **out, "epochs": len(refined.history), "refine_seconds": round(refine_s, 2),
            "final_val_error": last["val_error"], "n_train": int(ok.sum()), "ensemble_seconds": round(time.perf_counter() - t0, 2)}


def _svm(cfg: Config) -> SvmClassifier:
    """The ``[svm]`` classifier, always on L2-normalised features (the pool reads unit-norm feature blocks)."""
    return SvmClassifier.from_config(dataclasses.replace(cfg.svm, l2_normalize=True), cfg.data.seed)


@dataclasses.dataclass
class Components:
    """The three fitted components (on all usable train images) and how their logits are laid out."""

    svm: SvmClassifier  # on the model.* features
    svm_ref: SvmClassifier  # on the refined features
    w_head: np.ndarray  # (K, D) the refined network's head, on raw features
    b_head: np.ndarray
    scale: float  # median raw refined feature norm of the train images
    n_pretrained: int  # featurizers of the svm's features
    t_head: float = 1.0  # temperatures of the refined components, fit on the validation part
    t_ref: float = 1.0

    def logits(self, xb_unit: np.ndarray, g_unit: np.ndarray, heads: tuple[LinearHead, LinearHead] | None = None) -> list[np.ndarray]:
        """Calibrated logits of each component on unit-norm feature blocks (``heads``: the svm and svm_ref heads to
        use instead of the fitted ones, e.g. refit without the validation part)."""
        h_svm, h_ref = heads or (self.svm.head_, self.svm_ref.head_)
        z_svm = h_svm.temperature * (xb_unit @ h_svm.weight.T / np.sqrt(self.n_pretrained) + h_svm.bias)
        z_head = self.t_head * (self.scale * g_unit @ self.w_head.T + self.b_head)
        z_ref = self.t_ref * (g_unit @ h_ref.weight.T + h_ref.bias)
        return [z_svm, z_head, z_ref]

    def layout(self, weights: tuple[float, float, float], dim_b: int, dim_g: int,
               keep: tuple[bool, bool] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each kept component's (W, b) over the kept blocks [model.* features | refined features], weighted
        (``keep``: which blocks stay; default: those a nonzero weight reads)."""
        a, b, c = weights
        keep_b, keep_g = keep or (a > 0, b > 0 or c > 0)
        k = self.svm.head_.weight.shape[0]
        out = []
        if keep_b:
            h = self.svm.head_
            w = a * h.temperature * h.weight / np.sqrt(self.n_pretrained)
            out.append((np.hstack([w, np.zeros((k, dim_g))]) if keep_g else w, a * h.temperature * h.bias))
        if keep_g:
            h = self.svm_ref.head_
            w = b * self.t_head * self.scale * self.w_head + c * self.t_ref * h.weight
            bias = b * self.t_head * self.b_head + c * self.t_ref * h.bias
            out.append((np.hstack([np.zeros((k, dim_b)), w]) if keep_b else w, bias))
        return out


def _choose(cfg: Config, comp: Components, xb: np.ndarray, g: np.ndarray, y: np.ndarray, fit_rows: np.ndarray,
            val_paths: list[str], y_val: np.ndarray, engines: list, rengine: Any, dims: list[int]) -> dict[str, Any]:
    """Weights and flip on the validation part (never the test split) → the table candidates.json records."""
    cost_b = sum(_gflops_of(e) for e in engines)
    cost_g = _gflops_of(rengine)
    table: dict[str, Any] = {"components": {}, "validation_images": len(val_paths), "refined_feature_scale": round(comp.scale, 4)}
    classes_fit = np.unique(y[fit_rows]) if fit_rows.any() else np.zeros(0)
    if len(val_paths) < 2 or len(classes_fit) < len(np.unique(y)):
        w = cfg.train.ensemble_weights or [1.0, 1.0, 1.0]
        chosen = Choice(tuple(v / sum(w) for v in w), cfg.train.tta == "flip", cost=cost_b + cost_g)
        table.update(chosen=chosen, grid=[], why="no validation part of the train split to choose on: "
                                                 + ("train.ensemble_weights" if cfg.train.ensemble_weights else "equal weights"))
        return table
    kw = {"batch_size": cfg.featurize.batch_size, "threads": cfg.engine.threads, "progress": False}
    plain_b = featurize_many(val_paths, engines, cache_dir=feature_cache_dir(cfg), **kw)
    plain_g = featurize_paths(val_paths, rengine, **kw)
    flip_b = featurize_many(val_paths, [FlipAveraged(e) for e in engines], **kw)
    flip_g = featurize_paths(val_paths, FlipAveraged(rengine), **kw)
    okv = plain_b.ok & plain_g.ok & flip_b.ok & flip_g.ok
    yv = y_val[okv]
    svm_cfg = dataclasses.replace(cfg.svm, l2_normalize=True)
    heads = (fit_head(xb[fit_rows], y[fit_rows], comp.svm.C_, temperature=comp.svm.head_.temperature,
                      class_weight=svm_cfg.class_weight, max_iter=svm_cfg.max_iter, seed=cfg.data.seed),
             fit_head(g[fit_rows], y[fit_rows], comp.svm_ref.C_, class_weight=svm_cfg.class_weight,
                      max_iter=svm_cfg.max_iter, seed=cfg.data.seed))
    views = {}
    for flip, (fb, fg) in ((False, (plain_b, plain_g)), (True, (flip_b, flip_g))):
        views[flip] = (_unit_blocks(_split_parts(fb.features[okv], dims)), l2_normalize(fg.features[okv]))
    # the refined components' temperatures, on the plain validation features
    ub, ug = views[False]
    comp.t_head = map_temperature(comp.scale * ug @ comp.w_head.T + comp.b_head, yv, 1.0)
    z_ref = ug @ heads[1].weight.T + heads[1].bias
    z_svm = ub @ heads[0].weight.T / np.sqrt(comp.n_pretrained) + heads[0].bias
    # an SVM's decision values scale with its C: the prior assumes the refined SVM as confident per unit of
    # spread as the pretrained one, whose temperature is fit out of fold on every train image
    spread = float(np.std(z_svm) / max(float(np.std(z_ref)), 1e-12))
    comp.t_ref = map_temperature(z_ref, yv, comp.svm.head_.temperature * spread)
    raw_head = plain_g.features[okv] @ comp.w_head.T + comp.b_head
    logits = {flip: comp.logits(*views[flip], heads=heads) for flip in (False, True)}
    for i, name in enumerate(COMPONENTS):
        z = logits[False][i]
        table["components"][name] = {"val_class_avg_accuracy": round(class_averaged_accuracy(yv, z.argmax(1)), 4),
                                     "val_nll": round(nll(softmax(z), yv), 4),
                                     "val_class_avg_accuracy_flip": round(class_averaged_accuracy(yv, logits[True][i].argmax(1)), 4)}
    table["components"]["refined_head"]["val_class_avg_accuracy_raw_features"] = round(class_averaged_accuracy(yv, raw_head.argmax(1)), 4)
    table["components"]["refined_head"]["temperature"] = round(comp.t_head, 4)
    table["components"]["svm_on_refined"]["temperature"] = round(comp.t_ref, 4)
    table["components"]["svm"]["temperature"] = round(comp.svm.head_.temperature, 4)
    grid = []
    pinned = tuple(w / sum(cfg.train.ensemble_weights) for w in cfg.train.ensemble_weights)
    weights_used = pinned or EQUAL
    flips = {"auto": (False, True), "flip": (True,), "none": (False,)}[cfg.train.tta]
    for weights, flip in itertools.product([pinned] if pinned else weight_grid(), flips):
        z = pool_logits(logits[flip], weights)
        cost = (cost_b if weights[0] else 0.0) + (cost_g if weights[1] or weights[2] else 0.0)
        grid.append(Choice(weights, flip, class_averaged_accuracy(yv, z.argmax(1)), nll(softmax(z), yv), cost * (2 if flip else 1)))
    grid.sort(key=Choice.key)
    chosen = pick([c for c in grid if np.allclose(c.weights, weights_used)])  # flip or not, by validation
    for i, name in enumerate(COMPONENTS):
        without = [c for c in grid if not c.weights[i]]
        table["components"][name]["weight"] = chosen.weights[i]
        table["components"][name]["why"] = ("set by train.ensemble_weights" if pinned else
                                            "equal weights; " + _why(chosen, pick(without), i) if without else "")
    how = "set by train.ensemble_weights" if pinned else "every component with equal weights; flip by validation"
    table.update(chosen=chosen, grid=[c.to_dict() for c in grid], why=f"{how} ({int(okv.sum())} validation images of the train split)")
    return table


def pick(choices: list[Choice]) -> Choice:
    """The best class-averaged accuracy; among those, log-losses within NLL_TIE of the lowest are ties and go
    to the cheapest (fewer featurizers, no flip), then to the lower log-loss."""
    top = max(round(c.accuracy, 9) for c in choices)
    level = [c for c in choices if round(c.accuracy, 9) == top]
    low = min(c.nll for c in level)
    return min((c for c in level if c.nll <= low * (1 + NLL_TIE) + NLL_SLACK), key=lambda c: (round(c.cost, 6), c.nll))


def _why(chosen: Choice, without: Choice, i: int) -> str:
    if chosen.weights[i]:
        return (f"kept: {100 * chosen.accuracy:.2f}% with it, {100 * without.accuracy:.2f}% at best without"
                + (f" (log-loss {chosen.nll:.3f} vs {without.nll:.3f})" if chosen.accuracy == without.accuracy else ""))
    return (f"dropped: {100 * without.accuracy:.2f}% without it (log-loss {without.nll:.3f}); no gain from it on validation "
            "(near ties go to the cheaper ensemble)")


def _gflops_of(engine: Any) -> float:
    """GFLOPs per image of an engine's network at its resolution (what an ensemble member costs)."""
    f = FeatureId.parse(str(engine.feature_id))
    return gflops(f.backbone, f.resolution)


def _write(cfg: Config, rd: RunDir, refined: Any, rcfg: Config, comp: Components, chosen: Choice, engines: list, dims: list[int],
           rmeta: dict[str, Any], rfiles: dict[str, Path], labels: list[str], table: dict[str, Any], xb: np.ndarray, g: np.ndarray,
           paths: list[str], ok: np.ndarray) -> dict[str, Any]:
    """The pooled bundle: the kept featurizers (model.* first, then the refined one), the pooled head, flip, detector."""
    keep_b = chosen.weights[0] > 0
    keep_g = chosen.weights[1] > 0 or chosen.weights[2] > 0
    members, files = [], {}
    if keep_b:
        for model, engine in zip(featurizer_models(cfg.model), engines):
            _, spec = model_backbone(model, pretrained=False)
            members.append((model, spec, str(engine.feature_id), int(engine.dim), None))
    if keep_g:
        members.append((rcfg.model, refined.spec, rmeta["feature_id"], int(rmeta["dim"]), rmeta))
    sections = []
    for i, (model, spec, fid, dim, refined_meta) in enumerate(members):
        name = f"featurizer-{i}.onnx" if i else "featurizer.onnx"
        if refined_meta is None:
            files[name], info = featurizer_onnx(cfg, rd, FeatureId.parse(fid), model, name)
            section = {"weights": "imagenet", "feature_id": fid, "dim": dim, **info}
        else:
            state = f"backbone-{i}.safetensors" if i else "backbone.safetensors"
            files[name], files[state] = rfiles["featurizer.onnx"], rfiles["backbone.safetensors"]
            section = {**refined_meta, "onnx": name, "state_dict": state}
        sections.append((model, spec, section))
    blocks = len(members)
    head = pooled_head(comp.layout(chosen.weights, sum(dims) if keep_b else 0, int(rmeta["dim"]) if keep_g else 0), blocks)
    _write_components(rd, comp, sum(dims), int(rmeta["dim"]), blocks if keep_b and keep_g else 0)
    (model, spec, first), rest = sections[0], sections[1:]
    engine = dataclasses.replace(resolve_engine(cfg.engine), precision=first["precision"])
    classifier = {"type": "ensemble", "components": table["components"], "weights": dict(zip(COMPONENTS, chosen.weights)),
                  "tta_flip": chosen.flip, "val_class_avg_accuracy": round(chosen.accuracy, 4), "svm_C": comp.svm.C_,
                  "svm_on_refined_C": comp.svm_ref.C_, "temperature": 1.0}
    if keep_g:
        classifier["refine"] = refine_meta(rcfg, refined)
    meta = BundleMeta.create(model, engine, cfg.dataset_name(), labels, spec, first, classifier)
    meta.featurizers = [{"backbone": m.backbone, "resolution": m.resolution, "preprocessing": sp.to_dict(), **f} for m, sp, f in rest] or None
    meta.tta = "flip" if chosen.flip else None
    meta.training_history = refined.history if keep_g else None
    parts = (_split_parts(xb, dims) if keep_b else []) + ([g] if keep_g else [])
    feats = concat_features(parts)  # the bundle's features of the train images (without flip: a close stand-in for the detector)
    ood = None
    in_val = set(refined.val_paths)
    is_val = np.array([p in in_val for p, o in zip(paths, ok) if o])
    if is_val.sum() >= 2 and (~is_val).any():
        ood = fit_ood(feats[is_val], head.decision_function(feats[is_val]), reference=feats[~is_val])
    write_bundle(rd.model, meta, head, files=files, ood=ood)
    return {"weights": dict(zip(COMPONENTS, chosen.weights)), "tta_flip": chosen.flip, "val_class_avg_accuracy": round(chosen.accuracy, 4)}


def _write_components(rd: RunDir, comp: Components, dim_b: int, dim_g: int, blocks: int) -> None:
    """ensemble_components.npz: each component alone (weight 1) as a head over the bundle's feature blocks, so that
    evaluation can score each on the test split; none when a component's featurizer left the bundle (``blocks`` 0)."""
    rd.ensemble_components.unlink(missing_ok=True)
    if not blocks:
        return
    arrays = {}
    for name, one_hot in zip(COMPONENTS, ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))):
        head = pooled_head(comp.layout(one_hot, dim_b, dim_g, keep=(True, True)), blocks)
        arrays[f"weight_{name}"], arrays[f"bias_{name}"] = head.weight, head.bias
    write_npz(rd.ensemble_components, **arrays)


def _record(rd: RunDir, table: dict[str, Any], refined: Any, refine_s: float, n_train: int) -> None:
    """The ensemble's choice in candidates.json (beside balanced's featurizer candidates, when there are some)."""
    out = read_json(rd.candidates) if rd.candidates.exists() else {}
    epochs = [h for h in refined.history if h.get("train_images")]
    per_image = float(np.median([h["seconds"] / h["train_images"] for h in epochs])) if epochs else None
    out["ensemble"] = {**{k: v for k, v in table.items() if k != "chosen"}, "chosen": table["chosen"].to_dict(),
                       "refine_seconds": round(refine_s, 2), "refine_s_per_image_epoch": round(per_image, 4) if per_image else None,
                       "train_images": n_train}
    write_json(rd.candidates, out)
