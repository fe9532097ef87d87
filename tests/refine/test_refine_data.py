"""Refinement data: held-out validation, epoch plans, step sharding, augmentation, batch loading."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from datagen import make_dataset
from PIL import Image

from imgclf.data.images import decode_image
from imgclf.features.backbones import DataSpec
from imgclf.features.preprocess import normalize, preprocess, resize_size
from imgclf.refine.data import Augment, BatchLoader, augment, epoch_plan, holdout, rank_part, step_slices

SPEC = DataSpec(64, 0.875, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_holdout_is_stratified_disjoint_and_keeps_a_train_image_per_class():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 1)
    tr, va = holdout(labels, 0.2, seed=3)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[va], minlength=3).tolist() == [4, 2, 0]
    assert set(labels[tr]) == {0, 1, 2}
    tr2, va2 = holdout(labels, 0.2, seed=3)
    assert np.array_equal(va, va2) and np.array_equal(tr, tr2)
    assert not np.array_equal(va, holdout(labels, 0.2, seed=4)[1])
    assert len(holdout(labels, 0.0, seed=3)[1]) == 0


def test_epoch_plan_is_a_seeded_permutation_balanced_and_capped_on_request():
    labels = np.array([0] * 30 + [1] * 6)
    plan = epoch_plan(labels, epoch=0, seed=1)
    assert sorted(plan.tolist()) == list(range(36))
    assert np.array_equal(plan, epoch_plan(labels, epoch=0, seed=1))
    assert not np.array_equal(plan, epoch_plan(labels, epoch=1, seed=1))
    balanced = epoch_plan(labels, epoch=0, seed=1, balance=True)
    assert np.bincount(labels[balanced]).tolist() == [30, 30]
    assert set(balanced[labels[balanced] == 1].tolist()) == set(range(30, 36))  # every minority image is used
    capped = epoch_plan(labels, epoch=2, seed=1, cap=10)
    assert len(capped) == 10 and len(set(capped.tolist())) == 10


@pytest.mark.parametrize("n,batch,world", [(37, 4, 1), (37, 4, 2), (9, 4, 2), (33, 4, 2), (10, 3, 3), (5, 16, 4), (2, 1, 2)])
def test_steps_share_every_position_exactly_once_and_every_process_trains_each_step(n, batch, world):
    seen = []
    for start, end in step_slices(n, batch, world):
        parts = [list(rank_part(start, end, r, world)) for r in range(world)]
        assert all(parts), f"a process got no sample in step [{start}, {end})"
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        seen += [p for part in parts for p in part]
    assert sorted(seen) == list(range(n)) and len(seen) == n


def test_more_processes_than_images_is_refused():
    with pytest.raises(ValueError, match="cannot be shared"):
        step_slices(1, 4, 2)


def _photo(size=(120, 90)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("mode", ["basic", "trivialaugment"])
def test_augmentation_is_a_function_of_its_seed(mode):
    img, aug = _photo(), Augment(mode)
    outs = [np.asarray(augment(img, SPEC, aug, np.random.default_rng([0, 0, p]))) for p in range(24)]
    assert all(o.shape == (64, 64, 3) for o in outs)
    again = np.asarray(augment(img, SPEC, aug, np.random.default_rng([0, 0, 5])))
    assert np.array_equal(outs[5], again)
    assert len({o.tobytes() for o in outs}) == len(outs)  # every draw differs


def test_no_augmentation_is_exactly_the_evaluation_crop():
    img = _photo()
    out = augment(img, SPEC, Augment("none"), np.random.default_rng(0))
    assert np.array_equal(normalize(out, SPEC), preprocess(img, SPEC))


def test_loader_skips_corrupt_files_and_is_deterministic_across_thread_counts(tmp_path: Path):
    images = make_dataset(tmp_path / "img", n_per_class=4, classes=("a", "b"), size=80)
    paths = sorted(str(p) for p in images.rglob("*.jpg"))
    Path(paths[3]).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    labels = np.array([0] * 4 + [1] * 4)
    parts = [([0, 1, 2, 3], [0, 1, 2, 3]), ([4, 5, 6, 7], [4, 5, 6, 7])]
    results = []
    for threads in (1, 3):
        with ThreadPoolExecutor(threads) as pool:
            loader = BatchLoader(paths, labels, SPEC, pool, aug=Augment("basic"), seed=7, epoch=2)
            results.append(list(loader.batches(parts)))
    one, three = results
    assert [i for i, _ in one[0].failed] == [3]
    assert one[0].failed[0][1].split(":")[0] in ("corrupt", "truncated", "not_an_image")
    assert one[0].ids.tolist() == [0, 1, 2] and one[0].y.tolist() == [0, 0, 0] and one[1].x.shape == (4, 3, 64, 64)
    for a, b in zip(one, three):
        assert np.array_equal(a.x, b.x) and np.array_equal(a.ids, b.ids)
    with ThreadPoolExecutor(2) as pool:  # another epoch, other augmentations; no augmentation = evaluation input
        other = list(BatchLoader(paths, labels, SPEC, pool, aug=Augment("basic"), seed=7, epoch=3).batches(parts))
        plain = list(BatchLoader(paths, labels, SPEC, pool, aug=None).batches(parts[1:]))
    assert not np.array_equal(other[1].x, one[1].x)
    assert np.array_equal(plain[0].x[0], preprocess(decode_image(paths[4], draft_size=resize_size(SPEC)), SPEC))
