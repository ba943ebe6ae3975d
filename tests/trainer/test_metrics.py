"""Metrics against scikit-learn and hand-computed cases."""
import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from trainer import metrics


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    s = np.round(rng.random(5000) + 0.3 * y, 2)  # many ties
    assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_hand_case_and_single_class() -> None:
    assert metrics.auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert np.isnan(metrics.auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_gauc_equals_weighted_per_group_auc() -> None:
    rng = np.random.default_rng(1)
    g = rng.integers(0, 50, 3000)
    y = rng.integers(0, 2, 3000)
    s = np.round(rng.random(3000) + 0.2 * y, 2)
    num = den = 0.0
    for k in np.unique(g):
        m = g == k
        if 0 < y[m].sum() < m.sum():
            num += roc_auc_score(y[m], s[m]) * m.sum()
            den += m.sum()
    assert metrics.gauc(y, s, g) == pytest.approx(num / den, abs=1e-12)


def test_logloss_and_regression() -> None:
    y = np.array([0, 1, 1, 0])
    p = np.array([0.1, 0.8, 0.6, 0.3])
    assert metrics.logloss(y, p) == pytest.approx(log_loss(y, p))
    assert metrics.mse(np.array([1.0, 3.0]), np.array([2.0, 1.0])) == pytest.approx(2.5)
    assert metrics.mae(np.array([1.0, 3.0]), np.array([2.0, 1.0])) == pytest.approx(1.5)
