"""Presets: which featurizer(s) a run uses, chosen on the TRAIN split only (``train.preset``).

- ``fast``: ``model.*`` as configured (one featurizer, today's default lite0 at 224 px).
- ``balanced``: each featurizer of ``train.candidates`` (default :data:`CANDIDATES`, less those that
  would upscale the median train image more than ``train.max_upscale``) featurizes the train images
  (features cached by content, so candidates, concatenations and later runs share the work); a
  linear SVM scores each by nested cross-validation (C chosen inside each outer training part) and the
  winner is the concatenation of the ``train.concat_best`` (3) best-scoring L2-normalised feature sets,
  best first (1: the best one alone, ties going to the cheaper). When ``train.candidates`` lists
  concatenations itself, every candidate is scored and the best score wins. The winner becomes
  ``model.backbone``/``model.resolution``/``model.featurizers``.

  Why a rule and not a score for the concatenation: nested CV on a few hundred train images ranks
  close candidates by one or two images, while whole runs score the concatenation of the best three at
  or above each of them (BENCHMARKS.md).

- ``best``: balanced's choice, then the ``ensemble`` trainer (:mod:`imgclf.train.ensemble`): refinement
  and a pooled ensemble of the SVM, the refined head and the SVM on refined features, with flip
  test-time augmentation when validation on train shows a gain.

``train.time_limit_s`` (the run's :class:`~imgclf.util.budget.TimeBudget`) plans the selection from
per-image costs: network GFLOPs (each backbone's registry entry, see
:func:`~imgclf.features.backbones.gflops`) times seconds per GFLOP (a prior, replaced by what the
first uncached featurizer measured), plus an export when the engine cache lacks the network; the most
expensive candidates are dropped first until the plan fits, with what the run needs after the
choice: featurizing the other images with the winner (at worst the concatenation of the dearest kept
candidates), the final SVM's C search (scaled from the nested CVs measured so far) and evaluation,
report and run history (:func:`post_seconds`). Before each candidate the plan is checked again
against the time spent; the final SVM's C search then gets what is left of the budget.
For best, refinement is planned first (epochs × train images × seconds per image per epoch, from
the refined network's GFLOPs, plus featurizing every image with it) in the time balanced's whole
plan leaves: with fewer epochs when half of ``refine.epochs`` or more fit, dropped when fewer do (the
run is then balanced's, with every candidate the limit allows); the plan says which. Refinement then
gets what is left of the budget when it starts, and cuts its epochs when it runs slower than planned.
Test images are never opened here: every decision is made before the test split is featurized.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import Enum
from statistics import median
from typing import Any, Callable, Sequence

import numpy as np

from ..classifier.svm import SvmClassifier
from ..config.settings import Config, featurizer_names, parse_featurizer
from ..data.images import read_header
from ..features.backbones import gflops
from ..features.engines import cpu_threads, resolve_engine
from ..features.featurize import FeatureCache, build_featurizer, concat_features, feature_id_of, featurize_paths
from ..features.step import engine_cache_dir, engine_kw, feature_cache_dir
from ..rundir.layout import RunDir
from ..util.budget import TimeBudget
from ..util.errors import DatasetError, ImageError
from ..util.files import sha256_file, write_json

log = logging.getLogger(__name__)

CANDIDATES = ("efficientnet_lite0@224", "efficientnet_lite0@320", "efficientnet_lite1@256", "efficientnet_lite2@320")
CROP_PCT = 0.875  # the center crop keeps ~87.5% of the resized short side (EfficientNet-Lite: 0.875 to 0.89)
# Priors of the plan, replaced by measurements as the selection goes (BENCHMARKS.md has how they were set)
PRIOR_S_PER_GFLOP = 0.012  # seconds per GFLOP of featurizing on one core of a 2-core x86 CPU, OpenVINO bf16, decode included
EXPORT_S = 10.0  # building a network and exporting it to ONNX (once per machine: the engine cache keeps it)
POST_S = 7.0  # what a run costs whatever its data and featurizer: starting Python, evaluation, report, bundle, run history
POST_S_PER_IMAGE = 0.004  # and per image: the doctor, evaluation, report
FINAL_FIT = 1.5  # the final SVM's C search on k concatenated feature sets ≈ this × k × one set's nested CV
REFINE_S_PER_GFLOP = 0.035  # one training image of one epoch per GFLOP on 2 cores, validation and the linear probe included
HEADER_SAMPLE = 200  # train images whose size sets the median


class Status(Enum):
    """Where a candidate stands; its text (``status`` in candidates.json) fills in the candidate's ``note``."""

    PLANNED = "planned"
    SCORED = "scored"
    NOT_SCORED = "not scored: {}"
    TIME_LIMIT = "dropped: time limit ({})"  # may come back when the measured pace is faster than planned
    UPSCALE = "dropped: upscales the median image {}"
    ONLY_LEFT = "the only candidate left"
    CONCATENATED = "the {} best concatenated"


