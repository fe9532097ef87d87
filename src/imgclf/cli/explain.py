"""``imgclf explain``: class activation maps of images as overlay PNGs."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import ConfigOpt, SetOpt, echo_json


def explain(model: Annotated[Path, typer.Argument(help="Model bundle folder (RUN_DIR/model).")],
            inputs: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
            out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the overlay PNGs (<image>.<class>.png).")],
            classes: Annotated[Optional[list[str]], typer.Option("--class", help="Also map this class (repeatable).")] = None,
            size: Annotated[int, typer.Option(help="Longest side of the PNGs in pixels (0: the image as decoded).")] = 1024,
            config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Where the model finds each class: class activation maps over the images, as PNGs.

    Maps the top class, each --class, and the class an image's folder is named after when
    it is one of the model's (its true class). Prints one JSON line per image with predict's
    answer (label "unknown" where predict says so; the map is then of nearest_label).
    """
    from ..inference.explain import write_overlays
    from ..inference.predict import Predictor, expand_inputs
    from .pipeline import bundle_config

    cfg = bundle_config(model, config, set, command="explain")
    predictor = Predictor(model, cfg.engine, predict_cfg=cfg.predict)
    for r in write_overlays(predictor, expand_inputs(inputs), out, classes or (), size or None):
        echo_json(r)


def register(app: typer.Typer) -> None:
    app.command()(explain)
