"""``imgclf ui``: the web UI (and the REST service) for a dataset folder and, optionally, a run."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config.settings import Config
from ..util.errors import DatasetError, ImgclfError


def ui_settings(cfg: Config, images_dir: str | os.PathLike | None, run_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The UI keywords of :func:`imgclf.ui.create_ui_app`: checked folders, the thumbnail cache under data.root.

    Without ``images_dir`` the run's own dataset (from its config.json) is opened.
    """
    from ..bundle.folder import locate_bundle
    from ..rundir.layout import RunDir, run_config

    if run_dir is not None:
        locate_bundle(RunDir(run_dir).model)  # BundleError when missing; recovers a swap killed between its renames
        if images_dir is None:
            saved = run_config(run_dir)
            images_dir = saved.images_dir() if saved is not None else None
    if images_dir is None:
        raise ImgclfError("no dataset to open", hint="pass --images DIR (a folder with one subfolder per class)")
    if not Path(images_dir).is_dir():
        raise DatasetError(f"images folder {images_dir} does not exist",
                           hint="pass --images DIR (a folder with one subfolder per class)")
    return {"images_dir": str(Path(images_dir).resolve()),
            "run_dir": str(Path(run_dir).resolve()) if run_dir is not None else None,
            "thumbs_dir": str(Path(cfg.data.root).resolve() / "thumbs")}


def serve_ui(cfg: Config, images_dir: str | os.PathLike | None, run_dir: str | os.PathLike | None, *,
             token: str | None = None, insecure: bool = False) -> None:
    """Serve the UI pages and the REST API on ``cfg.serve.host:port`` until SIGTERM/SIGINT,
    draining in-flight requests like ``imgclf serve``."""
    from ..inference.predict import Predictor
    from ..serve.server import check_bind, run_app
    from . import create_ui_app

    check_bind(cfg.serve.host, token, insecure)
    ui = ui_settings(cfg, images_dir, run_dir)
    predictor = Predictor(Path(run_dir) / "model", predict_cfg=cfg.predict) if run_dir is not None else None
    run_app(create_ui_app(predictor, cfg.serve, token=token, cfg=cfg, **ui), cfg.serve)
