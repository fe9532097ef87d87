"""``imgclf suggest``: which images of the pool of unlabelled images to label next."""
from __future__ import annotations

from typing import Annotated

import typer

from .options import ConfigOpt, QuietOpt, RunDirReq, SetOpt, echo_json
from .pipeline import step_config

_STRATEGY_HELP = ("density (the default): the most uncertain, weighted by how many pool images resemble each; "
                  "margin or entropy: the most uncertain images first; kcenter: the images least like the labelled "
                  "ones; hybrid: k-center among the most uncertain; random: the baseline.")


def suggest(run_dir: RunDirReq, config: ConfigOpt = None, set: SetOpt = None,
            n: Annotated[int, typer.Option("-n", "--number", min=1, help="Images to suggest.")] = 50,
            strategy: Annotated[str, typer.Option(help=_STRATEGY_HELP)] = "",
            top: Annotated[int, typer.Option(help="Suggestions to print, first first.")] = 10,
            json: Annotated[bool, typer.Option("--json", help="Print the summary and the suggestions as one JSON line.")] = False,
            quiet: QuietOpt = False) -> None:
    """Rank the pool's unlabelled images (data.pool, default IMAGES/_unlabeled) and write suggestions.csv."""
    from ..labelnext import DEFAULT_STRATEGY
    from ..pipeline.steps import suggest as do
    from ..rundir.layout import RunDir

    cfg = step_config(run_dir, config, set)
    s = do(cfg, run_dir, n=n, strategy=strategy or DEFAULT_STRATEGY, progress=not quiet and not json)
    if json:
        echo_json(s)
        return
    if s["run_incomplete"]:
        typer.echo(f"warning: {s['run_incomplete']['message']}\nhint: {s['run_incomplete']['hint']}", err=True)
    typer.echo(f"{s['suggested']} of {s['pool']} unlabelled pool images suggested by {s['strategy']} "
               f"({s['labelled_in_pool']} labelled in the pool already, {s['near_duplicates_skipped']} near copies of labelled "
               f"images skipped, {s['unreadable']} unreadable) in {s['seconds']} s")
    for r in s["rows"][:top]:
        typer.echo(f"  {r['rank']:>4}. {r['rel']}  looks like {r['predicted']}  (score {r['score']:.3f}: {r['reason']})")
    typer.echo(f"suggestions: {RunDir(run_dir).suggestions}")
    typer.echo(f"label them: imgclf ui --run {run_dir}   (then the Label next page)")


def register(app: typer.Typer) -> None:
    app.command()(suggest)
