"""``imgclf ui``: browse and correct a dataset, browse a run's results, try its model."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli import ConfigOpt, SetOpt, make_config


ImagesOpt = Annotated[Optional[Path], typer.Option(
    "--images", "-i", help="Dataset folder: one subfolder per class (default: the run's dataset).")]
RunOpt = Annotated[Optional[Path], typer.Option(
    "--run", "-r", help="Run directory: shows its test results and loads RUN/model for the try page.")]
TokenOpt = Annotated[Optional[str], typer.Option(
    "--token", envvar="IMGCLF_TOKEN", help="Require this token (default: $IMGCLF_TOKEN); open the page once with ?token=T.")]


def register(app: typer.Typer) -> None:
    @app.command()
    def ui(images: ImagesOpt = None, run: RunOpt = None,
           host: Annotated[Optional[str], typer.Option(help="Bind address (serve.host, default 127.0.0.1).")] = None,
           port: Annotated[Optional[int], typer.Option(help="TCP port (serve.port, default 8000).")] = None,
           token: TokenOpt = None,
           insecure: Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback address without a token.")] = False,
           config: ConfigOpt = None, set: SetOpt = None) -> None:
        """Web UI: correct labels (saved to DATASET/annotations.csv), browse test results, try the model."""
        from .server import serve_ui

        extra = ([f"serve.host={json.dumps(host)}"] if host else []) + ([f"serve.port={port}"] if port is not None else [])
        cfg = make_config(config, set, extra)
        typer.echo(f"web UI: http://{cfg.serve.host}:{cfg.serve.port}/ui/dataset" + ("?token=<token>" if token else ""))
        serve_ui(cfg, images, run, token=token or None, insecure=insecure)
