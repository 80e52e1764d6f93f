"""The one-step (AIPW) correction of a learner's ATE (OneStep) and the averaged committee
(Ensemble) added for the IHDP out-of-sample ATE target."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression

from deepscm.errors import ConfigError
from deepscm.estimators import OverlapWarning, TARNet, TLearner
from deepscm.estimators.ensemble import Ensemble, default_members
from deepscm.estimators.onestep import OneStep, one_step_terms

TINY = {
    "rep_layers": (16, 16), "head_layers": (8,), "epochs": 30, "batch_size": 200, "lr": 3e-3,
    "progress": False,
}  # fmt: skip


def confounded(n: int = 4000, seed: int = 0):
    """logit e = x0, Y = 2·x0 + τ·T + noise with constant τ = 1: the arm means differ by
    ≈ 1 + 2·(E[x0 | T=1] − E[x0 | T=0]) ≈ 2.6, far from the ATE."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    y = 2 * x[:, 0] + t + rng.normal(size=n)
    return x, t, y


def test_one_step_removes_the_bias_of_a_constant_outcome_model():
    """A T-learner of constant arm means is the naive contrast (biased by confounding); its
    one-step correction with the logistic propensity is the AIPW estimate, which is
    consistent because the propensity model is correct."""
    x, t, y = confounded()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)
        naive = TLearner(model=DummyRegressor()).fit(x, t, y)
        corrected = OneStep(TLearner(model=DummyRegressor())).fit(x, t, y)
    assert naive.ate() > 2.0  # the confounded difference in means
    assert corrected.ate() == pytest.approx(1.0, abs=0.15)
    lo, hi = corrected.ate_interval()
    assert lo < 1.0 < hi and hi - lo < 0.6
    # the one-step estimate by hand: mean of the efficient influence terms
    e = np.clip(corrected.base_.propensity_train_, 0.01, 0.99)
    mu0, mu1 = (np.full(len(y), y[t == a].mean()) for a in (0, 1))
    psi = mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)
    assert corrected.ate() == pytest.approx(psi.mean(), rel=1e-9)


def test_one_step_shifts_are_constant_and_carry_to_new_rows():
    x, t, y = confounded(n=1500, seed=1)
    est = OneStep(TLearner(model=LinearRegression())).fit(x, t, y)
    new = np.random.default_rng(2).normal(size=(50, 2))
    base, shifted = est.base_.predict_outcomes(new), est.predict_outcomes(new)
    np.testing.assert_allclose(shifted["y0"] - base["y0"], est.shift0_, atol=1e-12)
    np.testing.assert_allclose(shifted["y1"] - base["y1"], est.shift1_, atol=1e-12)
    assert est.ate(new) == pytest.approx(est.base_.ate(new) + est.shift1_ - est.shift0_)
    # the training-row mean of the shifted CATE is the one-step estimate
    assert est.ate(x) == pytest.approx(est.ate(), rel=1e-9)
    # a correctly specified outcome model needs (almost) no correction
    assert abs(est.shift1_ - est.shift0_) < 0.15
    # the ATT stays the base learner's doubly robust ATT
    assert est.att() == pytest.approx(est.base_.att())


def test_one_step_terms_vanish_for_exact_outcome_models():
    t = np.array([0.0, 1.0, 0.0, 1.0])
    y = np.array([1.0, 3.0, 2.0, 5.0])
    mu0 = np.where(t == 0, y, -9.0)  # exact on the factual arm of every row
    mu1 = np.where(t == 1, y, 9.0)
    d0, d1, psi = one_step_terms(mu0, mu1, np.full(4, 0.5), t, y)
    assert d0 == 0.0 and d1 == 0.0
    np.testing.assert_allclose(psi, mu1 - mu0)


def test_one_step_seed_reaches_the_learner():
    x, t, y = confounded(n=300, seed=3)
    a = OneStep(TARNet(**TINY), seed=5).fit(x, t, y)
    b = TARNet(**TINY, seed=5).fit(x, t, y)
    np.testing.assert_allclose(a.base_.effect(x), b.effect(x), rtol=1e-6)


def test_ensemble_is_the_mean_of_its_members_fitted_alone():
    x, t, y = confounded(n=600, seed=4)
    members = [OneStep(TLearner(model=LinearRegression())), TARNet(**TINY)]
    ens = Ensemble(members, seed=7).fit(x, t, y)
    alone = [OneStep(TLearner(model=LinearRegression())).fit(x, t, y),
             TARNet(**{**TINY, "seed": 7}).fit(x, t, y)]  # fmt: skip
    expected = np.mean([m.predict_outcomes(x).to_numpy() for m in alone], axis=0)
    np.testing.assert_allclose(ens.predict_outcomes(x).to_numpy(), expected, rtol=1e-6)
    assert ens.ate() == pytest.approx(np.mean([m.ate(x) for m in alone]), rel=1e-6)


def test_ensemble_needs_two_members_and_has_a_default_committee():
    x, t, y = confounded(n=200, seed=5)
    with pytest.raises(ConfigError, match="at least two"):
        Ensemble([TLearner()]).fit(x, t, y)
    committee = default_members()
    assert len(committee) == 5 and all(isinstance(m, OneStep) for m in committee)
    names = {type(m.estimator).__name__ for m in committee}
    assert names == {"TARNet", "CFR", "Dragonnet", "TLearner"}


def test_one_step_corrects_a_shrunk_network():
    """A TARNet with a heavy L2 penalty under-fits x0, so its plug-in ATE is pulled towards the
    confounded contrast (≈ 2.6); the one-step shift with its propensity restores the ATE of 1,
    and the CATE moves by exactly that constant."""
    x, t, y = confounded(n=3000, seed=6)
    shrunk = {**TINY, "weight_decay": 0.3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)
        plain = TARNet(**shrunk).fit(x, t, y)
        corrected = OneStep(TARNet(**shrunk)).fit(x, t, y)
    lo, hi = corrected.ate_interval()
    assert plain.ate() > 1.4 and not lo < plain.ate() < hi
    assert corrected.ate() == pytest.approx(1.0, abs=0.15) and lo < 1.0 < hi
    np.testing.assert_allclose(
        corrected.effect(x) - plain.effect(x), corrected.shift1_ - corrected.shift0_, rtol=1e-4
    )


def test_ensemble_bootstrap_interval_covers_the_ate():
    """Two correctly specified linear learners: the percentile bootstrap of the ensemble
    (refits of every member) brackets the true ATE of 1 and its own estimate."""
    x, t, y = confounded(n=1500, seed=8)
    members = [TLearner(model=LinearRegression()), OneStep(TLearner(model=LinearRegression()))]
    ens = Ensemble(members, n_bootstrap=30, seed=1).fit(x, t, y)
    lo, hi = ens.ate_interval()
    assert lo < 1.0 < hi and lo < ens.ate() < hi and hi - lo < 0.5
