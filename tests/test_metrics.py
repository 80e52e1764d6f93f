"""Tests of deepscm.evaluation.metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from deepscm.errors import DataError
from deepscm.evaluation import (
    LARGE_N,
    counterfactual_mae,
    counterfactual_mse,
    counterfactual_rmse,
    energy_distance,
    mmd2_unbiased,
    mmd_dcm,
    wasserstein1,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_mmd_unbiased_same_vs_shifted(rng):
    x, y = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    same = mmd2_unbiased(x, y)
    shifted = mmd2_unbiased(x, y + 1.0)
    assert abs(same) < 0.01 and shifted > 0.1
    # the U-statistic is unbiased: over repeats it is centred at 0, so negative values occur
    values = [mmd2_unbiased(rng.normal(size=(50, 2)), rng.normal(size=(50, 2)))
              for _ in range(30)]
    assert min(values) < 0 < max(values) and abs(np.mean(values)) < 0.01


def test_mmd_unbiased_matches_formula_with_given_bandwidth(rng):
    x, y = rng.normal(size=(20, 2)), rng.normal(1, 1, size=(15, 2))

    def k(a, b):
        return np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * 0.7**2))

    kxx, kyy = k(x, x), k(y, y)
    expected = ((kxx.sum() - 20) / (20 * 19) + (kyy.sum() - 15) / (15 * 14)
                - 2 * k(x, y).mean())
    assert mmd2_unbiased(x, y, bandwidth=0.7) == pytest.approx(expected, rel=1e-12)
    assert mmd2_unbiased(np.ones((4, 1)), np.ones((5, 1))) == 0.0


def test_mmd_dcm_matches_sklearn_reimplementation(rng):
    from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel

    def reference(x, y):
        d = euclidean_distances(x, y, squared=True)
        d = d - np.tril(d, k=-1)
        gamma = 1.0 / np.median(d[d > 0])
        return (rbf_kernel(x, x, gamma).mean() + rbf_kernel(y, y, gamma).mean()
                - 2 * rbf_kernel(x, y, gamma).mean())

    for m, n, d in [(100, 100, 3), (80, 120, 2), (120, 60, 1)]:
        x, y = rng.normal(size=(m, d)), rng.normal(0.5, 1.5, size=(n, d))
        assert mmd_dcm(x, y) == pytest.approx(reference(x, y), rel=1e-9, abs=1e-12)
    x = rng.normal(size=(200, 2))
    assert mmd_dcm(x, rng.normal(size=(200, 2))) < 0.02 < mmd_dcm(x, x + 1)


def test_energy_distance_matches_scipy_in_1d(rng):
    x, y = rng.normal(size=200), rng.standard_t(3, size=150) + 0.3
    assert energy_distance(x, y) == pytest.approx(scipy.stats.energy_distance(x, y) ** 2,
                                                  rel=1e-9)
    assert energy_distance(x[:, None], y) == pytest.approx(energy_distance(x, y))


def test_energy_distance_multivariate(rng):
    x = rng.normal(size=(150, 3))
    near, far = energy_distance(x, rng.normal(size=(150, 3))), energy_distance(x, x + 2)
    assert abs(near) < 0.1 < far
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)


def test_wasserstein_keys_and_values(rng):
    df = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    other = pd.DataFrame({"b": df["b"] + 2.0, "a": df["a"], "extra": 0.0})
    w = wasserstein1(df, other)
    assert list(w) == ["a", "b"]
    assert w["a"] == pytest.approx(0.0) and w["b"] == pytest.approx(2.0)
    assert list(wasserstein1(df.to_numpy(), other[["a", "b"]].to_numpy())) == [0, 1]
    with pytest.raises(DataError, match="lacks columns"):
        wasserstein1(df, other.drop(columns="a"))


def test_counterfactual_errors():
    true = pd.DataFrame({"x": [0.0, 1.0], "y": [2.0, 2.0]}, index=["u1", "u2"])
    pred = pd.DataFrame({"y": [2.0, 4.0], "x": [1.0, 1.0], "z": [9.0, 9.0]},
                        index=["u1", "u2"])
    assert counterfactual_mse(pred, true) == pytest.approx((1 + 0 + 0 + 4) / 4)
    assert counterfactual_rmse(pred, true) == pytest.approx(np.sqrt(5 / 4))
    assert counterfactual_mae(pred, true) == pytest.approx(3 / 4)
    # rows are aligned on the index
    assert counterfactual_mse(pred.iloc[::-1], true) == pytest.approx(5 / 4)
    assert counterfactual_mae(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == 1.0
    with pytest.raises(DataError, match="'x'"):
        counterfactual_mse(pred.drop(columns="x"), true)
    with pytest.raises(DataError, match="row indices"):
        counterfactual_mse(pred.set_axis(["a", "b"]), true)
    with pytest.raises(DataError, match="shape"):
        counterfactual_rmse(np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(DataError, match="NaN"):
        counterfactual_mae(np.array([np.nan]), np.array([1.0]))


def test_large_inputs_warn_instead_of_subsampling():
    x = np.zeros((LARGE_N + 1, 1))
    x[0] = 1.0
    with pytest.warns(UserWarning, match="subsample"):
        energy_distance(x, np.zeros((3, 1)))
