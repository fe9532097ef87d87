"""The ``imgclf`` command line: thin wrappers that parse, call one library function, print.

Feature areas add their commands with ``register(app)`` functions (see ``_register_all``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .config import Config, ConfigError, load_config
from .errors import ImgclfError

app = typer.Typer(
    name="imgclf",
    help="Train, evaluate, improve and deploy an image classifier by transfer learning (offline, CPU-friendly).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML file of settings (see `imgclf config`).")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override one setting, e.g. --set model.resolution=320 (repeatable)."),
]


def make_config(config: Optional[Path], overrides: Optional[list[str]], extra: Optional[list[str]] = None) -> Config:
    """Defaults <- --config file <- --set overrides <- options given on the command line."""
    return load_config(config, list(overrides or []) + list(extra or []))


def echo_json(obj) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))


def _register_all() -> None:
    from . import commands

    commands.register(app)
    for modname in ("imgclf.refine_cli", "imgclf.serve.cli", "imgclf.ui.cli", "imgclf.acquire.cli", "imgclf.tracking_cli"):
        try:
            mod = __import__(modname, fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name and modname.startswith(e.name):
                continue  # that feature area is not part of this build
            raise
        mod.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; user errors become one line plus a hint."""
    _register_all()
    try:
        app(args=argv, standalone_mode=False)
    except (ImgclfError, ConfigError) as e:
        hint = getattr(e, "hint", "") or "run the command with --help to see its options"
        typer.echo(f"error: {e}\nhint: {hint}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except SystemExit as e:
        return int(e.code or 0)
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.Abort):
            return 1
        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
