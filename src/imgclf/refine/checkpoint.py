"""Resumable refinement: a checkpoint after every epoch, tensors as safetensors, the rest as JSON.

    RUN_DIR/refine/checkpoint.json               epoch, history, optimizer settings, ... and the name
                                                 and SHA-256 of the tensors file below
    RUN_DIR/refine/checkpoint-e0003.safetensors  model weights and buffers, optimizer momentum

An epoch's tensors go to a new file first (atomically), then the JSON that names it replaces
the old JSON, then the previous tensors file is removed: a kill at any moment leaves a JSON
naming a complete tensors file. Nothing is unpickled on load. Random streams need no saving:
they are derived from ``(seed, epoch, rank)`` (see :mod:`imgclf.refine.data`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..util.errors import ImgclfError
from ..util.files import atomic_path, read_json, sha256_file, write_json

FORMAT = "imgclf-refine-checkpoint"
INDEX = "checkpoint.json"


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns: torch state dicts and the JSON ``info``."""

    model: dict[str, Any]
    optimizer: dict[str, Any]
    info: dict[str, Any]

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return int(self.info["epoch"])


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A torch optimizer state dict → (tensors by name, JSON-able rest)."""
    import torch

    tensors, scalars = {}, {}
    for pid, st in state["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, v in tensors.items():
        _, pid, k = name.split(".", 2)
        state.setdefault(int(pid), {})[k] = v
    for name, v in rest["scalars"].items():
        pid, k = name.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": rest["param_groups"]}


def save_checkpoint(folder: str | os.PathLike, epoch: int, model_state: dict[str, Any], optimizer_state: dict[str, Any],
                    info: dict[str, Any]) -> Path:
    """Write the checkpoint after ``epoch`` completed epochs; returns the JSON's path."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    opt_tensors, opt_rest = _flatten_optimizer(optimizer_state)
    tensors = {f"model.{k}": v for k, v in model_state.items()} | opt_tensors
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}  # channels_last weights are not contiguous
    name = f"checkpoint-e{epoch:04d}.safetensors"
    with atomic_path(folder / name) as tmp:
        save_file(tensors, str(tmp))
    previous = _index(folder)
    write_json(folder / INDEX, {"format": FORMAT, "version": 1, **info, "epoch": epoch, "optimizer": opt_rest,
                                "tensors": name, "sha256": sha256_file(folder / name)})
    old = previous.get("tensors") if previous else None
    if old and old != name:
        (folder / old).unlink(missing_ok=True)
    return folder / INDEX


def _index(folder: Path) -> dict[str, Any] | None:
    p = folder / INDEX
    if not p.is_file():
        return None
    try:
        return read_json(p)
    except ValueError:
        raise ImgclfError(f"refinement checkpoint {p} is not valid JSON",
                          hint="delete the run's refine/ folder to start the refinement over") from None


def load_checkpoint(folder: str | os.PathLike) -> Checkpoint | None:
    """The latest checkpoint in ``folder``, or None when there is none; damaged ones raise."""
    from safetensors.torch import load_file

    folder = Path(folder)
    info = _index(folder)
    if info is None:
        return None
    if info.get("format") != FORMAT:
        raise ImgclfError(f"{folder / INDEX} is not an imgclf refinement checkpoint")
    path = folder / info["tensors"]
    if not path.is_file() or sha256_file(path) != info["sha256"]:
        raise ImgclfError(f"refinement checkpoint {path} is missing or does not match its SHA-256 in {INDEX}",
                          hint="delete the run's refine/ folder to start the refinement over")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # a damaged or foreign file: one line, never a traceback (and never unpickled)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ImgclfError(f"refinement checkpoint {path} cannot be read by safetensors: {first}",
                          hint="delete the run's refine/ folder to start the refinement over") from None
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    return Checkpoint(model, _unflatten_optimizer(optim, info.pop("optimizer")), info)


def clear_checkpoints(folder: str | os.PathLike) -> None:
    """Remove the checkpoint files in ``folder`` (after the final bundle is written, or to start over)."""
    folder = Path(folder)
    (folder / INDEX).unlink(missing_ok=True)  # first: a kill midway leaves no index naming a removed file
    for p in folder.glob("checkpoint-e*.safetensors"):
        p.unlink(missing_ok=True)
