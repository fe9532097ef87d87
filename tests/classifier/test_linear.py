import numpy as np
import pytest

from imgclf.classifier.linear import LinearHead
from imgclf.classifier.svm import SvmClassifier


def _blobs(k: int, n: int, d: int = 20, seed: int = 0, sep: float = 2.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, sep, (k, d))
    y = np.repeat(np.arange(k), n)
    return centers[y] + rng.normal(0, 1, (k * n, d)), y


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probabilities_are_calibrated_and_consistent(k, seed):
    x, y = _blobs(k, 40, seed=seed)
    clf = SvmClassifier(c_values=[0.01, 1.0, 100.0], cv_folds=4, seed=seed).fit(x, y)
    p = clf.predict_proba(x)
    assert p.shape == (len(x), k)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (clf.classes_[p.argmax(axis=1)] == clf.predict(x)).all()
    assert clf.C_ in (0.01, 1.0, 100.0) and clf.head_.temperature > 0
    assert (clf.predict(x) == y).mean() > 0.8


def test_c_is_chosen_on_train_folds_only_and_ties_prefer_smaller_c():
    x, y = _blobs(3, 30, sep=10.0)  # trivially separable: every C scores 1.0
    clf = SvmClassifier(c_values=[100.0, 1.0, 0.1], cv_folds=3).fit(x, y)
    assert set(clf.cv_scores_) == {100.0, 1.0, 0.1}
    assert clf.C_ == 0.1


def test_calibration_is_honest_on_held_out_data():
    x, y = _blobs(3, 200, seed=3, sep=0.6)  # overlapping classes
    clf = SvmClassifier(c_values=[0.1, 1.0], cv_folds=5).fit(x[::2], y[::2])
    p = clf.predict_proba(x[1::2])
    conf = p.max(axis=1)
    acc = (p.argmax(axis=1) == y[1::2]).mean()
    assert abs(conf.mean() - acc) < 0.1  # mean confidence tracks accuracy


def test_head_round_trips_through_plain_arrays(tmp_path):
    from imgclf.util.files import read_npz, write_npz

    x, y = _blobs(3, 20)
    head = SvmClassifier(c_values=[1.0], cv_folds=3).fit(x, y).head_
    write_npz(tmp_path / "h.npz", **head.to_arrays())
    back = LinearHead.from_arrays(read_npz(tmp_path / "h.npz"))
    np.testing.assert_allclose(back.predict_proba(x), head.predict_proba(x), rtol=1e-5)


def test_bad_input_shapes_are_rejected():
    with pytest.raises(ValueError, match="features must be"):
        SvmClassifier().fit(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match="2 classes"):
        SvmClassifier().fit(np.zeros((4, 2)), np.zeros(4, int))


def test_a_c_search_out_of_time_scores_the_smallest_c_and_lists_the_rest():
    x, y = _blobs(3, 30, seed=4)
    grid = [100.0, 0.01, 1.0]
    clf = SvmClassifier(c_values=grid, cv_folds=3, max_s=1e-9).fit(x, y)  # spent before the first C ends
    assert list(clf.cv_scores_) == [0.01] and clf.C_ == 0.01
    assert clf.c_unscored_ == [1.0, 100.0] and clf.info()["c_unscored"] == [1.0, 100.0]
    assert (clf.predict(x) == y).mean() > 0.8  # still a whole, calibrated model
    roomy = SvmClassifier(c_values=grid, cv_folds=3, max_s=1e6).fit(x, y)
    unlimited = SvmClassifier(c_values=grid, cv_folds=3).fit(x, y)
    assert set(roomy.cv_scores_) == set(unlimited.cv_scores_) == set(grid) and roomy.c_unscored_ == []
    assert "c_unscored" not in unlimited.info() and roomy.C_ == unlimited.C_


def test_svm_classifier_is_a_scikit_learn_estimator():
    """clone, GridSearchCV and Pipeline take it; score is accuracy; predict is argmax of predict_proba."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(m, 1.0, (20, 8)) for m in (-2.0, 0.0, 2.0)])
    y = np.array(["a"] * 20 + ["b"] * 20 + ["c"] * 20)
    est = SvmClassifier(c_values=[0.1, 1.0], cv_folds=3)
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params() and not hasattr(twin, "head_")
    search = GridSearchCV(est, {"cv_folds": [2, 3], "l2_normalize": [True, False]}, cv=3).fit(x, y)
    assert set(search.best_params_) == {"cv_folds", "l2_normalize"} and 0.9 <= search.best_score_ <= 1.0
    pipe = make_pipeline(StandardScaler(), SvmClassifier(c_values=[1.0], cv_folds=3)).fit(x, y)
    assert list(pipe.classes_) == ["a", "b", "c"] and pipe.score(x, y) >= 0.9
    fitted = est.fit(x, y)
    proba = fitted.predict_proba(x)
    assert (fitted.predict(x) == fitted.classes_[proba.argmax(axis=1)]).all()
    assert (fitted.decision_function(x).argmax(axis=1) == proba.argmax(axis=1)).all()
    assert fitted.score(x, y) == np.mean(fitted.predict(x) == y)


def test_loading_a_model_to_predict_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = "import sys, imgclf.inference.predict, imgclf.bundle.folder; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "False"
