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

    Maps the predicted class, each --class, and the class an image's folder is named after when
    it is one of the model's (its true class). Prints one JSON line per image.
    """
    from ..inference.explain import write_overlays
    from ..inference.predict import Predictor, expand_inputs
    from .pipeline import bundle_config

    predictor = Predictor(model, bundle_config(model, config, set, command="explain").engine)
    for r in write_overlays(predictor.explainer, expand_inputs(inputs), out, classes or (), size or None):
        echo_json(r)


def register(app: typer.Typer) -> None:
    app.command()(explain)
