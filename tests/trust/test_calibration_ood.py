"""The trust arrays' invariants: calibration keeps the argmax and the sums, the OOD threshold keeps its TPR."""
from __future__ import annotations

import numpy as np
import pytest

from imgclf.trust import OodDetector, brier, calibration_metrics, coverage_curve, ece, fit_ood, fit_temperature, nll, reliability, softmax


def _overconfident(seed: int, n: int = 2000, k: int = 4, scale: float = 4.0):
    """Logits whose softmax is calibrated at temperature 1 / scale (labels drawn from it)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (n, k))
    p = softmax(z)
    y = np.array([rng.choice(k, p=row) for row in p])
    return scale * z, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_temperature_recovers_the_scale_keeps_argmax_and_sums(seed):
    logits, y = _overconfident(seed)
    t = fit_temperature(logits, y)
    assert t == pytest.approx(0.25, rel=0.15)
    before, after = softmax(logits), softmax(t * logits)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-12)
    assert np.array_equal(before.argmax(axis=1), after.argmax(axis=1))
    assert ece(after, y) < ece(before, y) and ece(after, y) < 0.05
    assert nll(after, y) < nll(before, y) and brier(after, y) < brier(before, y)


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e3])
def test_temperature_does_not_depend_on_the_scale_of_the_logits(scale):
    """An SVM at C = 1e-4 has decision values of ~0.004: the fit must reach T in the thousands, not stop at a bound."""
    logits, y = _overconfident(0)
    t = fit_temperature(logits * scale, y)
    assert t * scale == pytest.approx(fit_temperature(logits, y), rel=1e-3)
    assert t * scale == pytest.approx(0.25, rel=0.15)


def test_metrics_of_known_cases():
    y = np.array([0, 1, 1, 0])
    onehot = np.eye(2)[y]
    assert calibration_metrics(onehot, y) == {"ece": 0.0, "nll": 0.0, "brier": 0.0}
    half = np.full((4, 2), 0.5)
    assert nll(half, y) == pytest.approx(np.log(2)) and brier(half, y) == pytest.approx(0.5)
    assert ece(half, y) == pytest.approx(0.0)  # 50% confident, right half of the time (argmax 0)
    r = reliability(half, y)
    assert r["count"] == [4] and r["confidence"] == [0.5]


def test_coverage_curve_starts_at_full_coverage_and_accuracy_rises():
    logits, y = _overconfident(0)
    c = coverage_curve(softmax(logits), y)
    assert c["coverage"][0] == 1.0 and all(a >= b for a, b in zip(c["coverage"], c["coverage"][1:]))
    assert c["accuracy"][-1] > c["accuracy"][0]


def _clusters(seed: int, n: int, k: int = 3, d: int = 32):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(0, 1, (k, d)) + 3.0
    y = rng.integers(0, k, n)
    return centers[y] + rng.normal(0, 0.6, (n, d)), y, centers


def _logits(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return -((x[:, None, :] - centers[None]) ** 2).sum(-1) / 10.0


@pytest.mark.parametrize("seed", [0, 1])
def test_threshold_reproduces_its_train_tpr_and_far_images_are_unknown(seed):
    x, y, centers = _clusters(seed, 600)
    det = fit_ood(x, _logits(x, centers))  # exact logits stand in for out-of-fold ones
    new, _, _ = _clusters(seed + 100, 2000)
    for tpr in (0.8, 0.95):
        accepted = (det.score(new, _logits(new, centers)) <= det.threshold(tpr)).mean()
        assert accepted == pytest.approx(tpr, abs=0.04)
    far = np.random.default_rng(seed).normal(0, 1, (50, 32)) - 3.0  # another direction entirely
    assert (det.score(far, _logits(far, centers)) > det.threshold(0.95)).all()
    again = OodDetector.from_arrays(det.to_arrays())
    np.testing.assert_allclose(again.score(new[:20], _logits(new[:20], centers)), det.score(new[:20], _logits(new[:20], centers)),
                               rtol=1e-5)
