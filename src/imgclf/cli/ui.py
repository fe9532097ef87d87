"""``imgclf ui``: browse and correct a dataset, browse a run's results, try its model."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import (
    ConfigOpt,
    HostOpt,
    InsecureOpt,
    PortOpt,
    SetOpt,
    TokenFileOpt,
    TokenOpt,
    bind_overrides,
    check_port_free,
    command_config,
    resolve_token,
)

ImagesOpt = Annotated[Optional[Path], typer.Option(
    "--images", "-i", help="Dataset folder: one subfolder per class (default: the run's dataset).")]
RunOpt = Annotated[Optional[Path], typer.Option(
    "--run", "-r", help="Run directory: shows its test results and loads RUN/model for the try page.")]


def register(app: typer.Typer) -> None:
    @app.command()
    def ui(images: ImagesOpt = None, run: RunOpt = None,
           host: HostOpt = None, port: PortOpt = None, token: TokenOpt = None, token_file: TokenFileOpt = None,
           insecure: InsecureOpt = False, config: ConfigOpt = None, set: SetOpt = None) -> None:
        """Web UI: correct labels (saved to DATASET/annotations.csv), browse test results, try the model."""
        from ..rundir.state import incomplete_info
        from ..serve.server import check_bind
        from ..ui.server import serve_ui, ui_settings

        cfg = command_config(config, set, flags=bind_overrides(host, port))
        if run is not None and (incomplete := incomplete_info(run)):  # shown all the same; the UI's header says so too
            typer.echo(f"warning: {incomplete['message']}\nhint: {incomplete['hint']}", err=True)
        token = resolve_token(token, token_file)
        check_bind(cfg.serve.host, token, insecure)  # every refusal before the address is announced
        ui_settings(cfg, images, run)
        check_port_free(cfg.serve.host, cfg.serve.port)
        typer.echo(f"web UI: http://{cfg.serve.host}:{cfg.serve.port}/ui/dataset" + ("?token=<token>" if token else ""))
        serve_ui(cfg, images, run, token=token, insecure=insecure)
