"""IHDP (Hill 2011 response surfaces), NHEFS (What If ch. 12) and LaLonde (NSW) data sets."""

from __future__ import annotations

import sys
from importlib.util import find_spec

import numpy as np
import pytest

from deepscm.datasets import effects
from deepscm.datasets.effects import (
    IHDP_CONTINUOUS,
    LALONDE_COVARIATES,
    LALONDE_EXPERIMENTAL_ATT,
    NHEFS_COVARIATES,
    load_ihdp,
    load_lalonde,
    load_nhefs,
)
from deepscm.errors import DataError

needs_econml = pytest.mark.skipif(find_spec("econml") is None, reason="pip install econml")
needs_causaldata = pytest.mark.skipif(
    find_spec("causaldata") is None, reason="pip install causaldata"
)


# ----------------------------------------------------------------------------------------- IHDP
@needs_econml
def test_ihdp_is_hills_observational_subset() -> None:
    data = load_ihdp(0)
    assert data.X.shape == (747, 25)
    assert int(data.T.sum()) == 139 and int((data.T == 0).sum()) == 608
    cont = data.X[list(IHDP_CONTINUOUS)]
    np.testing.assert_allclose(cont.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(cont.std(ddof=1), 1.0, atol=1e-12)
    binary = data.X.drop(columns=list(IHDP_CONTINUOUS))
    assert set(np.unique(binary.drop(columns="first"))) == {0.0, 1.0}
    assert set(np.unique(binary["first"])) == {1.0, 2.0}


@needs_econml
def test_ihdp_replications_are_reproducible_and_distinct() -> None:
    a, b, c = load_ihdp(5), load_ihdp(5), load_ihdp(6)
    np.testing.assert_array_equal(a.Y, b.Y)
    np.testing.assert_array_equal(a.mu0, b.mu0)
    np.testing.assert_array_equal(a.X.to_numpy(), c.X.to_numpy())  # covariates are fixed
    assert not np.allclose(a.Y, c.Y)
    assert not np.allclose(a.ite, c.ite)


@needs_econml
@pytest.mark.parametrize("replication", [0, 1, 7, 42])
def test_surface_b_catt_is_four_and_effects_are_heterogeneous(replication: int) -> None:
    data = load_ihdp(replication, "B")
    np.testing.assert_array_equal(data.ite, data.mu1 - data.mu0)
    assert data.true_att == pytest.approx(4.0, abs=1e-10)
    assert np.std(data.ite) > 0.1  # heterogeneous, unlike surface A
    assert abs(data.true_ate - 4.0) > 1e-6  # only the CATT is calibrated, not the ATE


@needs_econml
def test_surface_b_has_hills_functional_form() -> None:
    """log mu0 = (Z + W) β and mu1 = Z β − ω: both exactly linear in X with the same slopes,
    intercepts differing by the offset 0.5 Σ β_j (intercept not offset) and ω."""
    data = load_ihdp(3, "B")
    beta = np.asarray(data.meta["beta"])
    assert set(np.round(beta, 10)) <= {0.0, 0.1, 0.2, 0.3, 0.4}
    z = np.column_stack([np.ones(len(data)), data.X.to_numpy()])
    coef0, *_ = np.linalg.lstsq(z, np.log(data.mu0), rcond=None)
    coef1, *_ = np.linalg.lstsq(z, data.mu1, rcond=None)
    np.testing.assert_allclose(coef0[1:], beta[1:], atol=1e-8)
    np.testing.assert_allclose(coef1[1:], beta[1:], atol=1e-8)
    np.testing.assert_allclose(coef0[0], beta[0] + 0.5 * beta[1:].sum(), atol=1e-8)


@needs_econml
def test_surface_a_effect_is_constant_four() -> None:
    data = load_ihdp(2, "A")
    np.testing.assert_allclose(data.ite, 4.0)
    assert data.true_ate == pytest.approx(4.0) and data.true_att == pytest.approx(4.0)
    assert set(np.unique(data.meta["beta"])) <= {0.0, 1.0, 2.0, 3.0, 4.0}


@needs_econml
def test_ihdp_outcome_noise_is_standard_normal() -> None:
    """Y − mu_T pooled over replications: mean 0, sd 1 (Hill's N(·, 1) noise)."""
    resid = []
    for r in range(10):
        d = load_ihdp(r)
        resid.append(d.Y - np.where(d.T == 1, d.mu1, d.mu0))
    resid = np.concatenate(resid)
    assert abs(resid.mean()) < 4 / np.sqrt(len(resid))
    assert resid.std() == pytest.approx(1.0, abs=0.04)


@needs_econml
def test_ihdp_split_is_90_10_and_carries_truth() -> None:
    data = load_ihdp(1)
    train, test = data.split(test_fraction=0.1, seed=1)
    assert (len(train), len(test)) == (672, 75)
    assert train.X.shape[1] == test.X.shape[1] == 25
    both = np.concatenate([train.Y, test.Y])
    np.testing.assert_array_equal(np.sort(both), np.sort(data.Y))  # a partition
    np.testing.assert_array_equal(test.ite, test.mu1 - test.mu0)
    assert set(np.round(test.ite, 12)) <= set(np.round(data.ite, 12))
    again, _ = data.split(test_fraction=0.1, seed=1)
    np.testing.assert_array_equal(again.Y, train.Y)
    other, _ = data.split(test_fraction=0.1, seed=2)
    assert not np.array_equal(other.Y, train.Y)


@needs_econml
@pytest.mark.parametrize("kwargs", [{"surface": "C"}, {"replication": -1}, {"replication": 1.5}])
def test_ihdp_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(DataError):
        load_ihdp(**kwargs)


@needs_econml
def test_split_rejects_bad_fraction() -> None:
    with pytest.raises(DataError, match="test_fraction"):
        load_ihdp(0).split(test_fraction=1.0)


def test_ihdp_names_econml_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    effects._ihdp_covariates.cache_clear()
    monkeypatch.setitem(sys.modules, "econml", None)
    with pytest.raises(ImportError, match="pip install econml"):
        load_ihdp(0)
    effects._ihdp_covariates.cache_clear()


# ---------------------------------------------------------------------------------------- NHEFS
def _logistic_mle(z: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Unpenalised logistic regression by Newton–Raphson (IRLS)."""
    beta = np.zeros(z.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-z @ beta))
        step = np.linalg.solve((z * (p * (1 - p))[:, None]).T @ z, z.T @ (t - p))
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            return beta
    raise AssertionError("IRLS did not converge")


@needs_causaldata
def test_nhefs_raw_has_the_books_rows_and_confounders() -> None:
    data = load_nhefs()
    assert len(data) == 1566 and tuple(data.X.columns) == NHEFS_COVARIATES
    assert int(data.T.sum()) == 403  # What If Table 12.1: 403 quitters among 1566
    assert data.ite is None and data.true_ate is None
    assert not data.X.isna().any().any() and np.isfinite(data.Y).all()
    assert list(data.X["education"].cat.categories) == [1, 2, 3, 4, 5]
    frame = data.to_frame()
    assert {"qsmk", "wt82_71"} <= set(frame.columns)


@needs_causaldata
def test_nhefs_book_ip_weighting_reproduces_3_44() -> None:
    """What If Program 12.3: stabilised IP weights from the book's propensity model give an
    effect of 3.44 kg; the weights have mean 1.00 and range 0.33–4.30 (§12.3)."""
    data = load_nhefs(design="book")
    assert data.X.shape == (1566, 18)
    assert {"age_sq", "wt71_sq", "education_5", "exercise_2", "active_2"} <= set(data.X.columns)
    z = np.column_stack([np.ones(len(data)), data.X.to_numpy()])
    t, y = data.T, data.Y
    p = 1.0 / (1.0 + np.exp(-z @ _logistic_mle(z, t)))
    w = np.where(t == 1, t.mean() / p, (1 - t.mean()) / (1 - p))
    ate = np.average(y[t == 1], weights=w[t == 1]) - np.average(y[t == 0], weights=w[t == 0])
    assert ate == pytest.approx(3.44, abs=0.01)
    assert w.mean() == pytest.approx(1.0, abs=0.005)
    assert (w.min(), w.max()) == (pytest.approx(0.33, abs=0.005), pytest.approx(4.30, abs=0.005))
    naive = y[t == 1].mean() - y[t == 0].mean()
    assert naive == pytest.approx(2.54, abs=0.01)  # §12.1: confounded difference 2.5 kg


def test_nhefs_rejects_unknown_design() -> None:
    with pytest.raises(DataError, match="design"):
        load_nhefs(design="dummies")


def test_nhefs_names_causaldata_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "causaldata", None)
    with pytest.raises(ImportError, match="pip install causaldata"):
        load_nhefs()


# -------------------------------------------------------------------------------------- LaLonde
@needs_causaldata
def test_lalonde_samples_and_experimental_benchmark() -> None:
    exp, cps = load_lalonde("nsw"), load_lalonde("cps")
    assert list(exp.X.columns) == list(LALONDE_COVARIATES)
    assert (int(exp.T.sum()), int((exp.T == 0).sum())) == (185, 260)
    assert (int(cps.T.sum()), int((cps.T == 0).sum())) == (185, 15992)
    diff = exp.Y[exp.T == 1].mean() - exp.Y[exp.T == 0].mean()
    assert diff == pytest.approx(LALONDE_EXPERIMENTAL_ATT, abs=0.01)
    assert exp.meta["experimental_att"] == LALONDE_EXPERIMENTAL_ATT
    np.testing.assert_array_equal(cps.X["u74"], (cps.X["re74"] == 0).astype(float))
    np.testing.assert_array_equal(cps.X[cps.T == 1].to_numpy(), exp.X[exp.T == 1].to_numpy())
    # the observational contrast is badly biased (Dehejia & Wahba 1999: about −$8,500)
    assert cps.Y[cps.T == 1].mean() - cps.Y[cps.T == 0].mean() < -8000
    assert exp.true_att is None and exp.outcome == "re78" and exp.treatment == "treat"


def test_lalonde_rejects_unknown_controls() -> None:
    with pytest.raises(DataError, match="controls"):
        load_lalonde("psid")
