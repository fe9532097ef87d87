"""Selection strategies on generated features: what each one asks to label first, and what it skips."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from imgclf.classifier.linear import fit_head
from imgclf.labelnext import STRATEGIES, kcenter_greedy, select, uncertainty
from imgclf.util.errors import ConfigError

D = 32


def _blob(rng: np.random.Generator, center: np.ndarray, n: int, spread: float = 0.1) -> np.ndarray:
    return (center + spread * rng.standard_normal((n, D))).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _region_pool(seed: int):
    """Classes A (around e0) and B (around e1) are labelled; B also lives in a region R (around e0 + e1 + e2,
    halfway between them) of which nothing is labelled. The pool holds 60 A, 60 B and 30 R images."""
    rng = np.random.default_rng(seed)
    e = np.eye(D, dtype=np.float32)
    region = (e[0] + e[1] + 1.2 * e[2]) / np.sqrt(2)
    labelled = np.vstack([_blob(rng, e[0], 10), _blob(rng, e[1], 10)])
    y = np.repeat([0, 1], 10)
    pool = np.vstack([_blob(rng, e[0], 60), _blob(rng, e[1], 60), _blob(rng, region, 30)])
    in_region = np.arange(len(pool)) >= 120
    head = fit_head(labelled, y, 1.0, temperature=5.0)
    return head.predict_proba(pool), pool, labelled, in_region


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "random"])
def test_the_unlabelled_region_of_a_class_is_queried_first(strategy, seed):
    proba, pool, labelled, in_region = _region_pool(seed)
    sel = select(strategy, proba, pool, labelled, 10, seed=seed)
    assert len(sel.indices) == len(set(sel.indices.tolist())) == 10
    assert in_region[sel.indices[0]], f"{strategy} did not start in the region: {sel.indices.tolist()}"
    if strategy in ("margin", "entropy"):  # kcenter and hybrid spread the batch: once R has a pick, elsewhere is as new
        assert in_region[sel.indices].mean() >= 0.8, f"{strategy} picked {in_region[sel.indices].sum()} of 10 in the region"


def test_random_is_a_uniform_draw_reproducible_by_seed():
    proba, pool, labelled, in_region = _region_pool(0)
    a, b = (select("random", proba, pool, labelled, 30, seed=7) for _ in range(2))
    assert np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, select("random", proba, pool, labelled, 30, seed=8).indices)
    assert in_region[a.indices].mean() < 0.5  # the region is 20% of the pool


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "random"])
def test_near_copies_of_labelled_images_are_skipped_and_a_batch_holds_no_near_copies(strategy):
    rng = np.random.default_rng(3)
    proba, pool, labelled, in_region = _region_pool(3)
    # 15 near copies of the most uncertain region image: once labelled, then again in the pool
    twin = pool[120]
    copies = twin + 0.001 * rng.standard_normal((15, D)).astype(np.float32)
    labelled2 = np.vstack([labelled, twin])
    pool2 = np.vstack([pool, copies])
    proba2 = np.vstack([proba, np.tile(proba[120], (15, 1))])
    sel = select(strategy, proba2, pool2, labelled2, 10)
    assert set(range(150, 165)) <= set(sel.skipped.tolist())
    assert not set(sel.indices.tolist()) & set(range(150, 165)), "a near copy of a labelled image was suggested"
    # without the labelled twin, the copies are all in the pool: at most one of them joins the batch
    sel = select(strategy, proba2, pool2, labelled, 10)
    assert len(set(sel.indices.tolist()) & set(range(150, 165)) | ({120} & set(sel.indices.tolist()))) <= 1


def test_uncertainty_invariants():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.7, 0.2, 0.1]])
    m, h = uncertainty(p, "margin"), uncertainty(p, "entropy")
    assert np.allclose(m, [0.0, 1.0, 1.0, 0.5])
    assert np.allclose(h[:3], [0.0, np.log(2) / np.log(3), 1.0]) and 0 < h[3] < 1
    assert ((m >= 0) & (m <= 1)).all() and ((h >= 0) & (h <= 1 + 1e-12)).all()


def test_saturated_probabilities_still_rank_by_the_gap_between_the_two_classes():
    pool = np.eye(4, D, dtype=np.float32)
    proba = np.array([[1.0, 1e-40], [1.0, 1e-5], [1.0, 1e-200], [1.0, 1e-12]])  # p1 rounds to 1.0 everywhere
    sel = select("margin", proba, pool, np.zeros((0, D), np.float32), 4)
    assert sel.indices.tolist() == [1, 3, 0, 2]


def test_kcenter_picks_the_farthest_then_the_farthest_from_it():
    e = np.eye(D, dtype=np.float32)
    labelled = e[[0]]
    pool = np.vstack([e[0] + 0.05 * e[1], e[2], e[2] + 0.05 * e[3], e[4]])
    idx, dist = kcenter_greedy(pool, labelled, 3)
    assert idx[0] in (1, 3) and set(idx[:2].tolist()) == {1, 3}
    assert np.all(np.diff(dist) <= 1e-6), "distances at pick time never grow"


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        select("uncertainty", np.ones((2, 2)) / 2, np.ones((2, D)), np.ones((1, D)), 1)
    assert all(s in str(e.value) for s in STRATEGIES)


@pytest.mark.parametrize("k", [2, 3])
def test_the_quick_refit_head_agrees_with_the_runs_svm_at_its_c(k):
    from imgclf.classifier.svm import SvmClassifier

    rng = np.random.default_rng(k)
    centers = 3 * np.eye(D, dtype=np.float32)[:k]
    x = np.vstack([_blob(rng, c, 30, spread=0.6) for c in centers])
    y = np.repeat(np.arange(k), 30)
    svm = SvmClassifier(c_values=[0.1, 1.0], cv_folds=3).fit(x, y)
    head = fit_head(x, y, svm.C_, temperature=svm.head_.temperature)
    assert head.weight.shape == (k, D) and head.temperature == svm.head_.temperature
    assert (head.predict(x) == svm.head_.predict(x)).mean() >= 0.98
    assert np.allclose(head.predict_proba(x).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="every class"):
        fit_head(x[y != 0], y[y != 0], 1.0)


def test_density_asks_for_an_uncertain_crowd_before_uncertain_outliers():
    """Margin asks for the most uncertain images whatever they are; density weighs that by how many pool
    images resemble each one, so a crowded uncertain region comes before uncertain one-offs."""
    from imgclf.labelnext.strategies import representativeness

    rng = np.random.default_rng(5)
    e = np.eye(D, dtype=np.float32)
    labelled = np.vstack([_blob(rng, e[0], 10), _blob(rng, e[1], 10)])
    crowd = _blob(rng, (e[0] + e[1] + e[2]) / np.sqrt(3), 30, spread=0.05)  # 30 alike, fairly uncertain
    outliers = np.vstack([(e[0] + e[1]) / np.sqrt(2) + 1.5 * e[5 + i] for i in range(5)])  # most uncertain, each alone
    pool = np.vstack([_blob(rng, e[0], 40), _blob(rng, e[1], 40), crowd, outliers])
    in_crowd = (np.arange(len(pool)) >= 80) & (np.arange(len(pool)) < 110)
    proba = np.vstack([np.tile([0.95, 0.05], (40, 1)), np.tile([0.05, 0.95], (40, 1)),
                       np.tile([0.6, 0.4], (30, 1)), np.tile([0.5, 0.5], (5, 1))])
    dens = representativeness(pool)
    assert dens.shape == (len(pool),) and dens[in_crowd].min() > dens[110:].max()
    assert not in_crowd[select("margin", proba, pool, labelled, 5).indices].any(), "the outliers are the most uncertain"
    sel = select("density", proba, pool, labelled, 5)
    assert in_crowd[sel.indices].all(), sel.indices.tolist()
    assert np.all(np.diff(sel.scores) <= 1e-12) and ((sel.scores >= 0) & (sel.scores <= 1)).all()
