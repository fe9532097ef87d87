"""Running the real ``imgclf`` command line, in another process or in this one, with the tiny settings of
:func:`datagen.tiny_config`."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from datagen import shared_engines


def tiny_sets(data_root: Path) -> list[str]:
    """--set options of a small, fast svm run whose caches live under ``data_root`` (given the session's engines)."""
    shared_engines(data_root)
    return ["--set", f'data.root="{data_root}"', "--set", "svm.cv_folds=3", "--set", "svm.c_values=[0.01, 1.0, 100.0]",
            "--set", "tracking.enabled=false"]


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "imgclf", *(str(a) for a in args)]



def start(*args: object) -> subprocess.Popen:
    """``imgclf ARGS`` in the background; Ctrl-C (SIGINT) reaches it even when this process ignores it (a
    background job of a shell without job control), as it reaches a command typed in a terminal."""
    return subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, what: str, limit_s: float = 240) -> None:
    """Poll ``condition`` until it holds; fail when ``proc`` ended first (or after ``limit_s``)."""
    end = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"no {what} within {limit_s} s")
        time.sleep(0.05)
