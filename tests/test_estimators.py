"""Treatment-effect estimators: bias removal on confounded data, heterogeneity, the CFR IPMs,
Dragonnet's targeting, DeepIV, intervals, and the shared interface's errors and seeding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from deepscm.errors import DataError, NotFittedError, NotIdentifiableError
from deepscm.estimators import (
    AIPW,
    CEVAE,
    CFR,
    IPW,
    BackdoorAdjustment,
    DeepIV,
    Dragonnet,
    SLearner,
    TARNet,
    TLearner,
    ipm,
    mmd_linear,
    wasserstein_sinkhorn,
)
from deepscm.evaluation import ate_error, pehe

# Small networks, large batches and a higher learning rate keep each fit near one second.
TINY = dict(
    rep_layers=(32, 32), head_layers=(16,), epochs=60, batch_size=200, lr=3e-3, progress=False
)


def confounded(n: int = 1000, seed: int = 0, hetero: bool = False):
    """x0 drives both T (logit 1.5·x0 + 0.5·x1) and Y (3·x0): the naive contrast is biased by ≈ 3.8.
    The effect is 1 (constant) or 1 + x1 (heterogeneous)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    e = 1 / (1 + np.exp(-(1.5 * x[:, 0] + 0.5 * x[:, 1])))
    t = (rng.uniform(size=n) < e).astype(float)
    tau = 1 + x[:, 1] if hetero else np.ones(n)
    y = 3 * x[:, 0] + x[:, 2] + tau * t + rng.normal(scale=0.5, size=n)
    return x, t, y, tau


@pytest.fixture(scope="module")
def constant():
    return confounded()


@pytest.fixture(scope="module")
def hetero():
    return confounded(hetero=True)


BINARY = {
    "TARNet": lambda: TARNet(**TINY),
    # α = 0.1: under this strong confounding a larger α over-balances Φ (at α = 0.3 the
    # Wasserstein CFR's ATE is off by 0.39 on the heterogeneous design; the bias grows with α).
    "CFR-wass": lambda: CFR(alpha=0.1, **TINY),
    "CFR-mmd": lambda: CFR(alpha=0.1, ipm="mmd_linear", **TINY),
    "Dragonnet": lambda: Dragonnet(**TINY),
    "CEVAE": lambda: CEVAE(
        hidden=(32,), latent_dim=5, epochs=100, batch_size=200, lr=1e-2, progress=False
    ),
    "SLearner": lambda: SLearner(LinearRegression()),
    "TLearner": lambda: TLearner(),
    "IPW": lambda: IPW(),
    "IPW-HT": lambda: IPW(stabilized=False),
    "AIPW": lambda: AIPW(LinearRegression()),
}


# ---------------------------------------------------------------------- bias removal
def test_naive_contrast_is_badly_biased(constant):
    x, t, y, tau = constant
    assert abs(y[t == 1].mean() - y[t == 0].mean() - tau.mean()) > 1


@pytest.mark.parametrize("name", list(BINARY))
def test_recovers_constant_ate_under_confounding(constant, name):
    x, t, y, tau = constant
    est = BINARY[name]().fit(x, t, y)
    assert abs(est.ate() - 1.0) < 0.3, est.ate()


def test_backdoor_adjustment_finds_set_and_recovers_ate(constant):
    x, t, y, _ = constant
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(t=t, y=y)
    graph = "a -> t; b -> t; a -> y; c -> y; t -> y; d -> y"
    est = BackdoorAdjustment(graph, "t", "y", outcome_model=LinearRegression()).fit(df)
    assert est.adjustment_set_ == ["a"]
    assert abs(est.ate() - 1.0) < 0.3
    lo, hi = est.ate_interval()
    assert lo < 1.0 < hi
    given = BackdoorAdjustment(
        graph,
        "t",
        "y",
        adjustment={"a", "c"},
        method="regression",
        outcome_model=LinearRegression(),
    ).fit(df)
    assert abs(given.ate() - 1.0) < 0.3
    assert list(given.predict_outcomes(df.iloc[:5]).index) == list(df.index[:5])


