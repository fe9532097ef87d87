"""Training data for refinement: the held-out validation part, epoch plans, augmentation, batches.

Everything random here is drawn from generators seeded by ``(seed, epoch, position)``, never
from a global stream, so a sample's augmentation does not depend on the thread that decodes
it, on the rank that trains on it, or on whether the run was resumed: a killed and resumed
run sees exactly the images an uninterrupted one sees.
"""
from __future__ import annotations

import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from ..config.settings import RefineConfig
from ..data.images import decode_image
from ..features.backbones import DataSpec
from ..features.preprocess import load_and_preprocess, normalize, resize_size
from ..util.errors import ImageError

# ---------------------------------------------------------------- which images, in which order


def holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, val) index arrays: ``fraction`` of each class held out, one image kept for training."""
    rng = np.random.default_rng([seed, 0x7A1])
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(int(round(fraction * len(idx))), len(idx) - 1)
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def epoch_plan(labels: np.ndarray, epoch: int, seed: int, *, balance: bool = False, cap: int = 0) -> np.ndarray:
    """Sample indices of one epoch, shuffled: small classes oversampled when ``balance``, at most ``cap`` (0 = all)."""
    rng = np.random.default_rng([seed, epoch, 0xE9])
    idx = np.arange(len(labels))
    if balance:
        classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        most = max(len(c) for c in classes)
        idx = np.concatenate([np.concatenate([c, rng.choice(c, most - len(c), replace=True)]) for c in classes])
    idx = idx[rng.permutation(len(idx))]
    return idx[:cap] if cap else idx


def step_slices(n: int, batch_size: int, world: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each optimizer step over ``n`` plan positions, ``batch_size`` per process.

    A tail too short to give every process a sample joins the step before it, so every
    process trains on every step (DDP needs that) and no position is dropped or repeated.
    """
    if n < world:
        raise ValueError(f"{n} training images cannot be shared by {world} processes")
    g = batch_size * world
    starts = list(range(0, n, g))
    if len(starts) > 1 and n - starts[-1] < world:
        starts.pop()
    return [(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]


def rank_part(start: int, end: int, rank: int, world: int) -> range:
    """This rank's contiguous share of plan positions ``[start, end)`` (sizes differ by at most one)."""
    n = end - start
    lo = start + rank * n // world
    return range(lo, start + (rank + 1) * n // world)


# ---------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class Augment:
    """How a training image is varied (see ``refine.augment`` and the keys after it)."""

    mode: str = "basic"  # "none" | "basic" | "trivialaugment"
    crop_scale: float = 0.25
    rotation: float = 10.0
    color_jitter: float = 0.2

    @classmethod
    def from_config(cls, rcfg: RefineConfig) -> "Augment":
        return cls(rcfg.augment, rcfg.crop_scale, rcfg.rotation, rcfg.color_jitter)


def _crop_box(w: int, h: int, scale_min: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random resized crop, torchvision's algorithm on our generator."""
    area = w * h
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * rng.uniform(scale_min, 1.0)
        ratio = math.exp(rng.uniform(*log_ratio))
        cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    side = min(w, h)  # fallback: the central square
    return (h - side) // 2, (w - side) // 2, side, side


def _trivial_augment(img: Image.Image, rng: np.random.Generator, fill: list[float]) -> Image.Image:
    """One TrivialAugment-Wide operation at a uniformly drawn magnitude (Müller & Hutter, 2021)."""
    import torchvision.transforms.v2.functional as F

    op = int(rng.integers(14))
    m = int(rng.integers(31)) / 30.0  # magnitude bin in [0, 1]
    sign = -1.0 if rng.random() < 0.5 else 1.0
    nearest = F.InterpolationMode.NEAREST
    if op == 0:
        return img
    if op in (1, 2):  # shear x / y
        deg = math.degrees(math.atan(0.99 * m)) * sign
        return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=[deg, 0.0] if op == 1 else [0.0, deg],
                        interpolation=nearest, fill=fill, center=[0, 0])
    if op in (3, 4):  # translate x / y
        t = int(32 * m * sign)
        return F.affine(img, angle=0.0, translate=[t, 0] if op == 3 else [0, t], scale=1.0, shear=[0.0, 0.0],
                        interpolation=nearest, fill=fill)
    if op == 5:
        return F.rotate(img, 135.0 * m * sign, interpolation=nearest, fill=fill)
    factor = 1.0 + 0.99 * m * sign
    if op == 6:
        return F.adjust_brightness(img, factor)
    if op == 7:
        return F.adjust_saturation(img, factor)
    if op == 8:
        return F.adjust_contrast(img, factor)
    if op == 9:
        return F.adjust_sharpness(img, factor)
    if op == 10:
        return F.posterize(img, int(round(8 - 6 * m)))
    if op == 11:
        return F.solarize(img, 255.0 * (1.0 - m))
    return F.autocontrast(img) if op == 12 else F.equalize(img)


def augment(img: Image.Image, spec: DataSpec, aug: Augment, rng: np.random.Generator) -> Image.Image:
    """A randomly varied ``resolution``² crop of ``img`` (the eval crop when ``aug.mode`` is "none")."""
    import torchvision.transforms.v2.functional as F

    from ..features.preprocess import center_crop_resize

    if aug.mode == "none":
        return center_crop_resize(img, spec)
    r = spec.resolution
    top, left, h, w = _crop_box(img.width, img.height, aug.crop_scale, rng)
    out = F.resized_crop(img, top, left, h, w, [r, r], interpolation=F.InterpolationMode.BICUBIC, antialias=True)
    if rng.random() < 0.5:
        out = F.horizontal_flip(out)
    fill = [round(255 * m) for m in spec.mean]  # normalises to ~0: borders carry no signal
    if aug.mode == "trivialaugment":
        return _trivial_augment(out, rng, fill)
    if aug.rotation > 0:
        out = F.rotate(out, float(rng.uniform(-aug.rotation, aug.rotation)), interpolation=F.InterpolationMode.BILINEAR, fill=fill)
    if aug.color_jitter > 0:
        j = aug.color_jitter
        b, c, s = rng.uniform(1 - j, 1 + j, size=3)
        for k in rng.permutation(3):
            out = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)[k](out, float((b, c, s)[k]))
    return out


# ---------------------------------------------------------------- batches


@dataclass
class Batch:
    """One process's share of one step: inputs, labels, and what could not be used."""

    x: np.ndarray  # (B, 3, H, W) float32, B = number of usable samples
    y: np.ndarray  # (B,) int64
    ids: np.ndarray  # (B,) sample indices into the dataset
    failed: list[tuple[int, str]]  # (sample index, reason) of images that could not be decoded


def _load(path: str, spec: DataSpec, aug: Augment | None, seed: Sequence[int]) -> np.ndarray | str:
    """Preprocessed input, or the reason it could not be made."""
    try:
        if aug is None:
            return load_and_preprocess(path, spec)  # exactly what featurize, predict and serve feed the network
        img = decode_image(path, draft_size=resize_size(spec))
    except ImageError as e:
        return str(e)
    return normalize(augment(img, spec, aug, np.random.default_rng(list(seed))), spec)


class BatchLoader:
    """Decodes and augments batches on a thread pool, a couple of batches ahead of training.

    ``parts`` is a list of ``(positions, sample ids)``; a position seeds the sample's augmentation
    (with ``seed`` and ``epoch``). ``aug=None`` gives the deterministic evaluation crop.
    """

    def __init__(self, paths: Sequence[str], labels: np.ndarray, spec: DataSpec, pool: ThreadPoolExecutor, *,
                 aug: Augment | None, seed: int = 0, epoch: int = 0, ahead: int = 2):
        self.paths, self.labels, self.spec, self.pool = paths, labels, spec, pool
        self.aug, self.seed, self.epoch, self.ahead = aug, seed, epoch, ahead

    def _submit(self, positions: Sequence[int], ids: Sequence[int]) -> list[Future]:
        return [self.pool.submit(_load, self.paths[i], self.spec, self.aug, (self.seed, self.epoch, p))
                for p, i in zip(positions, ids)]

    def batches(self, parts: Sequence[tuple[Sequence[int], Sequence[int]]]) -> Iterator[Batch]:
        pending: deque[tuple[Sequence[int], list[Future]]] = deque()
        todo = iter(parts)
        while True:
            while len(pending) <= self.ahead:  # the batch to yield now, and ``ahead`` more decoding meanwhile
                nxt = next(todo, None)
                if nxt is None:
                    break
                pending.append((nxt[1], self._submit(*nxt)))
            if not pending:
                return
            ids, futures = pending.popleft()
            xs, keep, failed = [], [], []
            for i, fut in zip(ids, futures):
                out = fut.result()
                if isinstance(out, str):
                    failed.append((int(i), out))
                else:
                    xs.append(out)
                    keep.append(int(i))
            r = self.spec.resolution
            x = np.stack(xs) if xs else np.zeros((0, 3, r, r), np.float32)
            keep_arr = np.array(keep, dtype=np.int64)
            yield Batch(x, self.labels[keep_arr].astype(np.int64), keep_arr, failed)
