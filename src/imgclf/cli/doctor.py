"""``imgclf doctor``: mislabelled images, outliers, near duplicates and leakage of a run's dataset."""
from __future__ import annotations

from typing import Annotated

import typer

from .options import ConfigOpt, RunDirReq, SetOpt, echo_json
from .pipeline import step_config


def doctor(run_dir: RunDirReq, config: ConfigOpt = None, set: SetOpt = None,
           top: Annotated[int, typer.Option(help="Suspected label errors to print, worst first.")] = 10,
           json: Annotated[bool, typer.Option("--json", help="Print the health summary as one JSON line.")] = False) -> None:
    """Find suspected label errors, outliers, near duplicates and train/test leakage from the run's cached features."""
    from ..api import track
    from ..pipeline.steps import doctor as do
    from ..rundir.layout import RunDir
    from ..util.files import read_csv

    cfg = step_config(run_dir, config, set)
    h = do(cfg, run_dir)
    if json:
        echo_json(h)
        return
    rd = RunDir(run_dir)
    typer.echo(f"{h['images']} images: estimated label error rate {100 * h['estimated_label_error_rate']:.1f}%; "
               f"{h['label_issues']} suspected label errors ({h['label_issues_test']} in test), {h['outliers']} outliers, "
               f"{h['duplicate_pairs']} near-duplicate pairs ({h['cross_class_pairs']} across classes, "
               f"{h['leak_pairs']} across train/test) in {h['seconds']} s")
    if h.get("accuracy_without_suspects") is not None:
        typer.echo(f"test accuracy without leaking or suspect test images: {100 * h['accuracy_without_suspects']:.2f}% "
                   f"on {h['n_test_without_suspects']} images")
    for r in read_csv(rd.label_issues)[:top]:
        typer.echo(f"  {r['rank']:>4}. {r['rel']}  {r['given_label']} → {r['suggested_label']}  (p {float(r['score']):.3f}, {r['split']})")
    typer.echo(f"findings: {rd.label_issues}, {rd.outliers}, {rd.duplicates}")
    typer.echo(f"review them: imgclf ui --images {cfg.images_dir()} --run {run_dir}   (then the Review view)")
    track(cfg, run_dir, "doctor")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
