"""Estimators on observational data: overlap diagnostics and warnings, Crump trimming and
overlap weights, ATT by the ATT's own weights, R-loss / DR model selection, and the interface
details (column names in errors, pandas effects, bootstrap progress)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

from deepscm.errors import DataError
from deepscm.estimators import (
    AIPW,
    CFR,
    IPW,
    OverlapWarning,
    SLearner,
    TARNet,
    TLearner,
    Tuned,
    crump_threshold,
    overlap_report,
    select,
    trim_mask,
)
from deepscm.estimators.selection import default_grid
from deepscm.evaluation import pehe

TINY = {
    "rep_layers": (32, 32), "head_layers": (16,), "epochs": 60, "batch_size": 200, "lr": 3e-3,
    "progress": False,
}  # fmt: skip


def quadratic() -> object:
    return make_pipeline(PolynomialFeatures(2), LinearRegression())


def poor_overlap(n: int = 4000, seed: int = 0):
    """logit e = 3.5·x0: half the rows have e outside [0.09, 0.91]. τ(x) = 1 + 2·x0² is large
    exactly where overlap fails, so the ATE (≈ 3) lives in the tails and the overlap
    estimands (trimmed ATE, ATO ≈ 1.3–1.4) differ from it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    e = 1 / (1 + np.exp(-3.5 * x[:, 0]))
    t = (rng.uniform(size=n) < e).astype(float)
    tau = 1 + 2 * x[:, 0] ** 2
    y = 3 * x[:, 0] ** 2 + x[:, 1] + tau * t + rng.normal(scale=0.5, size=n)
    return x, t, y, tau, e


def good_overlap(n: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-0.5 * x[:, 0]))).astype(float)
    return x, t, x[:, 0] + t + rng.normal(size=n)


@pytest.fixture(scope="module")
def poor():
    return poor_overlap()


# ---------------------------------------------------------------------- diagnostics
def test_overlap_report_and_warning(poor):
    x, t, y, _, _ = poor
    with pytest.warns(OverlapWarning, match="poor overlap"):
        est = IPW().fit(x, t, y)
    report = est.overlap_
    assert report.n_treated == int(t.sum()) and report.n_control == int(len(t) - t.sum())
    assert report.share_outside > 0.15  # |3.5·x0| > logit(0.99): P ≈ 0.19
    w = 1 / est.propensity()[t == 1]
    assert report.ess_treated == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert report.ess_treated < 0.2 * report.n_treated
    assert sum(report.histogram_treated) == report.n_treated
    assert report.range_treated[1] > 0.999 and report.range_control[0] < 0.001
    assert "Crump" in str(report) and report.problems()
    assert issubclass(OverlapWarning, UserWarning)
    xg, tg, yg = good_overlap()
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverlapWarning)
        fitted = TLearner(LinearRegression()).fit(xg, tg, yg)  # no warning on good overlap
    assert not fitted.overlap_.problems() and fitted.overlap_.crump_share_dropped < 0.01


@pytest.mark.parametrize("make", [IPW, lambda: AIPW(LinearRegression())])
def test_few_treated_warns(make):
    x, t, y = good_overlap()
    t = np.zeros_like(t)
    t[:8] = 1.0
    with pytest.warns(OverlapWarning, match="only 8 treated"):
        make().fit(x, t, y)


def test_crump_threshold_solves_its_equation():
    e = np.random.default_rng(0).beta(0.4, 0.4, size=20000)
    alpha = crump_threshold(e)
    assert 0.05 < alpha < 0.2
    g = 1 / (e * (1 - e))
    gamma = 1 / (alpha * (1 - alpha))
    assert gamma == pytest.approx(2 * g[g <= gamma].mean(), rel=1e-3)
    assert crump_threshold(np.full(100, 0.5)) == 0.0  # sup g ≤ 2 E[g]: keep everything
    kept = trim_mask(e, "crump")
    np.testing.assert_array_equal(kept, (e >= alpha) & (e <= 1 - alpha))
    np.testing.assert_array_equal(trim_mask(e, 0.1), (e >= 0.1) & (e <= 0.9))
    with pytest.raises(ValueError, match="trim"):
        trim_mask(e, "sturmer")
    with pytest.raises(DataError):
        overlap_report(np.array([0.5, 1.5]), np.array([0.0, 1.0]))


