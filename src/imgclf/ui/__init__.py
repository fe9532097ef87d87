"""The web UI: browse and correct a dataset, browse a run's results, try the model.

Served by the same FastAPI app as the REST service: :func:`create_ui_app` builds the service's
app and :func:`mount_ui` adds the UI to it, so the service's token, body limit and error
answers cover the UI too. Pages are plain HTML, CSS and JavaScript in ``static/``: no build
step, nothing fetched from elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

if TYPE_CHECKING:
    from ..config.settings import ServeConfig


def default_thumbs_dir() -> Path:
    """``DATA_ROOT/thumbs``: the thumbnail cache beside the other derived data."""
    from ..config.settings import DataConfig

    return Path(DataConfig().root) / "thumbs"


def mount_ui(app: FastAPI, *, predictor: Any, images_dir: str | os.PathLike | None,
             run_dir: str | os.PathLike | None, thumbs_dir: str | os.PathLike | None = None,
             max_body_mb: float | None = None) -> None:
    """Add the UI pages (``/ui/dataset``, ``/ui/results``, ``/ui/try``, ``/ui/label``), their API and static files to ``app``.

    ``images_dir``: the dataset to browse and correct; ``run_dir``: a run whose test results to
    show; ``predictor``: the loaded model for the try page. Any of them may be None. Thumbnails
    are cached in ``thumbs_dir`` (default DATA_ROOT/thumbs); ``max_body_mb``, the service's body
    limit, lets the try page refuse too large a file before sending it. Nothing is read until a page asks.
    """
    from .catalog import Catalog
    from .label_next import LabelNext, build_label_next_router
    from .quick import build_quick_router
    from .results import RunResults
    from .review import Review
    from .routes import STATIC_DIR, build_router
    from .thumbs import ThumbnailCache

    catalog = Catalog(images_dir) if images_dir else None
    results = RunResults(run_dir, catalog) if run_dir else None
    thumbs = ThumbnailCache(thumbs_dir or default_thumbs_dir())
    review = Review(run_dir, catalog) if run_dir and catalog else None
    app.include_router(build_router(catalog=catalog, results=results, predictor=predictor, thumbs=thumbs, review=review,
                                    max_body_mb=max_body_mb))
    app.include_router(build_label_next_router(LabelNext(run_dir, images_dir) if run_dir and images_dir else None, thumbs))
    app.include_router(build_quick_router(lambda: run_dir, images_dir))
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")


def create_ui_app(predictor: Any | None, serve_cfg: ServeConfig, *, token: str | None = None, **ui: Any) -> FastAPI:
    """The service app of :func:`imgclf.serve.app.create_app` with the web UI mounted on it.

    ``ui`` are the keyword arguments of :func:`mount_ui` (``images_dir``, ``run_dir``, ``thumbs_dir``).
    The UI's routes are added after the service's middleware, which guards every route of the
    app whenever it was added: ``token`` protects the UI's pages, API and static files too.
    """
    from ..serve.app import create_app

    app = create_app(predictor, serve_cfg, token=token)
    mount_ui(app, predictor=predictor, max_body_mb=serve_cfg.max_body_mb, **ui)
    return app
