"""The ``imgclf`` command line: thin wrappers that parse, call one library function, print.

Each module of this package adds the commands of one area with ``register(app)``: pipeline
(run, prepare, featurize, train, evaluate, predict, demo, config, backbones), refine, serve
(serve, call), ui, acquire (download, scrape, dedup), runs, doctor, label (suggest) and explain.
The app is built once, on import. :func:`main` is the one error path (see :mod:`.errors`).
"""
from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from .. import __version__
from ..util.errors import ImgclfError
from . import acquire, doctor, explain, label, pipeline, refine, runs, serve, ui
from .errors import INTERRUPTED, USAGE, Interrupted, click_exceptions, short_usage, usage_error

app = typer.Typer(
    name="imgclf",
    help="Train, evaluate, improve and deploy an image classifier by transfer learning (offline, CPU-friendly).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"imgclf {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    pass


for _commands in (pipeline, refine, serve, ui, acquire, runs, doctor, label, explain):
    _commands.register(app)


def configure_logging(quiet: bool) -> None:
    """Log lines on stderr as plain messages: imgclf's own from INFO (WARNING with --quiet), other
    libraries' from WARNING. Replaces the handler an earlier call in this process added."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if h.get_name() == "imgclf-cli"]:
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("imgclf-cli")
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("imgclf").setLevel(logging.WARNING if quiet else logging.INFO)


def _fail(error: str, hint: str, code: int = USAGE) -> int:
    typer.echo(f"error: {error}\nhint: {hint}", err=True)
    return code


def _interrupted(hint: str = "") -> int:
    typer.echo("interrupted" + (f"\nhint: {hint}" if hint else ""), err=True)
    return INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script. A mistake prints ``error:`` and ``hint:`` on stderr and
    returns 2; Ctrl-C prints ``interrupted`` and returns 130; never a traceback for either."""
    args = sys.argv[1:] if argv is None else list(argv)
    configure_logging(quiet=any(a in ("--quiet", "-q") for a in args))
    if not args:
        typer.echo(short_usage(app), err=True)
        return USAGE
    clicks = click_exceptions()
    try:
        rv = app(args=args, prog_name="imgclf", standalone_mode=False)
    except ImgclfError as e:
        return _fail(str(e), e.hint or "run the command with --help to see its options")
    except Interrupted as e:
        return _interrupted(e.hint)
    except KeyboardInterrupt:
        return _interrupted()
    except typer.Abort as e:  # typer up to 0.14 turns Ctrl-C into Abort
        if isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            return _interrupted()
        typer.echo("aborted", err=True)
        return 1
    except clicks.UsageError as e:
        if isinstance(e, getattr(clicks, "NoArgsIsHelpError", ())):  # a group without its command: its help is the answer
            text = e.format_message().strip()  # empty where typer has printed the help itself (with rich)
            if text:
                typer.echo(text)
            return USAGE
        return _fail(*usage_error(e, args), code=e.exit_code)
    except clicks.ClickException as e:
        return _fail(e.format_message(), "run the command with --help to see its options", code=e.exit_code)
    if rv == INTERRUPTED:  # typer from 0.15: Ctrl-C is returned as this exit code
        return _interrupted()
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