# ---------------------------------------------------------------------- trimming, overlap weights
def test_trimming_and_overlap_weights_recover_their_estimands(poor):
    """Untrimmed IPW misses the ATE badly; the Crump-trimmed estimators recover the ATE of the
    kept rows and the overlap-weighted ones the ATO Σ e(1−e)τ / Σ e(1−e)."""
    x, t, y, tau, e = poor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)
        raw, clipped = IPW(clip=None).fit(x, t, y), IPW().fit(x, t, y)
        trimmed = IPW(trim="crump").fit(x, t, y)
        aipw_trimmed = AIPW(quadratic(), trim="crump").fit(x, t, y)
        ato = IPW(weights="overlap").fit(x, t, y)
        aipw_ato = AIPW(quadratic(), weights="overlap").fit(x, t, y)
    assert abs(raw.ate() - tau.mean()) > 0.5 and abs(clipped.ate() - tau.mean()) > 0.5
    assert 0.3 < trimmed.kept_.mean() < 0.7 and "ATE of the" in trimmed.estimand_
    kept = trim_mask(aipw_trimmed.propensity_cf_, "crump")
    np.testing.assert_array_equal(aipw_trimmed.kept_, kept)
    truth_trimmed = tau[trimmed.kept_].mean()
    assert abs(trimmed.ate() - truth_trimmed) < 0.15
    assert abs(aipw_trimmed.ate() - tau[aipw_trimmed.kept_].mean()) < 0.1
    for est, e_hat in ((ato, ato.propensity()), (aipw_ato, aipw_ato.propensity_cf_)):
        h = e_hat * (1 - e_hat)  # the ATO of the fitted weights
        assert abs(est.ate() - (h * tau).sum() / h.sum()) < 0.15
    h = e * (1 - e)
    assert abs((h * tau).sum() / h.sum() - tau.mean()) > 1
    assert ato.estimand_.startswith("ATO")
    for est in (trimmed, aipw_ato):
        lo, hi = est.ate_interval()
        assert lo < est.ate() < hi and hi - lo < 0.6
    with pytest.raises(ValueError, match="weights"):
        IPW(weights="att").fit(x, t, y)


