"""The refinement loop: train the network epoch by epoch, validate, checkpoint, resume.

``fit`` trains :class:`~imgclf.refine.model.RefineNet` on the train
split minus a held-out validation part, or validates on the dataset's own ``validation/``
folder where it has one (the test split is never looked at), with SGD +
momentum, a per-epoch or per-step learning-rate schedule, augmentation and label smoothing;
it writes a checkpoint after every epoch and can resume from it. Under ``torchrun`` it trains
with DistributedDataParallel, each process on its share of every step, and only rank 0 writes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..config.settings import Config, RefineConfig
from ..features.backbones import DataSpec
from ..features.engines import cpu_threads
from ..rundir.layout import RunDir
from ..util.budget import TimeBudget
from ..util.errors import DatasetError, RefineError
from ..util.files import read_json, write_json
from ..util.progress import progress_bar
from . import distributed
from .checkpoint import clear_checkpoints, load_checkpoint, save_checkpoint
from .data import Augment, BatchLoader, epoch_plan, holdout, rank_part, step_slices
from .distributed import Dist
from .model import OnnxPrefix, Precision, RefineNet, build_network, learning_rate, onnx_prefix, param_groups, set_train_mode

log = logging.getLogger(__name__)


@dataclass
class Refined:
    """What :func:`fit` returns: the trained network (fp32, CPU-loadable state) and how it went."""

    net: RefineNet
    spec: Any
    labels: list[str]
    history: list[dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)  # path → reason, images that failed to decode
    precision: str = "fp32"
    world: int = 1
    val_paths: list[str] = field(default_factory=list)  # the held-out part of the train split (the head's temperature is fit on it)
    val_labels: np.ndarray | None = None


SAMPLES = "samples_seen.json"


def checkpoint_dir(rd: RunDir) -> Path:
    return rd.checkpoints


def _fingerprint(cfg: Config, labels: list[str], paths: list[str]) -> str:
    """What a checkpoint must match to be resumed: the settings that shape training, and its data."""
    r = {k: v for k, v in cfg.to_dict()["refine"].items() if k not in ("decode_threads", "log_samples", "max_s")}
    blob = json.dumps({"model": cfg.to_dict()["model"], "refine": r, "seed": cfg.data.seed, "labels": labels, "paths": paths},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e).lower() or "can't allocate memory" in str(e).lower()))


def _oom_error(rcfg: RefineConfig, resolution: int, device: str) -> RefineError:
    smaller = max(1, rcfg.batch_size // 2)
    return RefineError(f"out of memory training at refine.batch_size={rcfg.batch_size}, model.resolution={resolution} on {device}",
                       hint=f"set refine.batch_size={smaller} (or a lower model.resolution, or refine.freeze_stages higher)")


@contextlib.contextmanager
def _oom_as_hint(rcfg: RefineConfig, resolution: int, device: str) -> Iterator[None]:
    """Out of memory inside (the linear probe's forward passes, an epoch, its validation) becomes the
    two-line error that names a smaller batch size, never a traceback."""
    try:
        yield
    except (RuntimeError, MemoryError) as e:
        if _is_oom(e):
            raise _oom_error(rcfg, resolution, device) from None
        raise


# ---------------------------------------------------------------- one epoch


@dataclass
class _Data:
    paths: list[str]
    labels: np.ndarray
    val_paths: list[str]
    val_labels: np.ndarray


def _to_device(x: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(x).to(device).contiguous(memory_format=torch.channels_last)  # (B, C, H, W)


def _run(fn: Callable[..., torch.Tensor], x: np.ndarray, prefix: OnnxPrefix | None, device: str) -> torch.Tensor:
    """``fn`` (a network's forward or features) on images ``x``, the frozen stages by ONNX Runtime when given."""
    if prefix is None:
        return fn(_to_device(x, device))
    return fn(_to_device(prefix(x), device), skip=prefix.stages)


def _train_epoch(model: Any, net: RefineNet, prefix: OnnxPrefix | None, opt: Any, prec: Precision, data: _Data,
                 loader: BatchLoader, cfg: Config, d: Dist, epoch: int, progress: bool) -> dict[str, Any]:
    """One pass over this epoch's plan; returns summed statistics of this process."""
    rcfg = cfg.refine
    plan = epoch_plan(data.labels, epoch, cfg.data.seed, balance=rcfg.balance, cap=rcfg.max_images_per_epoch)
    slices = step_slices(len(plan), rcfg.batch_size, d.world)
    parts = [(list(pos), plan[list(pos)]) for pos in (rank_part(s, e, d.rank, d.world) for s, e in slices)]
    bar = progress_bar(len(plan), f"refine epoch {epoch + 1}/{rcfg.epochs}", show=progress) if d.is_main else None
    set_train_mode(net, rcfg.bn_freeze)
    loss_sum = correct = count = 0.0
    seen: list[int] = []
    failed: list[tuple[int, str]] = []
    r = cfg.model.resolution
    for k, batch in enumerate(loader.batches(parts)):
        lr = learning_rate(rcfg, epoch, k, len(slices))
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        failed += batch.failed
        weight = torch.ones(len(batch.y), device=d.device)
        x, y = batch.x, batch.y
        if not len(y):  # every image of this share failed: a zero-weight stand-in keeps the processes in step
            x, y, weight = np.zeros((1, 3, r, r), np.float32), np.zeros(1, np.int64), torch.zeros(1, device=d.device)
        with prec.autocast():
            logits = _run(model, x, prefix, d.device)  # (B, K)
        per = F.cross_entropy(logits.float(), torch.from_numpy(y).to(d.device), reduction="none",
                              label_smoothing=rcfg.label_smoothing)
        # DDP averages gradients over processes: scaling by world / step size makes the step
        # the mean over every sample of the step, whichever process trained on it
        loss = (per * weight).sum() * (d.world / (slices[k][1] - slices[k][0]))
        opt.zero_grad(set_to_none=True)
        prec.step(loss, opt)
        with torch.no_grad():
            loss_sum += float((per * weight).sum())
            correct += float(((logits.argmax(1).cpu().numpy() == y) * weight.cpu().numpy()).sum())
        count += len(batch.y)
        seen.extend(batch.ids.tolist())
        if bar is not None:
            bar.update(slices[k][1] - slices[k][0])
    if bar is not None:
        bar.close()
    return {"loss_sum": loss_sum, "correct": correct, "count": count, "seen": seen, "failed": failed, "lr": learning_rate(rcfg, epoch, 0, len(slices))}


def _eval_parts(n: int, size: int, d: Dist) -> list[tuple[list[int], list[int]]]:
    """This process's share of ``n`` images in batches of ``size`` (position = sample index)."""
    parts = []
    for s in range(0, n, size * d.world):
        pos = list(rank_part(s, min(n, s + size * d.world), d.rank, d.world))
        parts.append((pos, pos))
    return parts


def _validate(net: RefineNet, prefix: OnnxPrefix | None, prec: Precision, data: _Data, loader: BatchLoader, cfg: Config,
              d: Dist) -> tuple[float, float, int, list[tuple[int, str]]]:
    """(mean loss, error rate, images, this process's decode failures) on the held-out part of the train split."""
    n = len(data.val_paths)
    failed: list[tuple[int, str]] = []
    if n == 0:
        return float("nan"), float("nan"), 0, failed
    net.eval()
    loss_sum = correct = count = 0.0
    with torch.inference_mode():
        for batch in loader.batches(_eval_parts(n, 2 * cfg.refine.batch_size, d)):
            failed += batch.failed
            if not len(batch.y):
                continue
            with prec.autocast():
                logits = _run(net, batch.x, prefix, d.device).float()
            y = torch.from_numpy(batch.y).to(d.device)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += float((logits.argmax(1) == y).sum())
            count += len(batch.y)
    loss_sum, correct, count = distributed.all_sum(d, [loss_sum, correct, count])
    if not count:
        return float("nan"), float("nan"), 0, failed
    return loss_sum / count, 1.0 - correct / count, int(count), failed


def _probe_head(net: RefineNet, prefix: OnnxPrefix | None, prec: Precision, n: int, loader: BatchLoader, cfg: Config,
                d: Dist) -> None:
    """Set the head to a linear probe: L2-regularised softmax regression on the pretrained features
    of ``n`` un-augmented training images (each process featurizes its share; all fit the same)."""
    feats, ys = [], []
    net.eval()
    with torch.inference_mode():
        for batch in loader.batches(_eval_parts(n, 2 * cfg.refine.batch_size, d)):
            if len(batch.y):
                with prec.autocast():
                    feats.append(_run(net.features, batch.x, prefix, d.device).float().cpu().numpy())  # (B, D)
                ys.append(batch.y)
    dim = net.head.in_features
    x = np.concatenate(distributed.gather_rows(d, np.concatenate(feats) if feats else np.zeros((0, dim), np.float32)))
    y = np.concatenate(distributed.gather_rows(d, np.concatenate(ys) if ys else np.zeros(0, np.int64)))
    w, b = fit_softmax(x, y, net.head.out_features, l2=PROBE_L2, label_smoothing=cfg.refine.label_smoothing)
    with torch.no_grad():
        net.head.weight.copy_(torch.from_numpy(w))
        net.head.bias.copy_(torch.from_numpy(b))


PROBE_L2 = 0.01  # L2 strength of the probe: gave the best held-out accuracy on pretrained lite0 features


def fit_softmax(x: np.ndarray, y: np.ndarray, k: int, *, l2: float, label_smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Weights (K, D) and bias (K,) minimising mean cross-entropy + l2/2·‖W‖² (L-BFGS, float64, deterministic)."""
    xt, yt = torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.int64))
    w = torch.zeros(k, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xt @ w.T + b, yt, label_smoothing=label_smoothing) + 0.5 * l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().float().numpy(), b.detach().float().numpy()


# ---------------------------------------------------------------- the whole refinement


def _train_data(cfg: Config, rd: RunDir) -> tuple[list[str], _Data]:
    rows = rd.split_rows()
    labels = sorted({r.label for r in rows})
    bad = rd.skipped_paths()
    train = [r for r in rows if r.split == "train" and r.path not in bad]
    given = [r for r in rows if r.split == "val" and r.path not in bad]  # a validation/ folder: validate on it
    y = np.array([labels.index(r.label) for r in train], dtype=np.int64)
    missing = [lab for i, lab in enumerate(labels) if not (y == i).any()]
    if missing:
        raise DatasetError(f"no usable train images for class(es) {missing}", hint="see skipped.csv and the split")
    if given:
        return labels, _Data([r.path for r in train], y, [r.path for r in given],
                             np.array([labels.index(r.label) for r in given], dtype=np.int64))
    tr, va = holdout(y, cfg.refine.val_fraction, cfg.data.seed)
    return labels, _Data([train[i].path for i in tr], y[tr], [train[i].path for i in va], y[va])


def _epoch_line(h: dict[str, Any], epochs: int) -> str:
    val = "" if h["val_error"] is None else f"  val loss {h['val_loss']:.3f} error {100 * h['val_error']:.1f}%"
    return (f"epoch {h['epoch']}/{epochs}  lr {h['lr']:.3g}  train loss {h['train_loss']:.3f} error {100 * h['train_error']:.1f}%"
            f"{val}  {h['images_per_s']:.1f} img/s  {h['seconds']:.1f} s" + (f"  skipped {h['skipped']}" if h["skipped"] else ""))


def _none_if_nan(v: float) -> float | None:
    return None if v != v else float(v)


def _network(cfg: Config, d: Dist, classes: int) -> tuple[RefineNet, DataSpec]:
    """The network being refined, on its device (SyncBatchNorm across CUDA processes unless BatchNorm is frozen), and its DataSpec."""
    net, spec = build_network(cfg.model, cfg.refine, classes, cfg.data.seed)
    if d.device.startswith("cuda") and d.active and not cfg.refine.bn_freeze:
        from timm.layers import convert_sync_batchnorm

        net = convert_sync_batchnorm(net)
    return net.to(d.device, memory_format=torch.channels_last), spec


def fit(cfg: Config, rd: RunDir, d: Dist, *, resume: bool = False, progress: bool = True,
        budget: TimeBudget | None = None) -> Refined:
    """Refine ``cfg.model`` on the run's train split; checkpoint every epoch. Refinement takes at most
    ``refine.max_s`` and what is left of ``budget`` when it starts: it cuts its epochs to those that fit.

    ``cfg`` is already :meth:`Config.for_refinement`'s: its model is the network being refined.
    """
    from torch.nn.parallel import DistributedDataParallel

    rcfg = cfg.refine
    labels, data = _train_data(cfg, rd)
    if len(data.paths) < d.world:
        raise DatasetError(f"{len(data.paths)} training images cannot be shared by {d.world} processes")
    net, spec = _network(cfg, d, len(labels))
    opt = torch.optim.SGD(param_groups(net, rcfg), lr=rcfg.base_lr, momentum=rcfg.momentum)
    prec = Precision(rcfg.precision, d.device)
    prefix = onnx_prefix(net, rcfg, spec, d.device, torch.get_num_threads(), prec.name)
    fingerprint = _fingerprint(cfg, labels, data.paths)
    folder = checkpoint_dir(rd)
    start, history, skipped, samples = 0, [], {}, []  # samples: refine.log_samples' sample ids per process per epoch
    if resume:
        start, history, skipped, samples = _resume(rd, fingerprint, net, opt, rcfg.log_samples)
        if d.is_main:
            log.info(f"resuming {rd.root} after epoch {start}/{rcfg.epochs}")
    elif d.is_main:
        clear_checkpoints(folder)
    distributed.barrier(d)  # no process may see a checkpoint from an earlier run
    threads = rcfg.decode_threads or max(1, cpu_threads(cfg.engine.threads) // d.local_world)
    t_fit = time.perf_counter()  # the time refinement may take counts from here (the linear probe included)
    rcfg = dataclasses.replace(rcfg, max_s=(budget or TimeBudget()).cap(rcfg.max_s))
    with ThreadPoolExecutor(threads, thread_name_prefix="refine-decode") as pool:
        if start == 0 and rcfg.head_init == "probe":
            # on refine.max_images_per_epoch images at most: the probe is a starting point, not the model
            pick = np.sort(np.random.default_rng([cfg.data.seed, 0x9B0]).permutation(len(data.paths))[: rcfg.max_images_per_epoch or None])
            probe_data = BatchLoader([data.paths[i] for i in pick], data.labels[pick], spec, pool, aug=None)
            with _oom_as_hint(rcfg, cfg.model.resolution, d.device):
                _probe_head(net, prefix, prec, len(pick), probe_data, cfg, d)
        # frozen BatchNorm statistics never change: no need to broadcast them every step
        model = DistributedDataParallel(net, device_ids=[d.device] if d.device.startswith("cuda") else None,
                                        broadcast_buffers=not rcfg.bn_freeze) if d.active else net
        val_loader = BatchLoader(data.val_paths, data.val_labels, spec, pool, aug=None)
        epoch = start
        while epoch < rcfg.epochs:
            # every process draws dropout from its own stream, fixed by (seed, epoch, rank)
            torch.manual_seed(int(np.random.default_rng([cfg.data.seed, epoch, d.rank, 0xD0]).integers(2**62)))
            loader = BatchLoader(data.paths, data.labels, spec, pool, aug=Augment.from_config(rcfg), seed=cfg.data.seed, epoch=epoch)
            t0 = time.perf_counter()
            with _oom_as_hint(rcfg, cfg.model.resolution, d.device):
                st = _train_epoch(model, net, prefix, opt, prec, data, loader, cfg, d, epoch, progress)
                train_s = time.perf_counter() - t0
                val_loss, val_error, n_val, val_failed = _validate(net, prefix, prec, data, val_loader, cfg, d)
            loss_sum, correct, count = distributed.all_sum(d, [st["loss_sum"], st["correct"], st["count"]])
            failed = _gather_failed(d, st["failed"], data.paths) | _gather_failed(d, val_failed, data.val_paths)
            skipped.update(failed)
            if rcfg.log_samples:
                samples.append({"epoch": epoch + 1, "by_rank": [a.tolist() for a in distributed.gather_rows(d, np.array(st["seen"], np.int64))]})
            h = {"epoch": epoch + 1, "lr": st["lr"], "train_loss": float(loss_sum / max(count, 1)),
                 "train_error": float(1 - correct / max(count, 1)), "val_loss": _none_if_nan(val_loss),
                 "val_error": _none_if_nan(val_error), "train_images": int(count), "val_images": n_val,
                 "skipped": len(failed), "seconds": round(time.perf_counter() - t0, 2),
                 "images_per_s": round(float(count) / train_s, 2) if train_s > 0 else 0.0}
            history.append(h)
            if d.is_main:
                save_checkpoint(folder, epoch + 1, net.state_dict(), opt.state_dict(),
                                {"fingerprint": fingerprint, "labels": labels, "history": history, "skipped": skipped,
                                 "world_size": d.world, "precision": prec.name})
                if rcfg.log_samples:
                    write_json(folder / SAMPLES, {"paths": data.paths, "world_size": d.world, "epochs": samples})
                log.info(_epoch_line(h, rcfg.epochs))
            epoch += 1
            fits = epochs_that_fit(rcfg, time.perf_counter() - t_fit, epoch - start, start)
            if rcfg.max_s:  # every process stops after the epoch rank 0 says
                fits = int(distributed.all_sum(d, [float(fits) if d.rank == 0 else 0.0])[0])
            if fits < rcfg.epochs:
                if d.is_main:
                    log.info(f"{fits} epochs of {rcfg.epochs} fit the {rcfg.max_s:g} s refinement may take at "
                        f"{(time.perf_counter() - t_fit) / (epoch - start):.1f} s per epoch; the schedule ends there")
                history[-1]["epochs_cut_to"] = fits
                rcfg = dataclasses.replace(rcfg, epochs=fits)
                cfg = dataclasses.replace(cfg, refine=rcfg)
    return Refined(net, spec, labels, history, skipped, prec.name, d.world, data.val_paths, data.val_labels)


def epochs_that_fit(rcfg: RefineConfig, spent_s: float, done: int, start: int = 0) -> int:
    """Epochs in all (at least those done, at most ``refine.epochs``) that ``refine.max_s`` allows at the pace of
    the ``done`` epochs that took ``spent_s`` (after ``start`` resumed ones); ``refine.epochs`` when there is no limit."""
    if not rcfg.max_s or done < 1:
        return rcfg.epochs
    per_epoch = spent_s / done
    more = int((rcfg.max_s - spent_s) // per_epoch) if per_epoch > 0 else rcfg.epochs
    return max(start + done, min(rcfg.epochs, start + done + max(0, more)))


def _resume(rd: RunDir, fingerprint: str, net: Any, opt: Any, log_samples: bool) -> tuple[int, list, dict, list]:
    """Load the last checkpoint into ``net`` and ``opt`` → (epochs done, history, skipped, samples)."""
    folder = checkpoint_dir(rd)
    ck = load_checkpoint(folder)
    if ck is None:
        raise RefineError(f"no refinement checkpoint in {folder} to resume", hint=f"run `imgclf refine --run-dir {rd.root}` to start one")
    if ck.info.get("fingerprint") != fingerprint:
        raise RefineError(f"the checkpoint in {folder} was made with other settings or data than the run's config now gives",
                          hint="resume with the run's saved config (no --set of model./refine. keys), or start over without --resume")
    net.load_state_dict(ck.model)
    opt.load_state_dict(ck.optimizer)
    samples = []
    if log_samples and (folder / SAMPLES).is_file():
        samples = [e for e in read_json(folder / SAMPLES)["epochs"] if e["epoch"] <= ck.epoch]
    return ck.epoch, ck.info["history"], ck.info["skipped"], samples


def _gather_failed(d: Dist, failed: list[tuple[int, str]], paths: list[str]) -> dict[str, str]:
    """Decode failures of every process, as path → reason."""
    return {paths[i]: reason for part in distributed.gather_json(d, failed) for i, reason in part}
