"""The web UI: browse and correct a dataset, browse a run's results, try the model.

Served by the same FastAPI app as the REST service (``imgclf.serve.app.create_app`` calls
:func:`mount_ui`), so the service's token and body limit guard the UI too. Pages are plain
HTML, CSS and JavaScript in ``static/``: no build step, nothing fetched from elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def default_thumbs_dir() -> Path:
    """``DATA_ROOT/thumbs``: the thumbnail cache beside the other derived data."""
    from ..config import DataConfig

    return Path(DataConfig().root) / "thumbs"


def mount_ui(app: FastAPI, *, predictor: Any, images_dir: str | os.PathLike | None,
             run_dir: str | os.PathLike | None, thumbs_dir: str | os.PathLike | None = None) -> None:
    """Add the UI pages (``/ui/dataset``, ``/ui/results``, ``/ui/try``), their API and static files to ``app``.

    ``images_dir``: the dataset to browse and correct; ``run_dir``: a run whose test results to
    show; ``predictor``: the loaded model for the try page. Any of them may be None. Thumbnails
    are cached in ``thumbs_dir`` (default DATA_ROOT/thumbs). Nothing is read until a page asks.
    """
    from .catalog import Catalog
    from .results import RunResults
    from .routes import STATIC_DIR, build_router
    from .thumbs import ThumbnailCache

    catalog = Catalog(images_dir) if images_dir else None
    results = RunResults(run_dir) if run_dir else None
    thumbs = ThumbnailCache(thumbs_dir or default_thumbs_dir())
    app.include_router(build_router(catalog=catalog, results=results, predictor=predictor, thumbs=thumbs))
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
