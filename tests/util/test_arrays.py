"""The shared array facts: one L2 normalisation, one class-averaged accuracy (scikit-learn's semantics)."""
import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from imgclf.evaluation.metrics import compute_metrics
from imgclf.util.arrays import class_averaged_accuracy, l2_normalize


@pytest.mark.parametrize("seed", range(5))
def test_class_averaged_accuracy_is_balanced_accuracy_score(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, y, rng.integers(0, 6, 60))  # classes 4 and 5 are never true
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about predicted classes absent from y_true
        expected = balanced_accuracy_score(y, pred)
    assert class_averaged_accuracy(y, pred) == pytest.approx(expected, abs=1e-12)
    proba = np.eye(6)[pred]
    assert compute_metrics(y, proba, list("abcdef")).class_avg_accuracy == pytest.approx(expected, abs=1e-12)


def test_class_averaged_accuracy_weighs_each_class_the_same():
    y = np.array([0] * 9 + [1])
    assert class_averaged_accuracy(y, np.zeros(10, int)) == 0.5  # 90% accurate, but class 1 is never found
    with pytest.raises(ValueError, match="equal length"):
        class_averaged_accuracy(y, np.zeros(3, int))


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows_and_dtype():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]], np.float32)
    z = l2_normalize(x)
    assert z.dtype == np.float32 and np.allclose(z, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]])
