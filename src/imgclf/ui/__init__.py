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
    from ..config.settings import Config, ServeConfig
    from .live import Live


def default_thumbs_dir() -> Path:
    """``DATA_ROOT/thumbs``: the thumbnail cache beside the other derived data."""
    from ..config.settings import DataConfig

    return Path(DataConfig().root) / "thumbs"


def mount_ui(app: FastAPI, *, predictor: Any, images_dir: str | os.PathLike | None,
             run_dir: str | os.PathLike | None, thumbs_dir: str | os.PathLike | None = None,
             max_body_mb: float | None = None, runs: str | os.PathLike | None = None,
             cfg: Config | None = None, token_required: bool = False) -> Live:
    """Add the UI pages (``/ui/dataset``, ``/ui/results``, ``/ui/try``, ``/ui/label``, ``/ui/iterations``, ``/ui/train``), their
    API and static files to ``app``; returns the :class:`Live` state (the chosen and the published iteration).

    ``images_dir``: the dataset to browse and correct; ``run_dir``: the iteration shown first;
    ``predictor``: the model the service answers with (``run_dir``'s, or the published one's);
    ``runs``: the dataset's runs folder (its iterations; default ``run_dir``'s parent). Any of them may
    be None. Thumbnails are cached in ``thumbs_dir`` (default DATA_ROOT/thumbs); ``max_body_mb``, the
    service's body limit, lets the try page refuse too large a file before sending it. Nothing is read
    until a page asks. ``token_required``: the service checks a token (the publish panel's snippets send one).
    The Train page starts runs of ``images_dir`` into ``runs`` with the settings ``cfg``.
    """
    from ..config.settings import Config
    from .catalog import Catalog
    from .intake import build_intake_router
    from .iterations import build_iterations_router
    from .label_next import build_label_next_router
    from .live import Live
    from .quick import build_quick_router
    from .routes import STATIC_DIR, build_router
    from .thumbs import ThumbnailCache
    from .train import build_train_router

    cfg = cfg or Config()
    catalog = Catalog(images_dir, pool=cfg.data.pool) if images_dir else None
    thumbs = ThumbnailCache(thumbs_dir or default_thumbs_dir())
    if runs is None and run_dir is not None:
        runs = Path(run_dir).resolve().parent
    live = Live(service=app.state.imgclf, catalog=catalog, images_dir=str(images_dir) if images_dir else None,
                runs=str(runs) if runs is not None else None, cfg=cfg)
    live.start(run_dir, predictor)
    app.state.ui_live = live
    app.include_router(build_router(catalog=catalog, live=live, thumbs=thumbs, max_body_mb=max_body_mb))
    app.include_router(build_label_next_router(lambda: live.label_next, thumbs))
    app.include_router(build_quick_router(lambda: live.run_dir, images_dir))
    app.include_router(build_iterations_router(live, catalog, token_required=token_required))
    app.include_router(build_intake_router(catalog))
    app.include_router(build_train_router(cfg, images_dir, runs))
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    return live


def create_ui_app(predictor: Any | None, serve_cfg: ServeConfig, *, token: str | None = None, keep_into: Any = None,
                  **ui: Any) -> FastAPI:
    """The service app of :func:`imgclf.serve.app.create_app` with the web UI mounted on it.

    ``ui`` are the keyword arguments of :func:`mount_ui` (``images_dir``, ``run_dir``, ``thumbs_dir``, ``runs``,
    ``cfg``); ``keep_into`` is where the service keeps the images it is asked about, with ``serve.keep_inputs``
    (see :func:`create_app`).
    The UI's routes are added after the service's middleware, which guards every route of the
    app whenever it was added: ``token`` protects the UI's pages, API and static files too.
    """
    from ..serve.app import create_app

    app = create_app(predictor, serve_cfg, token=token, keep_into=keep_into)
    mount_ui(app, predictor=predictor, max_body_mb=serve_cfg.max_body_mb, token_required=bool(token), **ui)
    return app
