"""``imgclf refine``: fine-tune the network alone, resume it, or run it under torchrun."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..util.errors import ImgclfError
from .errors import resumable
from .options import ConfigOpt, ImagesOpt, SetOpt


def register(app: typer.Typer) -> None:
    @app.command()
    def refine(
        run_dir: Annotated[Optional[Path], typer.Option("--run-dir", "-r", help="Run directory (prepared here when it has no split.csv).")] = None,
        resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the interrupted refinement of this run directory from its last epoch checkpoint.")] = None,
        images: ImagesOpt = None,
        config: ConfigOpt = None,
        set: SetOpt = None,
        evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help="Evaluate on the test split afterwards.")] = True,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (one line per epoch still).")] = False,
    ) -> None:
        """Refine (fine-tune) the pretrained network → RUN_DIR/model, then evaluate it.

        train.classifier picks dnn (default here) or svm_on_refined. For several GPUs or
        processes: torchrun --nproc_per_node=N -m imgclf refine --run-dir R.
        """
        from ..data.dataset import check_images_folder
        from ..rundir.layout import RunDir
        from .pipeline import print_metrics, step_config

        if resume and run_dir and resume.resolve() != run_dir.resolve():
            raise ImgclfError(f"--resume {resume} and --run-dir {run_dir} name different runs", hint="give only --resume RUN_DIR")
        rd = resume or run_dir
        if rd is None:
            raise ImgclfError("no run directory given", hint="pass --run-dir RUN_DIR (or --resume RUN_DIR to continue one)")
        if resume and not RunDir(resume).config.is_file():
            raise ImgclfError(f"{resume} holds no refinement to resume (no config.json)", hint=f"start one with `imgclf refine --run-dir {resume}`")
        cfg = step_config(rd, config, set, images)
        if not RunDir(rd).split.exists():  # the run is prepared first: a wrong folder is answered before torch is imported
            check_images_folder(cfg.images_dir())

        from ..api import track
        from ..pipeline.steps import evaluate as do_evaluate
        from ..pipeline.steps import refine as do_refine
        from ..refine import distributed

        try:
            with resumable(rd):
                summary = do_refine(cfg, rd, resume=resume is not None, progress=not quiet)
            d = distributed.current()
            if not d.is_main:
                return
            typer.echo(json.dumps(summary))
            if evaluate:
                print_metrics(do_evaluate(cfg, rd), Path(rd))
            track(cfg, rd, "refine")
        finally:
            distributed.teardown()
