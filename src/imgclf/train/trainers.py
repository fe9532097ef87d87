"""Classifier trainers: ``train.classifier = NAME`` runs the trainer registered as NAME.

A trainer is a plug-in (declared in ``imgclf.util.registry.TRAINERS``): a function
``(cfg, run_dir, budget) -> summary`` that writes RUN_DIR/model (``budget``: the
:class:`~imgclf.util.budget.TimeBudget` its time-limited part, the C search or refinement, may take),
plus what it needs and makes:

- ``needs_features``: the featurize step must run first (features.npz of the pretrained featurizer);
- ``linear_on_features``: its classifier is an SVM on featurizer outputs, so the fp32 reference of an
  int8 bundle is an SVM refit on fp32 features (otherwise the network's own head is reused);
- ``writes_features``: it writes features.npz itself (the bundle's features, after its choices), so
  ``run`` featurizes nothing before it, not even for the doctor.

``svm`` lives in :mod:`imgclf.train.svm`, ``dnn`` and ``svm_on_refined`` in :mod:`imgclf.train.dnn`,
``ensemble`` (what ``train.preset = "best"`` trains) in :mod:`imgclf.train.ensemble`; this module
holds the registry entries they register with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..config.settings import Config
from ..rundir.layout import RunDir
from ..util.budget import TimeBudget
from ..util.registry import TRAINERS

Fit = Callable[[Config, RunDir, TimeBudget], dict[str, Any]]


@dataclass(frozen=True)
class Trainer:
    """A registered trainer: its ``fit`` and what it needs and makes (see the module docstring)."""

    fit: Fit
    needs_features: bool
    linear_on_features: bool
    writes_features: bool = False


def register_trainer(name: str, *, needs_features: bool, linear_on_features: bool, writes_features: bool = False) -> Callable:
    """Decorator registering ``fit(cfg, run_dir, budget) -> summary`` as the trainer ``name``."""

    def deco(fn: Fit) -> Fit:
        TRAINERS.register(name)(Trainer(fn, needs_features, linear_on_features, writes_features))
        return fn

    return deco


def get_trainer(name: str) -> Trainer:
    """The trainer registered as ``name`` (its module imported on first use); unknown names list the valid ones."""
    return TRAINERS.lookup(name)


def trainer_name(cfg: Config) -> str:
    """The trainer a run of ``cfg`` uses: ``train.classifier``, except that preset best turns the default ``svm``
    into ``ensemble`` (refinement and the pooled ensemble on top of the featurizer balanced chose)."""
    return "ensemble" if cfg.train.preset == "best" and cfg.train.classifier == "svm" else cfg.train.classifier


def class_labels(rd: RunDir) -> list[str]:
    """The classes of a run: every label of split.csv, sorted."""
    return sorted({r.label for r in rd.split_rows()})
