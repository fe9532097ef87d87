"""Which files a piece of code opens: one process-wide audit hook (a hook cannot be removed), listened to
only inside :func:`opened_files`."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_LISTENERS: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if _LISTENERS and event == "open" and isinstance(args[0], (str, Path)):
        for seen in _LISTENERS:
            seen.append(str(args[0]))


sys.addaudithook(_audit)


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """``with opened_files() as seen:`` — ``seen`` lists every path opened inside the block, in order."""
    seen: list[str] = []
    _LISTENERS.append(seen)
    try:
        yield seen
    finally:
        _LISTENERS.remove(seen)
