"""The Learning-Mindsets-like SCM reproduces CCGM Table I and has a known ATE."""

import numpy as np
import pytest

from deepscm.datasets.mindsets import CORRELATIONS, N_ROWS, TREATED_SHARE, load_mindsets, mindsets_parameters
from deepscm.errors import ConfigError


def test_correlations_within_sampling_error():
    df = load_mindsets(seed=0)
    assert len(df) == N_ROWS == 10391
    r = df[["SM", "SE", "D", "Y"]].corr()
    se = (1 - CORRELATIONS**2) / np.sqrt(N_ROWS)  # sd of a sample correlation
    assert (np.abs(r - CORRELATIONS) <= 4 * se).all().all()
    assert abs(df.D.mean() - TREATED_SHARE) < 4 * np.sqrt(TREATED_SHARE * (1 - TREATED_SHARE) / N_ROWS)
    assert set(np.unique(df.D)) == {0.0, 1.0}


def test_population_matches_table_one():
    big = load_mindsets(400_000, seed=1)
    assert np.allclose(big[["SM", "SE", "D", "Y"]].corr(), CORRELATIONS, atol=0.006)
    assert big.Y.var() == pytest.approx(1.0, abs=0.01)


def test_true_ate():
    df = load_mindsets(2000, seed=2, potential_outcomes=True)
    tau = mindsets_parameters().ate
    assert df.attrs["ate"] == tau and np.allclose(df.Y1 - df.Y0, tau)
    assert np.allclose(df.Y, np.where(df.D == 1, df.Y1, df.Y0))
    assert 0.3 < tau < 0.5  # confounding by SE inflates the naive difference above it


def test_bad_input():
    with pytest.raises(ConfigError):
        load_mindsets(0)
    with pytest.raises(ConfigError):
        mindsets_parameters(treated=1.5)