def test_backdoor_rejects_invalid_or_missing_sets(constant):
    x, t, y, _ = constant
    df = pd.DataFrame(x[:, :2], columns=["a", "m"]).assign(t=t, y=y)
    with pytest.raises(NotIdentifiableError, match="does not satisfy the back-door criterion"):
        BackdoorAdjustment("a -> t; a -> y; t -> m; m -> y", "t", "y", adjustment={"m"}).fit(df)
    with pytest.raises(NotIdentifiableError, match="no set of observed nodes"):
        BackdoorAdjustment("t -> y; t <-> y", "t", "y").fit(df)


# ---------------------------------------------------------------------- heterogeneity
HETERO = ["TARNet", "CFR-wass", "CFR-mmd", "Dragonnet", "CEVAE", "TLearner"]


@pytest.mark.parametrize("name", HETERO)
def test_heterogeneous_effects(hetero, name):
    x, t, y, tau = hetero
    est = BINARY[name]().fit(x, t, y)
    tau_hat = est.effect()
    constant_pehe = pehe(np.full_like(tau, tau.mean()), tau)  # the best constant predictor
    assert ate_error(est.ate(), tau) < 0.3
    assert pehe(tau_hat, tau) < 0.6 * constant_pehe, (pehe(tau_hat, tau), constant_pehe)
    assert np.corrcoef(tau_hat, tau)[0, 1] > 0.8


def test_att_targets_the_treated():
    """The effect modifier x1 also raises the treatment probability, so ATT > ATE by ≈ 0.8."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 3))
    t = (rng.uniform(size=2000) < 1 / (1 + np.exp(-(x[:, 0] + 2 * x[:, 1])))).astype(float)
    tau = 1 + x[:, 1]
    y = 2 * x[:, 0] + tau * t + rng.normal(scale=0.5, size=2000)
    att_true = tau[t == 1].mean()
    assert att_true - tau.mean() > 0.5
    assert abs(TLearner(LinearRegression()).fit(x, t, y).att() - att_true) < 0.1
    assert abs(AIPW(LinearRegression()).fit(x, t, y).att() - att_true) < 0.1
    assert abs(IPW().fit(x, t, y).att() - att_true) < 0.2


# ---------------------------------------------------------------------- CFR's IPMs
def test_mmd_linear_is_the_squared_mean_shift():
    a = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    assert float(mmd_linear(a, a)) == 0.0
    delta = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0])
    assert float(mmd_linear(a, a + delta)) == pytest.approx(float((delta**2).sum()), rel=1e-5)


def test_sinkhorn_wasserstein_limits():
    """For a translation by δ, W1 = ‖δ‖; with weak entropic smoothing Sinkhorn reaches it and
    identical sets give ~0. At the paper's λ = 10 the smoothing adds a bias of its own, but the
    value still grows with the shift and never falls below W1 (any coupling costs ≥ W1)."""
    a = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    d = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])
    assert float(wasserstein_sinkhorn(a, a, lam=100, iterations=100)) < 1e-3
    for s in (1.0, 2.0):
        assert float(wasserstein_sinkhorn(a, a + s * d, lam=100, iterations=100)) == pytest.approx(
            s, rel=0.02
        )
    values = [float(wasserstein_sinkhorn(a, a + s * d)) for s in (0.0, 1.0, 2.0)]
    assert values[0] < 0.15 * values[2] and values[0] < values[1] < values[2]
    assert values[1] >= 1.0 and values[2] >= 2.0


@pytest.mark.parametrize("kind", ["wasserstein", "mmd_linear"])
def test_ipm_between_treatment_groups(kind):
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(150, 4, generator=g), torch.randn(150, 4, generator=g)
    t = torch.cat([torch.zeros(150), torch.ones(150)])
    same = float(ipm(torch.cat([a, a]), t, kind))
    similar = float(ipm(torch.cat([a, b]), t, kind))
    shifted = float(ipm(torch.cat([a, b + 1.5]), t, kind))
    # identical groups ≈ 0; two samples of one law: finite-sample distance (large for W1 in 4-D)
    assert same < 0.15 * shifted and same <= similar < 0.5 * shifted
    assert shifted > 2.0  # W1 ≥ ‖δ‖ = 3, MMD² = ‖δ‖² ≈ 9 (up to sampling noise)
    with pytest.raises(ValueError, match="ipm must be"):
        ipm(torch.cat([a, b]), t, "energy")


def test_cfr_penalty_balances_the_representation(constant):
    x, t, y, _ = constant
    xs = torch.as_tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    tt = torch.as_tensor(t, dtype=torch.float32)
    imbalance = {}
    for name, est in (
        ("tarnet", TARNet(**TINY)),
        ("cfr", CFR(alpha=3.0, ipm="mmd_linear", **TINY)),
    ):
        est.fit(x, t, y)
        with torch.no_grad():
            phi = est.model_.phi(xs)
        imbalance[name] = float(mmd_linear(phi[tt == 0], phi[tt == 1]) / phi.var(0).sum())
    assert imbalance["cfr"] < 0.5 * imbalance["tarnet"], imbalance


# ---------------------------------------------------------------------- Dragonnet targeting
def test_targeted_regularisation_moves_ate_toward_aipw():
    """Strong confounding and a tiny, briefly trained network leave the outcome heads biased;
    the fitted ε corrects the plug-in estimate toward the doubly robust one."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 4))
    t = (rng.uniform(size=1000) < 1 / (1 + np.exp(-2.0 * x[:, 0]))).astype(float)
    y = 3 * x[:, 0] + x[:, 2] + 1.0 * t + rng.normal(scale=0.5, size=1000)
    ate_aipw = AIPW(LinearRegression()).fit(x, t, y).ate()
    kw = dict(
        rep_layers=(8,), head_layers=(4,), epochs=20, lr=1e-2, val_fraction=0.0, progress=False
    )
    ate_tr = Dragonnet(targeted_reg=True, **kw).fit(x, t, y).ate()
    ate_plain = Dragonnet(targeted_reg=False, **kw).fit(x, t, y).ate()
    assert abs(ate_plain - ate_aipw) > 0.2  # the heads are biased
    assert abs(ate_tr - ate_aipw) < 0.5 * abs(ate_plain - ate_aipw), (ate_tr, ate_plain, ate_aipw)


