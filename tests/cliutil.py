"""The command line run in the test's own process (importable as ``cliutil`` from any test folder): a test of
what a command answers needs neither an interpreter's start-up nor its imports; a test of a process's own
behaviour (a signal, a kill, a lock held by another process) starts a real one instead."""
from __future__ import annotations

from typing import NamedTuple

import pytest


class Answer(NamedTuple):
    """A command's exit status and output, named as subprocess.CompletedProcess names them (and unpackable)."""

    returncode: int
    stdout: str
    stderr: str


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> Answer:
    """``imgclf ARGS`` in this process, through ``imgclf.cli.main`` → its exit status, stdout and stderr."""
    from imgclf.cli import main

    capsys.readouterr()  # what the test printed before: not this command's
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return Answer(code, out, err)


def refused(args: list[str], timeout: float = 120) -> int:
    """``imgclf.cli.main(args)`` for a command that must refuse before it serves anything → its exit status.

    Run in a daemon thread: a command that stopped refusing (and serves) fails the test after ``timeout``
    seconds instead of hanging it until pytest's own timeout."""
    import threading

    from imgclf.cli import main

    done: list = []

    def call() -> None:
        try:
            done.append(main(args))
        except BaseException as e:  # noqa: BLE001  (re-raised in the test's thread)
            done.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"imgclf {' '.join(args)} did not refuse: still running after {timeout} s"
    if isinstance(done[0], BaseException):
        raise done[0]
    return done[0]
