"""The ``imgclf`` command line: thin wrappers that parse, call one library function, print.

Each module of this package adds the commands of one area with ``register(app)``: pipeline
(run, prepare, featurize, train, evaluate, predict, demo, config, backbones), refine, serve
(serve, call), ui, acquire (download, scrape, dedup), runs, doctor, label (suggest) and explain. The app is built once, on import.
"""
from __future__ import annotations

import sys

import typer

from ..util.errors import ImgclfError
from . import acquire, doctor, explain, label, pipeline, refine, runs, serve, ui

app = typer.Typer(
    name="imgclf",
    help="Train, evaluate, improve and deploy an image classifier by transfer learning (offline, CPU-friendly).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _commands in (pipeline, refine, serve, ui, acquire, runs, doctor, label, explain):
    _commands.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; user errors become one line plus a hint."""
    try:
        app(args=argv, standalone_mode=False)
    except ImgclfError as e:
        hint = e.hint or "run the command with --help to see its options"
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
