"""One process or many (``torchrun``): who am I, which device, and the few collectives we use.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) :func:`setup` joins the process
group: NCCL when training on CUDA, Gloo on CPU. Without it everything here degrades to the
single-process case, so the training code has one path.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..features.engines import cpu_threads
from ..util.errors import ImgclfError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    device: str = "cpu"  # "cpu" or "cuda:N"

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes artifacts."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def resolve_device(device: str, local_rank: int = 0) -> str:
    """``train.device`` → a torch device string; "auto" picks CUDA when there is one."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ImgclfError("train.device = 'cuda' but PyTorch sees no CUDA device",
                              hint="set train.device=cpu (or auto), or install a CUDA build of PyTorch with a working driver")
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu"


def setup(device: str = "auto", threads: int = 0) -> Dist:
    """Join the ``torchrun`` process group when there is one; returns this process's :class:`Dist`.

    On CPU the process computes with ``threads`` (0 = all cores), shared among the processes
    of this machine.
    """
    import torch
    import torch.distributed as td

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    dev = resolve_device(device, local_rank)
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))
    else:  # ranks on one machine share its cores
        torch.set_num_threads(max(1, cpu_threads(threads) // max(1, local_world)))
    if world > 1 and not td.is_initialized():
        td.init_process_group("nccl" if dev.startswith("cuda") else "gloo")
    return Dist(rank, world, local_rank, local_world, dev)


def current() -> Dist:
    """The :class:`Dist` of an already joined process group (single process when none)."""
    import torch.distributed as td

    if not (td.is_available() and td.is_initialized()):
        return Dist()
    world = td.get_world_size()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = td.get_backend()
    return Dist(td.get_rank(), world, local_rank, local_world, f"cuda:{local_rank}" if backend == "nccl" else "cpu")


def teardown() -> None:
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.active:
        import torch.distributed as td

        td.barrier()


def _comm_device(d: Dist) -> str:
    return d.device if d.device.startswith("cuda") else "cpu"  # NCCL only moves CUDA tensors


def all_sum(d: Dist, values: Sequence[float]) -> np.ndarray:
    """Element-wise sum of ``values`` over all processes (float64)."""
    arr = np.asarray(values, dtype=np.float64)
    if not d.active:
        return arr
    import torch
    import torch.distributed as td

    t = torch.from_numpy(arr.copy()).to(_comm_device(d))
    td.all_reduce(t)
    return t.cpu().numpy()


def gather_rows(d: Dist, rows: np.ndarray) -> list[np.ndarray]:
    """Every process's ``rows`` (N_r, ...) on every process, in rank order (N_r may differ)."""
    if not d.active:
        return [rows]
    import torch
    import torch.distributed as td

    dev = _comm_device(d)
    counts = all_sum(d, [len(rows) if r == d.rank else 0 for r in range(d.world)]).astype(int)
    most = int(counts.max())
    padded = np.zeros((most, *rows.shape[1:]), dtype=rows.dtype)
    padded[: len(rows)] = rows
    local = torch.from_numpy(padded).to(dev)
    out = [torch.empty_like(local) for _ in range(d.world)]
    td.all_gather(out, local)
    return [o.cpu().numpy()[:c] for o, c in zip(out, counts)]



def gather_json(d: Dist, obj: Any) -> list[Any]:
    """Every process's JSON-able ``obj`` on every process, in rank order (sent as JSON text, never pickled)."""
    blob = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
    return [json.loads(part.tobytes().decode()) for part in gather_rows(d, blob)]
