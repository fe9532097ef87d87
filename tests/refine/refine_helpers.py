"""Running ``imgclf refine`` in child processes, the way a user (or torchrun) does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from datagen import TINY_REFINE as TINY  # noqa: F401  (re-exported: the refine tests' settings)
from datagen import shared_engines

from imgclf.bundle.folder import load_bundle


def child_env(data_root: Path, threads: int = 1) -> dict[str, str]:
    """The same environment for every child, so runs compare bit for bit (``data_root`` shares the session's engines)."""
    shared_engines(data_root)
    return {**os.environ, "IMGCLF_DATA_DIR": str(data_root), "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}


def refine_cmd(*args: str, sets: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "imgclf", "refine", *args, *(x for s in sets for x in ("--set", s))]


def run_ok(cmd: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stderr[-3000:]}"
    return p


def comparable_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch values without the timings (which differ between any two runs)."""
    return [{k: v for k, v in h.items() if k not in ("seconds", "images_per_s")} for h in history]


def bundle_state(model_dir: Path) -> tuple[str, np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """(refined weights id, head weight, head bias, history) of a bundle."""
    b = load_bundle(model_dir)
    return b.meta.featurizer["weights"], b.head.weight, b.head.bias, comparable_history(b.meta.training_history)