# ---------------------------------------------------------------------- DeepIV
def iv_design(seed: int, n: int = 2000):
    """y = 2 sin(t) + x + 2e with t = z + e: regressing Y on (T, X) absorbs the confounder e."""
    rng = np.random.default_rng(seed)
    z, e, x = rng.uniform(-3, 3, n), rng.normal(size=n), rng.normal(size=n)
    t = z + e + 0.2 * rng.normal(size=n)
    y = 2 * np.sin(t) + x + 2 * e + 0.2 * rng.normal(size=n)
    return x, t, y, z


def structural_errors(iv: DeepIV, x, t, y) -> tuple[float, float]:
    """Mean squared error of ĥ(t, 0) and of a naive boosted regression of Y on (T, X), against
    h(t, 0) = 2 sin(t) on a grid of t."""
    grid = np.linspace(-2.5, 2.5, 101)
    truth = 2 * np.sin(grid)
    naive = GradientBoostingRegressor(random_state=0).fit(np.column_stack([t, x]), y)
    naive_mse = np.mean((naive.predict(np.column_stack([grid, np.zeros_like(grid)])) - truth) ** 2)
    return float(np.mean((iv.predict(np.zeros_like(grid), grid) - truth) ** 2)), float(naive_mse)


def test_deepiv_recovers_structural_function():
    x, t, y, z = iv_design(0)
    iv = DeepIV(hidden=(32, 32), n_components=5, n_draws=5, epochs=150, patience=50, progress=False)
    iv_mse, naive_mse = structural_errors(iv.fit(x, t, y, z), x, t, y)
    assert iv_mse < 0.5 * naive_mse and iv_mse < 0.15, (iv_mse, naive_mse)
    eff = iv.effect(np.zeros(3), T0=0.0, T1=np.array([0.5, 1.0, 1.5]))
    np.testing.assert_allclose(
        eff, iv.predict(np.zeros(3), [0.5, 1.0, 1.5]) - iv.predict(np.zeros(3), 0.0)
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_deepiv_defaults_beat_naive_regression(seed):
    x, t, y, z = iv_design(seed)
    iv = DeepIV(hidden=(32, 32), n_components=5, epochs=200, progress=False, seed=seed).fit(
        x, t, y, z
    )
    iv_mse, naive_mse = structural_errors(iv, x, t, y)
    assert iv_mse < 0.6 * naive_mse, (iv_mse, naive_mse)


# ---------------------------------------------------------------------- intervals
def test_aipw_interval_covers_truth_at_nominal_rate():
    hits, widths = [], []
    for seed in range(30):
        x, t, y, tau = confounded(n=600, seed=seed)
        lo, hi = AIPW(LinearRegression(), seed=seed).fit(x, t, y).ate_interval(0.1)
        hits.append(lo < 1.0 < hi)
        widths.append(hi - lo)
    assert np.mean(hits) >= 0.75  # nominal 0.9
    assert np.mean(widths) < 0.6


def test_ipw_interval_covers_truth(constant):
    x, t, y, _ = constant
    for stabilized in (True, False):
        lo, hi = IPW(stabilized=stabilized).fit(x, t, y).ate_interval()
        assert lo < 1.0 < hi and hi - lo < 2.0


def test_bootstrap_interval_refits_and_is_seeded(constant):
    x, t, y, _ = constant
    est = TLearner(LinearRegression(), n_bootstrap=40).fit(x, t, y)
    lo, hi = est.ate_interval()
    assert lo < est.ate() < hi and lo < 1.0 < hi
    assert est.ate_interval() == (lo, hi)
    net = TARNet(rep_layers=(8,), head_layers=(4,), epochs=5, progress=False).fit(
        x[:300], t[:300], y[:300]
    )
    assert net.ate_interval(n_bootstrap=3) == net.ate_interval(n_bootstrap=3)


# ---------------------------------------------------------------------- IPW details
def test_stabilised_ipw_is_location_invariant_and_horvitz_thompson_is_not(constant):
    x, t, y, _ = constant
    c = 10.0
    hajek, hajek_c = IPW().fit(x, t, y), IPW().fit(x, t, y + c)
    assert hajek_c.ate() == pytest.approx(hajek.ate(), abs=1e-9)
    ht, ht_c = IPW(stabilized=False).fit(x, t, y), IPW(stabilized=False).fit(x, t, y + c)
    e = ht.propensity_
    expected_shift = c * (np.mean(t / e) - np.mean((1 - t) / (1 - e)))
    assert abs(expected_shift) > 0.05
    assert ht_c.ate() - ht.ate() == pytest.approx(expected_shift, rel=1e-9)


def test_ipw_clipping(constant):
    x, t, y, _ = constant
    clipped = IPW(clip=(0.2, 0.8)).fit(x, t, y)
    raw = clipped.propensity()
    assert raw.min() < 0.2 and raw.max() > 0.8
    np.testing.assert_allclose(clipped.propensity_, np.clip(raw, 0.2, 0.8))
    w1, w0 = t / clipped.propensity_, (1 - t) / (1 - clipped.propensity_)
    manual = (w1 * y).sum() / w1.sum() - (w0 * y).sum() / w0.sum()
    assert clipped.ate() == pytest.approx(manual, rel=1e-12)
    assert IPW(clip=None).fit(x, t, y).ate() != pytest.approx(clipped.ate(), abs=1e-3)
    with pytest.raises(ValueError, match="clip"):
        IPW(clip=(0.9, 0.1)).fit(x, t, y)


# ---------------------------------------------------------------------- interface
ALL = [TARNet, CFR, Dragonnet, CEVAE, SLearner, TLearner, IPW, AIPW]


@pytest.mark.parametrize("cls", ALL)
def test_not_fitted(cls):
    with pytest.raises(NotFittedError, match="fit"):
        cls().effect()
    with pytest.raises(NotFittedError):
        cls().ate_interval()


def test_not_fitted_deepiv_and_backdoor():
    with pytest.raises(NotFittedError):
        DeepIV().predict(None, 1.0)
    with pytest.raises(NotFittedError):
        BackdoorAdjustment("a -> t; a -> y; t -> y", "t", "y").ate()


def test_input_errors(constant):
    x, t, y, _ = constant
    est = TLearner(LinearRegression())
    with pytest.raises(DataError, match=r"binary 0/1.*\{0, 1, 2\}"):
        est.fit(x, np.where(t == 1, 2.0, t) + (np.arange(len(t)) == 0), y)
    bad = pd.DataFrame(x, columns=["age", "bmi", "dose", "sex"])
    bad.loc[3, "bmi"] = np.nan
    with pytest.raises(DataError, match=r"NaN or inf in column\(s\) \['bmi'\]"):
        est.fit(bad, t, y)
    with pytest.raises(DataError, match="Y has 999 rows but X has 1000"):
        est.fit(x, t, y[:-1])
    with pytest.raises(DataError, match="treated"):
        est.fit(x, (np.arange(len(t)) < 3).astype(float), y)
    est.fit(x, t.astype(bool), y)  # bool treatment is fine
    with pytest.raises(DataError, match="columns"):
        est.effect(x[:, :3])


def test_seed_reproduces_numbers(constant):
    x, t, y, _ = constant
    x, t, y = x[:400], t[:400], y[:400]
    for make in (
        lambda s: TARNet(rep_layers=(16,), head_layers=(8,), epochs=10, progress=False, seed=s),
        lambda s: CEVAE(hidden=(16,), latent_dim=3, epochs=5, n_samples=5, progress=False, seed=s),
        lambda s: AIPW(GradientBoostingRegressor(n_estimators=20), seed=s),
    ):
        a, b, c = make(0).fit(x, t, y), make(0).fit(x, t, y), make(1).fit(x, t, y)
        np.testing.assert_array_equal(a.effect(), b.effect())
        assert not np.allclose(a.effect(), c.effect())
    z = x[:, 0] + np.random.default_rng(0).normal(size=400)
    iv = [
        DeepIV(hidden=(8,), epochs=3, progress=False, seed=0).fit(x[:, 1:], x[:, 0], y, z)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(iv[0].predict(None, 1.0), iv[1].predict(None, 1.0))
    lo, hi = iv[0].ate_interval(0.1, T0=0.0, T1=1.0, n_bootstrap=3)
    assert lo <= hi and (lo, hi) == iv[1].ate_interval(0.1, T0=0.0, T1=1.0, n_bootstrap=3)


def test_dataframe_index_and_column_order_are_kept(constant):
    x, t, y, _ = constant
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"], index=[f"u{i}" for i in range(len(x))])
    est = TLearner(LinearRegression()).fit(df, pd.Series(t), pd.Series(y))
    part = df.iloc[10:20]
    out = est.predict_outcomes(part)
    assert list(out.columns) == ["y0", "y1"] and list(out.index) == list(part.index)
    np.testing.assert_allclose(
        est.predict_outcomes(part[["d", "c", "b", "a"]]).to_numpy(), out.to_numpy()
    )
    np.testing.assert_allclose(est.effect(part), out.y1 - out.y0)
    assert est.ate(part) == pytest.approx(float(np.mean(out.y1 - out.y0)))


def test_effect_metrics():
    assert pehe([1.0, 2.0, 3.0], [1.0, 0.0, 3.0]) == pytest.approx(np.sqrt(4 / 3))
    assert ate_error([1.0, 3.0], [0.0, 0.0]) == 2.0 and ate_error(2.5, [1.0, 2.0]) == 1.0
    with pytest.raises(DataError, match="rows"):
        pehe([1.0, 2.0], [1.0])
