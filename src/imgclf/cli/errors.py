"""The command line's one error path: usage mistakes, our own errors and Ctrl-C, whatever typer runs on.

typer up to 0.25 runs on the ``click`` package, from 0.26 on its own copy (``typer._click``); up to
0.14 Ctrl-C reaches us as click's ``Abort``, from 0.15 as the returned exit code 130.
:func:`click_exceptions` finds the exceptions of the click that the installed typer really uses,
so nothing depends on which click is installed beside it.
"""
from __future__ import annotations

import difflib
import importlib
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Sequence

INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C
USAGE = 2


class Interrupted(Exception):
    """Ctrl-C inside a command that knows how its work can be continued: ``hint`` says how."""

    def __init__(self, hint: str = ""):
        super().__init__("interrupted")
        self.hint = hint


def click_exceptions() -> ModuleType:
    """The ``exceptions`` module of the click that typer's command classes are built on."""
    import typer.core

    base = next(k for k in typer.core.TyperGroup.__mro__ if not k.__module__.startswith("typer.core"))
    return importlib.import_module(base.__module__.rpartition(".")[0] + ".exceptions")


def usage_error(e: Any, args: Sequence[str]) -> tuple[str, str]:
    """``(error, hint)`` lines for a click usage error ``e`` raised while parsing ``args``."""
    ctx = getattr(e, "ctx", None)
    if ctx is None:  # raised by the option parser: the command is the first word (imgclf's own options are flags)
        path = " ".join(["imgclf", *[a for a in args if not a.startswith("-")][:1]])
        return f"{path}: {_sentence(e.format_message())}", f"{path} --help lists its options"
    path = ctx.command_path
    commands = getattr(ctx.command, "commands", None)
    if isinstance(e, click_exceptions().NoSuchOption):
        return f"{path} has no option {e.option_name}", _did_you_mean(e.option_name, _option_names(ctx.command), f"{path} --help lists its options")
    if commands is not None:
        given = _command_given(path, args)
        if given is not None and given not in commands:
            names = sorted(n for n, c in commands.items() if not getattr(c, "hidden", False))
            return f"{path} has no command {given!r}", _did_you_mean(given, names, f"the commands are {', '.join(names)}")
        if given is None:
            return f"{path} needs a command", f"one of {', '.join(sorted(commands))}; {path} --help says what each does"
    return f"{path}: {_sentence(e.format_message())}", f"usage: {_usage(ctx)}; {path} --help explains each option"


def short_usage(app: Any) -> str:
    """What bare ``imgclf`` prints: the usage, the commands and where to start (three lines)."""
    names = sorted([c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
                   + [g.name for g in app.registered_groups])
    return ("usage: imgclf COMMAND [OPTIONS]   (imgclf --help describes every command; imgclf COMMAND --help its options)\n"
            f"commands: {', '.join(names)}\n"
            "start with: imgclf demo   (generated images)   or   imgclf run --images DIR   (one subfolder per class)")


def resumable_epoch(run_dir: Path | None) -> int | None:
    """Epochs done by the interrupted refinement in ``run_dir`` when ``imgclf refine --resume`` can
    continue it (a dnn or svm_on_refined run holding its checkpoint), else None."""
    if run_dir is None:
        return None
    from ..refine.checkpoint import INDEX
    from ..rundir.layout import RunDir
    from ..util.files import read_json

    try:
        epoch = int(read_json(RunDir(run_dir).checkpoints / INDEX)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):  # no checkpoint, or not one refine --resume could read
        return None
    from ..train.dnn import REFINED

    saved = RunDir(run_dir).saved_config()
    return epoch if saved is not None and saved.train.classifier in REFINED else None


def resume_hint(run_dir: Path | None) -> str:
    """The command that continues the refinement interrupted in ``run_dir``, or ""."""
    epoch = resumable_epoch(run_dir)
    return "" if epoch is None else f"imgclf refine --resume {run_dir}   (continues the refinement after epoch {epoch})"


@contextmanager
def resumable(run_dir: Path | None) -> Iterator[None]:
    """Ctrl-C inside becomes :class:`Interrupted` with :func:`resume_hint` of ``run_dir``."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(resume_hint(run_dir)) from None


def _did_you_mean(given: str, names: Sequence[str], otherwise: str) -> str:
    close = difflib.get_close_matches(given, names, n=3, cutoff=0.6)
    return f"did you mean {' or '.join(close)}? ({otherwise})" if close else otherwise


def _option_names(command: Any) -> list[str]:
    names = ["--help"]
    for p in getattr(command, "params", ()):
        if getattr(p, "param_type_name", "") == "option":
            names += [*p.opts, *p.secondary_opts]
    return names


def _command_given(path: str, args: Sequence[str]) -> str | None:
    """The word of ``args`` in the place of a command under the group at ``path`` (its options are
    flags: --help, --version), or None when there is none."""
    rest = list(args)
    for name in path.split()[1:]:
        rest = rest[rest.index(name) + 1:] if name in rest else rest
    return next((a for a in rest if not a.startswith("-")), None)


def _usage(ctx: Any) -> str:
    text = " ".join(ctx.get_usage().split())
    return text[len("Usage:"):].strip() if text.lower().startswith("usage:") else text


def _sentence(message: str) -> str:
    """A click message as the middle of our line: first letter lowered, no final full stop."""
    m = " ".join(message.split()).rstrip(".")
    return m[:1].lower() + m[1:] if m[1:2].islower() else m
