"""Classification metrics against direct per-sample counting."""

import numpy as np
import pytest

from edgebnn.metrics import classification_report, confusion_matrix, macro_f1, per_class


def _brute_force(y_true, y_pred, k):
    cm = np.zeros((k, k), dtype=int)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    f1 = []
    for c in range(k):
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return cm, float(np.mean(f1))


@pytest.mark.parametrize("k, n, seed", [(2, 50, 0), (10, 500, 1), (7, 13, 2)],
                         ids=["k2_n50", "k10_n500", "k7_n13"])
def test_matches_brute_force(k, n, seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    # mostly right, some noise, like a real classifier
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, k, n))
    cm, f1 = _brute_force(y_true, y_pred, k)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, k), cm)
    assert macro_f1(y_true, y_pred, k) == pytest.approx(f1, abs=1e-12)
    rep = classification_report(y_true, y_pred, k)
    assert rep["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    assert sum(c["support"] for c in rep["per_class"].values()) == n


def test_class_never_predicted_has_zero_precision_and_f1():
    prec, rec, f1 = per_class(confusion_matrix([0, 1, 2, 2], [0, 1, 1, 1], 3))
    assert prec[2] == 0.0 and rec[2] == 0.0 and f1[2] == 0.0
    assert rec[1] == 1.0 and prec[1] == pytest.approx(1 / 3)


def test_report_uses_class_names():
    rep = classification_report([0, 1], [0, 1], 2, class_names=["cat", "dog"])
    assert set(rep["per_class"]) == {"cat", "dog"} and rep["macro_f1"] == 1.0


def test_out_of_range_labels_are_an_error():
    with pytest.raises(ValueError, match="y_pred"):
        confusion_matrix([0, 1], [0, 5], 3)
