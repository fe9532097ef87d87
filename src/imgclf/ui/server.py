"""``imgclf ui``: the web UI (and the REST service) for a dataset folder and, optionally, a run."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config.settings import Config
from ..util.errors import ImgclfError


def ui_settings(cfg: Config, images_dir: str | os.PathLike | None, run_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The UI keywords of :func:`imgclf.ui.create_ui_app`: checked folders, the runs folder, the thumbnail cache
    under data.root.

    Without ``images_dir`` the run's own dataset (from its config.json) is opened. The runs folder (the
    dataset's iterations) is ``run_dir``'s parent, else DATA_ROOT/runs/<dataset>; without ``run_dir`` the
    published iteration is shown, else the newest one with a model.
    """
    from ..bundle.folder import locate_bundle
    from ..data.dataset import check_images_folder
    from ..rundir.layout import RunDir, run_config

    if run_dir is not None:
        locate_bundle(RunDir(run_dir).model)  # BundleError when missing; recovers a swap killed between its renames
        if images_dir is None:
            saved = run_config(run_dir)
            images_dir = saved.images_dir() if saved is not None else None
    if images_dir is None:
        raise ImgclfError("no dataset to open", hint="pass --images DIR (a folder with one subfolder per class)")
    check_images_folder(images_dir)
    images = Path(images_dir).resolve()
    runs = Path(run_dir).resolve().parent if run_dir is not None else Path(cfg.data.root).resolve() / "runs" / images.name
    if run_dir is None:
        run_dir = _first_shown(runs, images)
    return {"images_dir": str(images),
            "run_dir": str(Path(run_dir).resolve()) if run_dir is not None else None,
            "runs": str(runs),
            "thumbs_dir": str(Path(cfg.data.root).resolve() / "thumbs")}


def _first_shown(runs: Path, images: Path) -> Path | None:
    """The iteration a UI opened without --run shows: the published one, else the newest with a model."""
    from ..rundir.iterations import has_model, list_iterations, published_run

    published = published_run(runs)
    if published is not None and has_model(published):
        return published
    for it in list_iterations(runs, images):
        if has_model(it.path):
            return Path(it.path)
    return None


def serve_ui(cfg: Config, images_dir: str | os.PathLike | None, run_dir: str | os.PathLike | None, *,
             token: str | None = None, insecure: bool = False) -> None:
    """Serve the UI pages and the REST API on ``cfg.serve.host:port`` until SIGTERM/SIGINT,
    draining in-flight requests like ``imgclf serve``. The REST API answers with the runs folder's published
    iteration, else with the iteration shown first."""
    from ..inference.predict import Predictor
    from ..rundir.iterations import has_model, published_run
    from ..serve.server import check_bind, run_app
    from . import create_ui_app

    check_bind(cfg.serve.host, token, insecure)
    ui = ui_settings(cfg, images_dir, run_dir)
    published = published_run(ui["runs"])
    served = published if published is not None and has_model(published) else ui["run_dir"]
    predictor = Predictor(Path(served) / "model", predict_cfg=cfg.predict) if served is not None else None
    keep_into = _keep_place(cfg, ui["images_dir"], ui["run_dir"]) if cfg.serve.keep_inputs else None
    run_app(create_ui_app(predictor, cfg.serve, token=token, cfg=cfg, keep_into=keep_into, **ui), cfg.serve)


def _keep_place(cfg: Config, images_dir: str, run_dir: str | os.PathLike | None):
    """With ``serve.keep_inputs``: ``serve.keep_dir``, else the pool of the UI's dataset (``data.pool`` of the run)."""
    from ..rundir.layout import run_config
    from ..serve.keeper import keep_place

    run = run_config(run_dir) if run_dir is not None else None
    return keep_place(cfg.serve, images_dir, (run or cfg).data.pool)
