"""The benchmark sets, prepared and featurized once by imgclf and shared between benchmark scripts.

``prepared(images, work)`` gives the (config, run directory) of an images folder (or ``demo``, the
embedded generated set) split and featurized under ``work``; a second call, from this script or
another one running at the same time, reuses it (a file lock serialises the first preparation).
Extra ``overrides`` (``--set`` strings, e.g. another backbone) get a run directory of their own.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from filelock import FileLock


def images_folder(images: str, work: Path) -> Path:
    """The folder of ``images``: the demo set is generated under ``work`` once."""
    if images != "demo":
        return Path(images).resolve()
    from imgclf.data.demo import generate_demo

    folder = work / "demo-images"
    with FileLock(str(work / "demo-images.lock")):
        generate_demo(folder, n_per_class=100, seed=0)  # keeps what an earlier call wrote
    return folder


def prepared(images: str, work: Path, overrides: Sequence[str] = ()):
    """(config, run dir) of ``images`` prepared and featurized under ``work`` (reused when already there)."""
    from imgclf.config.settings import load_config
    from imgclf.pipeline.steps import featurize, prepare

    work.mkdir(parents=True, exist_ok=True)
    folder = images_folder(images, work)
    cfg = load_config(None, [f'data.root="{work / "data"}"', f'data.images="{folder}"', "tracking.enabled=false",
                             *overrides])
    name = folder.name + ("-" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8] if overrides else "")
    rd = work / "runs" / name
    with FileLock(str(work / f"{name}.lock")):
        if not (rd / "features.npz").exists():
            prepare(cfg, rd)
            featurize(cfg, rd, progress=False)
    return cfg, rd