# ---------------------------------------------------------------------- ATT
def att_design(n: int = 2000, seed: int = 3):
    """x1 raises both the effect and the treatment probability (ATT − ATE ≈ 0.6)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-(x[:, 0] + 2 * x[:, 1])))).astype(float)
    tau = 1 + x[:, 1]
    y = 2 * x[:, 0] + x[:, 2] + tau * t + rng.normal(scale=0.5, size=n)
    return x, t, y, tau


def test_att_uses_att_weights_and_differs_from_ate():
    x, t, y, tau = att_design()
    att_true, ate_true = tau[t == 1].mean(), tau.mean()
    assert att_true - ate_true > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)  # 6 % of rows have e ∉ [0.01, 0.99]
        s = SLearner(LinearRegression()).fit(x, t, y)
        fitted = [
            TLearner(quadratic()).fit(x, t, y),
            AIPW(quadratic()).fit(x, t, y),
            IPW().fit(x, t, y),
            TARNet(**TINY).fit(x, t, y),
        ]
    # the constant-effect S-learner's effect averaged over the treated is off (no heterogeneity) …
    assert abs(float(np.mean(s.effect(x[t == 1]))) - att_true) > 0.5
    # … the ATT-weighted doubly robust ATT corrects it with the controls' e/(1−e) residuals
    assert abs(s.att() - att_true) < 0.15
    for est in fitted:
        assert abs(est.att() - att_true) < 0.15, type(est).__name__
        lo, hi = est.att_interval()
        assert lo < est.att() < hi and lo < att_true < hi
    assert abs(fitted[1].ate() - ate_true) < 0.15


def test_att_ignores_the_lower_clip():
    """ATT weights e/(1−e) are small for small e: raising e to the lower clip bound would give
    thousands of irrelevant controls weight, so only the upper bound applies."""
    rng = np.random.default_rng(1)
    n = 6000
    x = rng.normal(size=(n, 2))
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-(2.5 * x[:, 0] - 4)))).astype(float)
    y = 5 * x[:, 0] + 2 * t + rng.normal(size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)
        est = IPW(clip=(0.05, 0.95)).fit(x, t, y)
    e = np.clip(est.propensity(), 0.05, 0.95)
    w = (1 - t) * e / (1 - e)
    lower_clipped = y[t == 1].mean() - (w * y).sum() / w.sum()
    assert abs(est.att() - 2) < 0.3 < abs(lower_clipped - 2)


# ---------------------------------------------------------------------- model selection
def hetero(n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    tau = 1 + 2 * x[:, 1]
    y = x[:, 0] + 0.5 * x[:, 2] + tau * t + rng.normal(scale=0.5, size=n)
    return x, t, y, tau


@pytest.mark.parametrize("criterion", ["r_loss", "dr"])
def test_selection_picks_the_better_setting(criterion):
    x, t, y, tau = hetero()
    grid = {"model": [DummyRegressor(), LinearRegression()]}
    found = select(
        TLearner(), grid, x, t, y, criterion=criterion, nuisance_model=LinearRegression(), seed=1
    )
    assert isinstance(found.estimator.model, LinearRegression)
    assert list(found.scores["model"]) == ["DummyRegressor", "LinearRegression"]
    assert found.scores[criterion].iloc[1] < found.scores[criterion].iloc[0]
    assert pehe(found.estimator.effect(x), tau) < 0.2


def test_r_loss_chooses_cfr_alpha_by_observed_data_only():
    """A huge IPM weight over-balances Φ under confounding and biases the CATE; the R-loss,
    computed without counterfactuals, ranks the settings as the true PEHE does."""
    x, t, y, tau = hetero(n=1000, seed=2)
    net = CFR(**{**TINY, "epochs": 30})
    tuned = Tuned(net, {"alpha": [0.0, 30.0]}, nuisance_model=LinearRegression()).fit(x, t, y)
    scores = tuned.scores_.set_index("alpha")["r_loss"]
    over = net.set_params(alpha=30.0).fit(x, t, y)
    true_pehe = {0.0: pehe(tuned.effect(x), tau), 30.0: pehe(over.effect(x), tau)}
    assert true_pehe[0.0] < true_pehe[30.0]
    assert tuned.best_params_ == {"alpha": 0.0} and scores[0.0] < scores[30.0]
    assert tuned.ate() == pytest.approx(tuned.best_estimator_.ate())
    assert tuned.att() == pytest.approx(tuned.best_estimator_.att())


def test_tuned_defaults_and_errors():
    x, t, y, _ = hetero(n=400)
    grid = {"outcome_model": [DummyRegressor(), LinearRegression()]}
    tuned = Tuned(AIPW(n_folds=2), grid, nuisance_model=LinearRegression(), n_folds=2).fit(x, t, y)
    assert isinstance(tuned.best_params_["outcome_model"], LinearRegression)
    assert tuned.ate() == tuned.best_estimator_.ate_  # AIPW keeps its doubly robust estimate
    df = pd.DataFrame(x, columns=["a", "b", "c"])
    on_frame = Tuned(TLearner(), {"model": [LinearRegression()]}, nuisance_model=LinearRegression())
    on_frame.fit(df, t, y)
    assert on_frame.ate(df[["c", "b", "a"]]) == pytest.approx(on_frame.ate(x))
    assert list(on_frame.effect(df.iloc[:4]).index) == [0, 1, 2, 3]
    assert [len(ParameterGrid(default_grid(e))) for e in (CFR(), TARNet(), TLearner())] == [3, 3, 3]
    with pytest.raises(ValueError, match="no default search space"):
        Tuned(IPW()).fit(x, t, y)
    with pytest.raises(ValueError, match="criterion"):
        select(TLearner(), {"model": [LinearRegression()]}, x, t, y, criterion="pehe")


# ---------------------------------------------------------------------- interface details
def test_nan_in_one_dimensional_t_or_y_names_t_or_y():
    x, t, y = good_overlap(200)
    est = TLearner(LinearRegression())
    with pytest.raises(DataError, match=r"T contains NaN or inf in column\(s\) \['T'\]"):
        est.fit(x, np.where(np.arange(200) == 5, np.nan, t), y)
    with pytest.raises(DataError, match=r"Y contains NaN or inf in column\(s\) \['Y'\]"):
        est.fit(x, t, pd.Series(np.where(np.arange(200) == 5, np.inf, y)))
    with pytest.raises(DataError, match=r"\['earnings'\]"):
        est.fit(x, t, pd.Series(np.where(np.arange(200) == 5, np.nan, y), name="earnings"))


def test_effect_is_a_series_on_the_frames_index():
    x, t, y = good_overlap(300)
    df = pd.DataFrame(x, columns=["a", "b", "c"], index=[f"u{i}" for i in range(300)])
    est = TLearner(LinearRegression()).fit(df, t, y)
    part = df.iloc[5:15]
    tau = est.effect(part)
    assert isinstance(tau, pd.Series) and list(tau.index) == list(part.index)
    assert tau.name == "effect"
    out = est.predict_outcomes(part)
    pd.testing.assert_series_equal(tau, (out.y1 - out.y0).rename("effect"))
    assert isinstance(est.effect(x[:10]), np.ndarray) and isinstance(est.effect(), np.ndarray)


@pytest.mark.parametrize("progress", [True, False])
def test_bootstrap_interval_shows_progress_when_asked(progress, capsys):
    x, t, y = good_overlap(200)
    net = TARNet(rep_layers=(8,), head_layers=(4,), epochs=3, progress=False).fit(x, t, y)
    net.set_params(progress=progress)
    net.ate_interval(n_bootstrap=2)
    assert ("TARNet bootstrap" in capsys.readouterr().err) is progress
