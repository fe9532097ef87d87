"""The doctor's algorithms on generated feature arrays: exact numbers where the paper defines them,
and planted problems found."""
from __future__ import annotations

import numpy as np
import pytest

from imgclf.config.settings import ConfigError, load_config
from imgclf.doctor.labels import confident_joint, find_label_issues, out_of_fold_proba, reduce_features
from imgclf.doctor.outliers import find_outliers
from imgclf.doctor.pairs import find_duplicates


def _clusters(n_per_class: int = 40, k: int = 3, d: int = 64, spread: float = 0.35, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    y = np.repeat(np.arange(k), n_per_class)
    x = centres[y] + spread * rng.normal(size=(len(y), d))
    return x, y


def test_confident_joint_follows_the_paper_on_a_hand_made_example():
    # 3 images labelled 0, 3 labelled 1; image 2 looks like class 1, image 5 below both thresholds
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.55, 0.45]])
    y = np.array([0, 0, 0, 1, 1, 1])
    thresholds, column, joint = confident_joint(proba, y, 2)
    assert thresholds == pytest.approx([(0.9 + 0.8 + 0.2) / 3, (0.9 + 0.7 + 0.45) / 3])
    assert column.tolist() == [0, 0, 1, 1, 1, -1]  # image 5: 0.55 < t0 = 0.633 and 0.45 < t1 = 0.683
    # raw counts [[2, 1], [0, 2]]; each row calibrated to its label's count (3)
    assert joint == pytest.approx(np.array([[2.0, 1.0], [0.0, 3.0]]))
    assert joint.sum(axis=1) == pytest.approx([3, 3])


def test_out_of_fold_probabilities_never_come_from_a_model_that_saw_the_label():
    x, y = _clusters()
    z = reduce_features(x, 16)
    lone = 5  # an image of class 0 labelled 2: a model trained on it would learn it back
    y_bad = y.copy()
    y_bad[lone] = 2
    p = out_of_fold_proba(z, y_bad, 3, folds=5, c=1e4, seed=0)
    assert p.sum(axis=1) == pytest.approx(np.ones(len(y)))
    assert p[lone, 2] < 0.05 and p[lone, 0] > 0.9  # (no warm start either: it would carry the label over)
    from sklearn.linear_model import LogisticRegression

    in_sample = LogisticRegression(C=1e4, max_iter=5000).fit(z, y_bad).predict_proba(z[lone:lone + 1])[0]
    assert in_sample[2] > 0.5  # what the out-of-fold scheme protects against


def test_planted_flips_are_found_and_clean_data_gives_no_issue():
    x, y = _clusters(n_per_class=50, k=4, spread=0.6, seed=1)
    clean = find_label_issues(x, y, 4, seed=0)
    assert clean.flagged.sum() == 0 and clean.estimated_errors == pytest.approx(0.0)
    rng = np.random.default_rng(2)
    flips = rng.choice(len(y), 20, replace=False)
    noisy = y.copy()
    noisy[flips] = (y[flips] + 1 + rng.integers(0, 3, 20)) % 4
    found = find_label_issues(x, noisy, 4, seed=0)
    assert set(np.flatnonzero(found.flagged)) == set(flips.tolist())
    assert (found.suggested[flips] == y[flips]).all()
    assert found.estimated_errors == pytest.approx(20, abs=3)
    worst = np.argsort(found.self_confidence)[:20]
    assert set(worst.tolist()) == set(flips.tolist())


def test_outlier_far_from_every_class_is_flagged_and_a_clean_set_stays_under_its_fence():
    x, y = _clusters(n_per_class=30)
    train = np.arange(len(y)) % 4 != 0
    clean = find_outliers(x, train, neighbors=5, iqr=3.0)
    assert clean.flagged.sum() == 0
    assert clean.threshold > clean.distance[train].max() > 0
    odd = np.vstack([x, np.random.default_rng(5).normal(size=(1, x.shape[1])) * 3])
    far = find_outliers(odd, np.append(train, False), neighbors=5, iqr=3.0)
    assert np.flatnonzero(far.flagged).tolist() == [len(x)]


def test_duplicate_pairs_are_sorted_into_within_class_cross_class_and_leak():
    x, _ = _clusters(n_per_class=5, k=2, d=32, spread=1.0)
    x[3] = x[0] * 1.01  # same class, both train
    x[6] = x[1]  # exact copy in the other class
    x[9] = x[7] + 1e-4  # same class, train vs test
    labels = ["a"] * 5 + ["b"] * 5
    splits = ["train"] * 9 + ["test"]
    codes = np.zeros((10, 32), np.uint8)
    codes[:] = np.arange(10)[:, None] * 17  # every hash far apart ...
    codes[4] = codes[8] = 255  # ... except 4 and 8: found by dhash alone
    pairs = {(p.a, p.b): p for p in find_duplicates(x, labels, splits, cosine=0.99, codes=codes, max_distance=2)}
    assert set(pairs) == {(0, 3), (1, 6), (7, 9), (4, 8)}
    assert (pairs[1, 6].kind, pairs[1, 6].leak) == ("cross_class", False)
    assert (pairs[7, 9].kind, pairs[7, 9].leak) == ("within_class", True)
    assert pairs[0, 3].kind == "within_class" and pairs[0, 3].cosine == pytest.approx(1.0)
    assert pairs[4, 8].cosine is None and pairs[4, 8].dhash_distance == 0 and pairs[4, 8].kind == "cross_class"


@pytest.mark.parametrize("setting, words", [("doctor.folds=1", "doctor.folds must be an integer >= 2; got 1"),
                                            ("doctor.c=0", "doctor.c must be a number > 0; got 0.0"),
                                            ("doctor.duplicate_cosine=1.5", "doctor.duplicate_cosine must be a number in (0, 1]; got 1.5")])
def test_doctor_settings_are_checked(setting, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        load_config(None, [setting])
