"""The one progress bar of every long loop (featurize, refine, download, dedup): tqdm on stderr in a terminal,
a notebook widget in Jupyter (``tqdm.auto``)."""
from __future__ import annotations

from typing import Any


def progress_bar(total: int, desc: str, *, unit: str = "img", leave: bool = False) -> Any:
    """A tqdm bar of ``total`` ``unit``s, redrawn at most twice a second (tqdm is imported only here)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True, mininterval=0.5)