class RefinementStatus(Enum):
    """What the plan does with preset best's refinement."""

    PLANNED = "planned"
    SHORTENED = "planned: {} epochs fit the time limit"
    DROPPED = "dropped: time limit ({})"


@dataclass
class Candidate:
    """One featurizer, or several concatenated, and what selecting it cost and scored."""

    featurizers: list[str]  # NAME@RESOLUTION, in concatenation order
    gflops: float
    estimate_s: float = 0.0  # planned seconds (featurizing uncached train images, export, CV)
    cost_s: float | None = None  # measured seconds
    cv_score: float | None = None  # nested-CV class-averaged accuracy on the train split
    status: Status = Status.PLANNED
    note: str = ""  # what the status text says of this candidate (why it was dropped, ...)
    winner: bool = False

    @property
    def name(self) -> str:
        return "+".join(self.featurizers)

    def mark(self, status: Status, note: str = "") -> None:
        self.status, self.note = status, note

    @property
    def status_text(self) -> str:
        return self.status.value.format(self.note)

    def to_dict(self) -> dict[str, Any]:
        return {"featurizers": self.name, "cv_class_avg_accuracy": self.cv_score, "cost_s": self.cost_s,
                "estimate_s": round(self.estimate_s, 1), "gflops": round(self.gflops, 2), "status": self.status_text,
                "winner": self.winner}


@dataclass
class RefinementPlan:
    """Preset best's refinement in the plan: its estimate, its epochs and what the plan does with it."""

    estimate_s: float
    epochs: int
    status: RefinementStatus = RefinementStatus.PLANNED
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"estimate_s": round(self.estimate_s, 1), "epochs": self.epochs, "status": self.status.value.format(self.note)}


@dataclass
class Selection:
    """What :func:`select_featurizers` chose and planned; ``table`` is candidates.json."""

    winner: str  # the +-joined NAME@RESOLUTION featurizers
    table: dict[str, Any]
    refinement: RefinementPlan | None  # preset best only
    after_s: float  # the plan's seconds for what follows the choice (featurizing the rest, the final SVM, the rest of the run)
    s_per_gflop: float  # featurizing pace: measured, else the prior


