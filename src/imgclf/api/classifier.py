"""``ImageClassifier``: the whole tool from Python, in the fit / predict / predict_proba convention.

    import imgclf
    clf = imgclf.ImageClassifier(preset="fast").fit("photos/")      # one subfolder per class
    clf.predict(["a.jpg", "b.jpg"])                                   # array(['ants', 'bees'], dtype=object)
    clf.predict_proba("a.jpg")                                        # DataFrame: one column per class
    clf.evaluate("holdout/")                                          # metrics dict (+ .per_class DataFrame)
    clf.save("ants_bees.model"); imgclf.load("ants_bees.model").predict("c.jpg")

``fit`` runs exactly what ``imgclf run`` runs (run directory, run history, data doctor), so a model
fitted here and one trained on the command line with the same settings and seed are the same bundle.
Every image handed to the object goes through the one safe decoder with this object's pixel limit
(``images.max_pixels``), whatever other code in the process set.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..bundle.folder import copy_bundle, load_bundle
from ..config.settings import Config, load_config
from ..rundir.layout import RunDir
from ..util.errors import ConfigError, ImageError, ImgclfError, RunDirError
from ..util.files import read_json
from . import display
from .inputs import image_sources, labelled_folder, labelled_sources

log = logging.getLogger(__name__)
PRESETS = ("fast", "balanced", "best")


def _toml(value: Any) -> str:
    """A Python value as the TOML literal ``--set`` reads (JSON's strings, numbers, booleans and lists are TOML too)."""
    if isinstance(value, (Path, os.PathLike)):
        value = os.fspath(value)
    return json.dumps(value)


def settings_overrides(settings: dict[str, Any]) -> list[str]:
    """``section.key=value`` items of keyword settings: ``section__key=value`` or ``section={"key": value}``."""
    out = []
    for name, value in settings.items():
        if isinstance(value, dict):
            out.extend(f"{name}.{k}={_toml(v)}" for k, v in value.items())
        elif "__" in name:
            sec, key = name.split("__", 1)
            out.append(f"{sec}.{key}={_toml(value)}")
        else:
            raise ConfigError(f"setting {name!r}: expected section__key=value (e.g. model__resolution=320) or "
                              f"section={{'key': value}} (e.g. svm={{'cv_folds': 3}})", hint="imgclf config prints every key")
    return out


class ImageClassifier:
    """An image classifier trained by transfer learning: pretrained CNN features, then a linear SVM
    (or refinement, for ``train__classifier="dnn"`` or preset ``best``).

    Parameters
    ----------
    preset : "fast" | "balanced" | "best"
        fast: the configured featurizer; balanced: featurizers chosen by nested cross-validation on the
        train split; best: balanced, then refinement and a calibrated ensemble.
    time_limit : float, optional
        Seconds the whole fit should take at most (the plan drops work to fit in it).
    **settings
        Any configuration key, as ``section__key=value`` (``model__resolution=320``) or
        ``section={"key": value}`` (``svm={"cv_folds": 3}``): the same keys and checks as
        ``imgclf run --set``; a wrong key or value raises ConfigError naming it.

    Attributes (after :meth:`fit` or :func:`load`)
    ----------
    classes_ : list of str
    run_dir_ : Path or None — the run directory of the fit (None for a model loaded from a bundle alone)
    metrics_ : dict — the test metrics of the fit (metrics.json), or the bundle's
    bundle_dir_ : Path

    Example
    -------
    >>> clf = ImageClassifier(preset="fast", model__resolution=224).fit("photos/")   # doctest: +SKIP
    >>> clf.predict("photos/ants/1.jpg")                                             # doctest: +SKIP
    array(['ants'], dtype=object)
    """

    def __init__(self, preset: str = "fast", time_limit: float | None = None, **settings: Any):
        self.preset = preset
        self.time_limit = time_limit
        self.settings = settings
        self.config_: Config = self._config()  # settings are checked now, not at fit
        self.run_dir_: Path | None = None
        self.bundle_dir_: Path | None = None
        self.metrics_: dict[str, Any] = {}
        self._predictor: Any = None

    # ------------------------------------------------------------------ configuration

    def _config(self, images: str | os.PathLike | None = None) -> Config:
        if self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}; got {self.preset!r}")
        if self.time_limit is not None and not (isinstance(self.time_limit, (int, float)) and self.time_limit > 0):
            raise ConfigError(f"time_limit must be a number of seconds > 0 (or None); got {self.time_limit!r}")
        flags = [f"train.preset={_toml(self.preset)}"]
        if self.time_limit is not None:
            flags.append(f"train.time_limit_s={float(self.time_limit)}")
        if images is not None:
            flags.append(f"data.images={_toml(str(Path(images).resolve()))}")
        return load_config(None, settings_overrides(self.settings), flags=flags)

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's convention)."""
        return {"preset": self.preset, "time_limit": self.time_limit, **self.settings}

    # ------------------------------------------------------------------ training

    def fit(self, data: Any, *, run_dir: str | os.PathLike | None = None, image_col: str = "image",
            label_col: str = "label", progress: bool = True) -> "ImageClassifier":
        """Train on ``data`` and evaluate on its test split, as ``imgclf run`` does; returns ``self``.

        ``data``: a folder with one subfolder per class (train/ and test/ subfolders are honoured as on the
        command line), a list of ``(image, label)`` pairs (paths or bytes), or a DataFrame with ``image_col``
        (paths or bytes) and ``label_col``. ``run_dir``: where the run's files go (default
        ``DATA_ROOT/runs/<dataset>/<timestamp>``, as ``imgclf run``).

        >>> clf = ImageClassifier().fit([("a1.jpg", "ants"), ("b1.jpg", "bees"), ...])   # doctest: +SKIP
        """
        from ..pipeline.steps import default_run_dir
        from . import run

        folder = labelled_folder(data, self.config_.data.root, image_col, label_col)
        cfg = self._config(folder)
        rd = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
        metrics = run(cfg, rd, progress=progress)
        self.config_ = RunDir(rd).saved_config() or cfg
        self.run_dir_ = rd
        self.metrics_ = metrics.to_dict()
        self._open(rd / "model")
        return self

    def _open(self, bundle_dir: str | os.PathLike) -> None:
        from ..config.settings import EngineConfig
        from ..inference.predict import Predictor

        bundle = load_bundle(bundle_dir)
        self._predictor = Predictor(bundle_dir, EngineConfig(**bundle.meta.engine), self.config_.predict)
        self.bundle_dir_ = Path(bundle_dir)
        if not self.metrics_:
            self.metrics_ = dict(self._predictor.bundle.metrics)

    def _model(self) -> Any:
        if self._predictor is None:
            raise ImgclfError("this ImageClassifier is not fitted yet", hint="call fit(data) first, or imgclf.load(bundle)")
        return self._predictor

    @property
    def classes_(self) -> list[str]:
        """The model's classes, in the order of predict_proba's columns."""
        return list(self._model().labels)

    # ------------------------------------------------------------------ prediction

    def _prepare(self, sources: Sequence[bytes | str]) -> tuple[list[Any], list[int], list[str]]:
        """(prepared crops, their indices, the error of each input or "") with this object's pixel limit."""
        compute = self._model().compute
        limit = self.config_.images.max_pixels
        prepared, ok, errors = [], [], []
        for i, src in enumerate(sources):
            try:
                prepared.append(compute.prepare(src, max_pixels=limit))
                ok.append(i)
                errors.append("")
            except ImageError as e:
                errors.append(str(e))
            except OSError as e:
                errors.append(f"unreadable: {e.strerror or e}")
        return prepared, ok, errors

    def _rows(self, x: Any, batch_size: int = 32) -> tuple[list[str], np.ndarray, list[str]]:
        """(names, rows (N, K + 1): probabilities then OOD score — NaN rows for unreadable inputs, errors)."""
        names, sources = image_sources(x)
        p = self._model()
        rows = np.full((len(sources), len(p.labels) + 1), np.nan)
        errors: list[str] = []
        for start in range(0, len(sources), batch_size):
            prepared, ok, errs = self._prepare(sources[start:start + batch_size])
            errors.extend(errs)
            if ok:
                rows[[start + i for i in ok]] = p.compute.rows(prepared)
        bad = [(n, e) for n, e in zip(names, errors) if e]
        if bad:
            warnings.warn(f"{len(bad)} of {len(names)} images could not be read (their rows are NaN, their label None); "
                          f"first: {bad[0][0]}: {bad[0][1]}", stacklevel=3)
        return names, rows, errors

    def predict_proba(self, x: Any) -> Any:
        """Calibrated class probabilities: a DataFrame with one row per image (indexed by path, or
        ``<input N>``) and one column per class (``classes_``); NaN for an image that could not be read.

        >>> clf.predict_proba(["a.jpg", "b.jpg"]).round(3)        # doctest: +SKIP
                ants   bees
        a.jpg  0.981  0.019
        """
        import pandas as pd

        names, rows, _ = self._rows(x)
        return pd.DataFrame(rows[:, : len(self.classes_)], index=pd.Index(names, name="image"), columns=self.classes_)

    def predict(self, x: Any) -> np.ndarray:
        """The label of each image, as ``imgclf predict`` answers it: a class, ``"unknown"`` (unlike every
        training image, when ``predict.reject_unknown``) or ``"uncertain"`` (top score under
        ``predict.min_confidence``); None for an image that could not be read.

        >>> clf.predict("photos/ants/1.jpg")                       # doctest: +SKIP
        array(['ants'], dtype=object)
        """
        return np.array([r["label"] if r else None for r in self.predict_details(x)], dtype=object)

    def predict_details(self, x: Any) -> list[dict[str, Any] | None]:
        """One dict per image with every field ``imgclf predict`` prints (label, score, scores, ood_score,
        unknown, nearest_label), plus ``image``; an unreadable image gives ``{"image", "error"}``."""
        p = self._model()
        names, rows, errors = self._rows(x)
        return [p.compute.answer_row(row, image=name) if not err else {"image": name, "error": err, "label": None}
                for name, row, err in zip(names, rows, errors)]

    def evaluate(self, data: Any, *, image_col: str = "image", label_col: str = "label") -> "display.Evaluation":
        """Metrics of the model on labelled ``data`` (a class-folder dataset, (image, label) pairs or a DataFrame):
        a dict (accuracy, class_avg_accuracy, per-class precision/recall/F1, confusion_matrix, ...) whose
        ``per_class``, ``confusion`` and ``predictions`` attributes are DataFrames.

        >>> ev = clf.evaluate("holdout/"); ev["accuracy"], ev.per_class       # doctest: +SKIP
        """
        from ..evaluation.metrics import compute_metrics

        names, sources, labels = labelled_sources(data, image_col, label_col)
        unknown = sorted(set(labels) - set(self.classes_))
        if unknown:
            raise ImgclfError(f"labels the model does not know: {', '.join(unknown)}; its classes are {', '.join(self.classes_)}")
        _, rows, errors = self._rows(sources)
        ok = np.array([not e for e in errors], dtype=bool)
        if not ok.any():
            raise ImgclfError("none of the images could be read", hint=errors[0] if errors else "")
        proba = rows[ok, : len(self.classes_)]
        y = np.array([self.classes_.index(lbl) for lbl in labels])[ok]
        m = compute_metrics(y, proba, self.classes_).to_dict()
        m.pop("roc_curves", None)
        m["n_unreadable"] = int((~ok).sum())
        kept = [i for i in range(len(names)) if ok[i]]
        return display.Evaluation(m, [names[i] for i in kept], [labels[i] for i in kept], proba, self.classes_)

    def explain(self, x: Any, classes: Sequence[str] = ()) -> list["display.ExplanationView"]:
        """Class activation maps (where the model finds each class) of each image: its predicted class and
        ``classes``; each result shows the overlay in a notebook (``.overlay(cls)`` gives the PIL image).

        >>> clf.explain("photos/ants/1.jpg")[0]                    # doctest: +SKIP
        """
        p = self._model()
        names, sources = image_sources(x)
        limit = self.config_.images.max_pixels
        details = self.predict_details(sources)
        out = []
        for name, src, decided in zip(names, sources, details):
            if decided.get("error"):
                raise ImageError(f"{name}: {decided['error']}")
            out.append(display.ExplanationView(name, p.explainer.explain(src, classes, max_pixels=limit), decided))
        return out

    # ------------------------------------------------------------------ the run's other results

    def _run_dir(self, what: str) -> RunDir:
        if self.run_dir_ is None:
            raise RunDirError(f"{what} needs the run directory this model was trained in; this one was loaded from a "
                              f"bundle alone ({self.bundle_dir_})", hint="fit() it, or imgclf.load() the model folder of a run")
        return RunDir(self.run_dir_)

    def doctor(self) -> "display.Findings":
        """The data doctor's findings on the training data (suspected label errors, outliers, near
        duplicates), each a DataFrame; runs the doctor when the fit did not (``doctor.enabled`` off).

        >>> clf.doctor().label_issues.head()                       # doctest: +SKIP
        """
        rd = self._run_dir("the data doctor")
        if not rd.label_issues.exists():
            from ..pipeline.steps import doctor
            from . import track

            doctor(self.config_, rd.root)
            track(self.config_, rd.root, "doctor")
        issues, outliers, duplicates = rd.read_findings()
        return display.Findings(issues, outliers, duplicates)

    def suggest(self, n: int = 20, strategy: str = "") -> Any:
        """The pool's unlabelled images (``data.pool``, default IMAGES/_unlabeled) to label next, first first:
        a DataFrame (rank, path, predicted, score, reason); writes suggestions.csv as ``imgclf suggest``.

        >>> clf.suggest(10)                                         # doctest: +SKIP
        """
        import pandas as pd

        from ..labelnext import DEFAULT_STRATEGY
        from ..labelnext.step import suggest

        rd = self._run_dir("Label next")
        s = suggest(self.config_, rd.root, n=n, strategy=strategy or DEFAULT_STRATEGY, progress=False)
        return pd.DataFrame(s["rows"], columns=["rank", "path", "rel", "predicted", "score", "reason"])

    def leaderboard(self) -> Any:
        """The candidate featurizers a preset scored (nested cross-validation on the train split), best first;
        one row for a fit without a choice (preset fast or a pinned featurizer).

        >>> ImageClassifier(preset="balanced").fit("photos/").leaderboard()     # doctest: +SKIP
        """
        import pandas as pd

        rd = self._run_dir("the leaderboard")
        if rd.candidates.exists():
            rows = read_json(rd.candidates).get("candidates", [])
            df = pd.DataFrame(rows)
            if "cv_class_avg_accuracy" in df:
                df = df.sort_values("cv_class_avg_accuracy", ascending=False, na_position="last", kind="stable")
            return df.reset_index(drop=True)
        m = self.metrics_
        return pd.DataFrame([{"featurizers": self._model().bundle.meta.feature_ids,
                              "cv_class_avg_accuracy": None, "status": "fixed (nothing to choose)", "winner": True,
                              "test_class_avg_accuracy": m.get("class_avg_accuracy")}])

    # ------------------------------------------------------------------ saving

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model bundle (its files and SHA-256 manifest, as a run writes it) to ``path``: a new folder,
        or a bundle saved earlier, replaced atomically. Load it back with :func:`imgclf.load`.

        >>> clf.save("ants_bees.model")                             # doctest: +SKIP
        """
        target = Path(path)
        if target.exists() and not (target / "bundle.json").is_file():
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()
            else:
                raise ImgclfError(f"{target} exists and is not a model bundle; saving would replace files imgclf did not write",
                                  hint="save to a new folder")
        copy_bundle(self._model().bundle, target)  # the bytes this object loaded and checked
        return target

    # ------------------------------------------------------------------ display

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v is not None)
        state = f" fitted: {len(self.classes_)} classes" if self._predictor is not None else " not fitted"
        return f"ImageClassifier({params}){state}"

    def _repr_html_(self) -> str:
        if self._predictor is None:
            return display.escape(repr(self))
        return display.classifier_html(self)


def load(path: str | os.PathLike, **settings: Any) -> ImageClassifier:
    """An :class:`ImageClassifier` of a saved bundle (``save``) or of any bundle ``imgclf run`` wrote
    (``RUN_DIR/model``; then doctor, suggest and leaderboard read that run). ``settings`` as for the
    constructor (e.g. ``predict__min_confidence=0.6``, ``images__max_pixels=...``).

    >>> clf = imgclf.load("runs/pets/20261205-101500/model")      # doctest: +SKIP
    """
    from ..bundle.folder import locate_bundle

    bundle_dir = locate_bundle(path)
    clf = ImageClassifier(**settings)
    run_dir = bundle_dir.parent
    if (run_dir / "split.csv").exists() and (run_dir / "config.json").exists():
        clf.run_dir_ = run_dir
        saved = RunDir(run_dir).saved_config()
        if saved is not None and not settings:
            clf.config_ = saved
        metrics = run_dir / "metrics.json"
        if metrics.exists():
            clf.metrics_ = read_json(metrics)
    clf._open(bundle_dir)
    return clf