def median_short_side(paths: Sequence[str]) -> float | None:
    """Median shorter side (pixels) of up to :data:`HEADER_SAMPLE` of ``paths`` (headers only, never pixels)."""
    step = max(1, len(paths) // HEADER_SAMPLE)
    sides = []
    for p in list(paths)[::step][:HEADER_SAMPLE]:
        try:
            h = read_header(p)
        except (ImageError, OSError):
            continue
        sides.append(min(h.width, h.height))
    return float(median(sides)) if sides else None


def upscale(resolution: int, short_side: float | None) -> float:
    """How much the preprocessing enlarges an image of ``short_side`` for ``resolution`` (1 when unknown)."""
    return resolution / CROP_PCT / short_side if short_side else 1.0


def candidate_list(cfg: Config) -> list[Candidate]:
    """The candidates of ``train.candidates`` (or :data:`CANDIDATES`), cheapest first, each once."""
    names = list(cfg.train.candidates) or list(CANDIDATES)
    out: dict[str, Candidate] = {}
    for text in names:
        parts = str(text).split("+")
        out.setdefault("+".join(parts), Candidate(parts, sum(gflops(*parse_featurizer(p, "train.candidates")) for p in parts)))
    return sorted(out.values(), key=lambda c: (c.gflops, c.name))


def plan(candidates: Sequence[Candidate], budget_s: float | None,
         after: Callable[[list[Candidate]], float] = lambda kept: 0.0) -> list[Candidate]:
    """Mark the most expensive planned candidates :attr:`Status.TIME_LIMIT` until the rest, and what the run needs
    after choosing among them (``after(kept)``), fit ``budget_s`` (None: no limit); the cheapest planned one
    always stays. Returns the kept ones, cheapest first."""
    kept = sorted((c for c in candidates if c.status is Status.PLANNED), key=lambda c: (c.estimate_s, c.gflops))
    while budget_s is not None and len(kept) > 1 and sum(c.estimate_s for c in kept) + after(kept) > budget_s:
        dropped = kept.pop()
        dropped.mark(Status.TIME_LIMIT, f"needs ~{dropped.estimate_s:.0f} s")
    return kept


def select_featurizers(cfg: Config, rd: RunDir, budget: TimeBudget | None = None) -> Selection:
    """Choose the featurizer(s) of a balanced run on the train split within ``budget`` (default: a fresh one of
    ``train.time_limit_s``); logs the plan and the result, writes candidates.json."""
    t0 = time.perf_counter()
    budget = budget or TimeBudget.start(cfg.train.time_limit_s)
    bad = rd.skipped_paths()
    train = [r for r in rd.split_rows("train") if r.path not in bad]
    paths = [r.path for r in train]
    labels = sorted({r.label for r in train})
    if len(labels) < 2:
        raise DatasetError(f"the train split has {len(labels)} class(es); at least 2 are needed", hint="see split.csv")
    y = np.array([labels.index(r.label) for r in train])
    short = median_short_side(paths)
    cands = candidate_list(cfg)
    for c in [c for c in cands if len(c.featurizers) == 1][1:]:  # the cheapest single always stays
        u = upscale(parse_featurizer(c.name)[1], short)
        if u > cfg.train.max_upscale:
            c.mark(Status.UPSCALE, f"{u:.2f}x")
    per_gflop = PRIOR_S_PER_GFLOP * 2 / cpu_threads(cfg.engine.threads)
    uncached = _uncached_counter(cfg, paths)
    done: set[str] = set()
    for c in cands:
        c.estimate_s = _estimate(cfg, c, uncached, per_gflop, len(paths), done, _nested_prior(len(paths), len(labels)))
    n_all = len(rd.split_rows())
    n_rest = n_all - len(paths)  # featurized after the choice, by the winner
    nested: list[float] = []  # measured seconds of each candidate's nested CV

    def cv_s() -> float:
        """Seconds of one 1280-d feature set's nested CV: the mean measured so far, else the prior."""
        return float(np.mean(nested)) if nested else _nested_prior(len(paths), len(labels))

    def after(chosen: list[Candidate]) -> float:
        """Seconds the run needs after choosing among ``chosen``: featurizing the other images with the winner
        (at worst the concatenation of the dearest), its SVM's C search, evaluation and the rest."""
        singles = sorted((c.gflops for c in chosen if len(c.featurizers) == 1), reverse=True)[:cfg.train.concat_best]
        k = min(cfg.train.concat_best, len(singles)) or max(len(c.featurizers) for c in chosen)
        return (n_rest * per_gflop * max([sum(singles), *(c.gflops for c in chosen)]) + FINAL_FIT * k * cv_s()
                + post_seconds(len(paths) + n_rest))

    left = budget.left_s()  # None: no limit
    refinement = None
    if cfg.train.preset == "best":
        refinement = RefinementPlan(refinement_estimate(cfg, len(paths), n_all, per_gflop, len(labels)), cfg.refine.epochs)
        if left is not None:  # refinement gets what balanced's whole plan leaves
            planned = [c for c in cands if c.status is Status.PLANNED]
            _fit_refinement(cfg, refinement, left - sum(c.estimate_s for c in planned) - after(planned),
                            after_refinement(cfg, len(paths), n_all, per_gflop, len(labels)))
            if refinement.status is not RefinementStatus.DROPPED:
                left -= refinement.estimate_s
    kept = plan(cands, left, after)
    log.info(_plan_text(cfg, cands, short, budget, kept, after(kept) if kept else 0.0, refinement))
    features: dict[str, np.ndarray] = {}
    ok = np.ones(len(paths), dtype=bool)
    scored: list[Candidate] = []  # featurized; scored once a second one is (a single candidate needs no score)
    order = sorted((c for c in cands if c.status in (Status.PLANNED, Status.TIME_LIMIT)), key=lambda c: (c.estimate_s, c.gflops))
    for c in order if len(order) > 1 else ():
        cv = cv_s()
        c.estimate_s = _estimate(cfg, c, uncached, per_gflop, len(paths), done, cv)
        spent = time.perf_counter() - t0
        pending = cv * sum(len(s.featurizers) for s in scored if s.cv_score is None)  # the first one's nested CV
        if left is not None and scored and spent + pending + c.estimate_s + after([*scored, c]) > left:
            c.mark(Status.TIME_LIMIT, f"needs ~{c.estimate_s:.0f} s, {max(0.0, left - spent - pending - after([*scored, c])):.0f} s left")
            continue
        c.mark(Status.PLANNED)  # the plan logged first may have dropped it at the prior's pace
        t = time.perf_counter()
        for part in c.featurizers:
            if part not in features:
                res, computed = _featurize(cfg, rd, part, paths)
                if computed >= 16:
                    per_gflop = (time.perf_counter() - t) / computed / gflops(*parse_featurizer(part))  # the next estimates use it
                features[part], ok = res.features, ok & res.ok
                done.add(part)
        features[c.name] = concat_features([features[p] for p in c.featurizers])
        c.cost_s = round(time.perf_counter() - t, 2)
        scored.append(c)
        for s in scored if len(scored) > 1 else ():
            if s.cv_score is None:
                t = time.perf_counter()
                _score_all(cfg, [s], features, ok, y)
                nested.append((time.perf_counter() - t) / len(s.featurizers))
    kept = scored or kept
    ranked = _score_all(cfg, scored, features, ok, y) if len(scored) > 1 else []  # every one scored: ranks them
    winner = ranked[0] if ranked else kept[0]
    top = [c for c in ranked if c.cv_score is not None][:cfg.train.concat_best]
    if len(top) >= 2 and all(len(c.featurizers) == 1 for c in scored):  # no concatenation listed: the best singles'
        winner = Candidate([c.featurizers[0] for c in top], sum(c.gflops for c in top), cost_s=0.0,
                           status=Status.CONCATENATED, note=str(len(top)))
        cands.append(winner)
    winner.winner = True
    if len(kept) == 1:
        winner.mark(Status.ONLY_LEFT)
    after_s = after([c for c in scored if c.featurizers[0] in winner.featurizers] or kept[:1])
    table = {"preset": cfg.train.preset, "winner": winner.name, "chosen_by": _chosen_by(cands, ranked),
             "candidates": [c.to_dict() for c in cands], "median_short_side": short, "time_limit": budget.limit_s,
             "planned_s": round(sum(c.estimate_s for c in kept), 1), "seconds": round(time.perf_counter() - t0, 2),
             "s_per_gflop": round(per_gflop, 5), "after_s": round(after_s, 1)}
    if refinement is not None:
        table["refinement"] = refinement.to_dict()
    write_json(rd.candidates, table)
    log.info(_result_text(cands, winner, table["chosen_by"]))
    return Selection(winner.name, table, refinement, round(after_s, 1), round(per_gflop, 5))


def _fit_refinement(cfg: Config, refinement: RefinementPlan, left_s: float, rest_s: float) -> None:
    """Shorten ``refinement`` to the epochs that fit ``left_s`` (``rest_s`` of it being what follows training) when
    half of ``refine.epochs`` or more do; else mark it dropped."""
    per_epoch = (refinement.estimate_s - rest_s) / cfg.refine.epochs
    epochs = min(cfg.refine.epochs, int((left_s - rest_s) // per_epoch)) if per_epoch > 0 else cfg.refine.epochs
    if epochs >= max(1, (cfg.refine.epochs + 1) // 2):  # half the epochs or more: refine for fewer epochs
        refinement.epochs, refinement.estimate_s = epochs, rest_s + epochs * per_epoch
        if epochs < cfg.refine.epochs:
            refinement.status, refinement.note = RefinementStatus.SHORTENED, f"{epochs} of {cfg.refine.epochs}"
    else:
        refinement.status = RefinementStatus.DROPPED
        refinement.note = f"needs ~{refinement.estimate_s:.0f} s, {max(0.0, left_s):.0f} s left after the selection"


def _chosen_by(cands: list[Candidate], ranked: list[Candidate]) -> str:
    """How the winner was chosen, as the run's summary says it."""
    if ranked:
        return "nested cross-validation on the train split"
    if len(cands) == 1:
        return "nothing to choose: train.candidates lists one"
    return "nothing to choose: the only candidate left"


def refinement_estimate(cfg: Config, n_train: int, n_all: int, per_gflop: float, classes: int) -> float:
    """Seconds the ensemble trainer adds to a run: ``refine.epochs`` over the train images (less the validation
    part, at most ``refine.max_images_per_epoch``), then :func:`after_refinement`."""
    model = cfg.refine_model()
    training = (cfg.refine.epochs * _images_per_epoch(cfg, n_train) * REFINE_S_PER_GFLOP * gflops(model.backbone, model.resolution)
                * 2 / cpu_threads(cfg.engine.threads))
    return training + after_refinement(cfg, n_train, n_all, per_gflop, classes)


def after_refinement(cfg: Config, n_train: int, n_all: int, per_gflop: float, classes: int) -> float:
    """Seconds the ensemble trainer spends after training: featurizing the train images, the validation part
    (plain and mirrored) and finally every image with the refined network, its export, the SVM on its features."""
    model = cfg.refine_model()
    images = _images_per_epoch(cfg, n_train) + n_train + 3 * cfg.refine.val_fraction * n_train + n_all
    return images * per_gflop * gflops(model.backbone, model.resolution) + EXPORT_S + FINAL_FIT * _nested_prior(n_train, classes)


def _images_per_epoch(cfg: Config, n_train: int) -> float:
    """Train images refinement sees per epoch: the train split less its validation part, at most ``refine.max_images_per_epoch``."""
    per_epoch = n_train * (1.0 - cfg.refine.val_fraction)
    return min(per_epoch, cfg.refine.max_images_per_epoch or per_epoch)


def post_seconds(n_images: int) -> float:
    """What a run costs after its classifier is trained, plus starting up (see :data:`POST_S`)."""
    return POST_S + POST_S_PER_IMAGE * n_images


def with_featurizers(cfg: Config, names: str) -> Config:
    """A copy of ``cfg`` whose model is the ``+``-joined featurizers ``names`` (the first as model.backbone), each
    key changed recorded as set by the preset (:meth:`Config.with_change`)."""
    first, *rest = names.split("+")
    backbone, resolution = parse_featurizer(first, "train.candidates")
    out = cfg
    for key, value in (("model.backbone", backbone), ("model.resolution", resolution), ("model.featurizers", list(rest))):
        out = out.with_change(key, value, by=f"train.preset={cfg.train.preset}")
    return out


def needs_selection(cfg: Config) -> bool:
    """Whether a run of ``cfg`` chooses its featurizer: balanced with the ``svm`` trainer (refinement trains
    ``refine.backbone``), with more than one candidate or one that is not already the configured model."""
    if cfg.train.preset == "fast" or cfg.train.classifier != "svm":
        return False
    cands = candidate_list(cfg)
    return len(cands) > 1 or cands[0].name != "+".join(featurizer_names(cfg.model))


# ---------------------------------------------------------------- helpers


def _featurize(cfg: Config, rd: RunDir, name: str, paths: list[str]):
    """Features of the train ``paths`` by the one featurizer ``name`` → (result, images computed rather than cached)."""
    model = with_featurizers(cfg, name).model
    engine = build_featurizer(model, cfg.engine, **engine_kw(cfg, rd))
    res = featurize_paths(paths, engine, batch_size=cfg.featurize.batch_size, cache_dir=feature_cache_dir(cfg),
                          threads=cfg.engine.threads, progress=False)
    return res, int(res.ok.sum()) - res.cache_hits


def _score_all(cfg: Config, cands: list[Candidate], features: dict[str, np.ndarray], ok: np.ndarray,
               y: np.ndarray) -> list[Candidate]:
    """Nested-CV score of each candidate not yet scored (same folds for all: a paired comparison), best first."""
    min_count = int(np.bincount(y[ok]).min()) if ok.any() else 0
    for c in cands:
        if c.cv_score is not None:
            continue
        t = time.perf_counter()
        if min_count >= 4:
            c.cv_score = round(SvmClassifier.from_config(cfg.svm, cfg.data.seed).nested_score(features[c.name][ok], y[ok]), 4)
            c.mark(Status.SCORED)
        else:
            c.mark(Status.NOT_SCORED, "fewer than 4 train images in a class")
        c.cost_s = round((c.cost_s or 0.0) + time.perf_counter() - t, 2)
    return sorted(cands, key=lambda c: (-(c.cv_score if c.cv_score is not None else -1), c.gflops))


def _uncached_counter(cfg: Config, paths: list[str]) -> Callable[[str], int]:
    """``name -> how many of paths the feature cache lacks`` for one featurizer (content hashes computed once)."""
    cache_dir = feature_cache_dir(cfg)
    if cache_dir is None:
        return lambda name: len(paths)
    digests = []
    for p in paths:
        try:
            digests.append(sha256_file(p))
        except OSError:
            continue
    engine = resolve_engine(cfg.engine)

    def count(name: str) -> int:
        fid = feature_id_of(with_featurizers(cfg, name).model, engine)
        cache = FeatureCache(cache_dir, fid) if engine.precision != "int8" else None
        return len(digests) if cache is None else sum(not cache.has(d) for d in digests)

    return count


def _estimate(cfg: Config, c: Candidate, uncached: Callable[[str], int], per_gflop: float, n: int, done: set[str],
              cv_s: float) -> float:
    """Seconds to featurize the train images the feature cache lacks for each part of ``c`` not ``done``
    yet, export the networks the engine cache lacks, and run the nested CV (``cv_s`` seconds per feature set)."""
    engine = resolve_engine(cfg.engine)
    seconds = cv_s * len(c.featurizers)
    for part in c.featurizers:
        if part in done:
            continue
        fid = feature_id_of(with_featurizers(cfg, part).model, engine).with_precision("fp32")
        seconds += uncached(part) * per_gflop * gflops(*parse_featurizer(part))
        seconds += 0.0 if (engine_cache_dir(cfg) / f"{fid}.onnx").is_file() else EXPORT_S
    return seconds


def _nested_prior(n: int, classes: int) -> float:
    """Seconds of one 1280-d feature set's nested CV on ``n`` images of ``classes`` classes before any was measured
    (one-vs-rest: a problem per class, one for two)."""
    return 0.5 + 2e-3 * n * (1 if classes <= 2 else classes) ** 0.75


def _plan_text(cfg: Config, cands: list[Candidate], short: float | None, budget: TimeBudget, kept: list[Candidate],
               after_s: float, refinement: RefinementPlan | None) -> str:
    """The plan before any featurizing: each candidate's cost and status, and the seconds the plan adds up to."""
    planned = sum(c.estimate_s for c in kept) + after_s
    if refinement is not None and refinement.status is not RefinementStatus.DROPPED:
        planned += refinement.estimate_s
    limit = f" of the time limit {budget.limit_s:.0f} s" if budget.limit_s else ""
    what = f"{len(cands)} candidate featurizers" if len(cands) > 1 else f"one candidate featurizer ({_chosen_by(cands, [])})"
    head = (f"preset {cfg.train.preset}: {what}, median train image short side {'?' if short is None else f'{short:.0f}'} px; "
            f"planned ~{planned:.0f} s{limit}")
    lines = [f"  {c.name:<48} {c.gflops:5.2f} GFLOP  ~{c.estimate_s:5.1f} s  {c.status_text}" for c in cands]
    if refinement is not None:
        model = cfg.refine_model()
        lines.append(f"  refinement of {model.backbone}@{model.resolution}, {refinement.epochs} epochs + ensemble"
                     f"{'':<8} ~{refinement.estimate_s:5.1f} s  {refinement.to_dict()['status']}")
    return "\n".join([head, *lines])


def _result_text(cands: list[Candidate], winner: Candidate, chosen_by: str) -> str:
    lines = [f"  {c.name:<48} CV {'—' if c.cv_score is None else f'{100 * c.cv_score:.2f}%':>7}  "
             f"{'—' if c.cost_s is None else f'{c.cost_s:.1f} s':>7}  {'WINNER' if c.winner else c.status_text}" for c in cands]
    return "\n".join(["candidates (nested CV on the train split):", *lines, f"chosen: {winner.name} ({chosen_by})"])
