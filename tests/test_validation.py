"""Model validation (deepscm.evaluation.validate) and graph falsification (falsify)."""

from __future__ import annotations

import math

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

import deepscm as ds
from deepscm.errors import DataError
from deepscm.evaluation import falsify, hsic_test, local_markov_conditions, validate

TRUE_ABC = "a -> b; b -> c; a -> c"
DROPPED = "a -> b; b -> c"  # the true edge a -> c removed


def linear_abc(n: int, seed: int) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    a = r.normal(size=n)
    b = 0.8 * a + 0.6 * r.normal(size=n)
    c = 0.5 * b + 0.7 * a + 0.5 * r.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c})


def nonlinear_five(n: int, seed: int) -> pd.DataFrame:
    """a -> c <- b, c -> d -> e, all nonlinear."""
    r = np.random.default_rng(seed)
    a, b = r.normal(size=n), r.normal(size=n)
    c = np.tanh(a) + 0.5 * b**2 + 0.4 * r.normal(size=n)
    d = np.sin(c) + 0.3 * c + 0.4 * r.normal(size=n)
    e = 0.5 * d**2 - 0.5 + 0.4 * r.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "e": e})


FIVE_TRUE = "a -> c; b -> c; c -> d; d -> e"
FIVE_WRONG = "e -> d; d -> c; c -> a; b -> a"  # the chain reversed, with a collider at a


@pytest.fixture(scope="module")
def abc() -> tuple[pd.DataFrame, pd.DataFrame]:
    return linear_abc(2000, 0), linear_abc(1000, 1)


def fit(graph: str, df: pd.DataFrame) -> ds.DeepSCM:
    return ds.DeepSCM(graph, mechanisms="linear").fit(df, progress=False)


# ---------------------------------------------------------------------- HSIC
def test_hsic_permutes_either_factor_alike() -> None:
    """a^T (P b) = (P^T a)^T b: permuting the lower-rank factor (a 1-D noise against three
    parents) by the inverse permutations gives the p-value of permuting the other factor."""
    from deepscm.evaluation.validation import _incomplete_cholesky, _median_bandwidth, _standardise

    r = np.random.default_rng(3)
    parents = r.normal(size=(400, 3))
    noise = r.normal(size=(400, 1)) * (1 + 0.2 * parents[:, :1])
    stat, p, n = hsic_test(noise, parents, 150, 7)
    rng = np.random.default_rng(7)  # the reference: the same draws, permuting the parents' factor
    a = _incomplete_cholesky(_standardise(noise), _median_bandwidth(_standardise(noise), rng))
    b = _incomplete_cholesky(_standardise(parents), _median_bandwidth(_standardise(parents), rng))
    a, b = a - a.mean(0), b - b.mean(0)
    assert a.shape[1] < b.shape[1]  # the case where the factor of lower rank is permuted
    ref = float(((a.T @ b) ** 2).sum()) / n**2
    perms = np.argsort(rng.random((150, n)), axis=1)
    null = np.array([((a.T @ b[q]) ** 2).sum() / n**2 for q in perms])
    assert stat == pytest.approx(ref, rel=1e-12)
    assert p == (1 + int((null >= ref * (1 - 1e-12)).sum())) / 151


def test_hsic_detects_nonlinear_dependence_and_not_independence() -> None:
    r = np.random.default_rng(0)
    x = r.normal(size=500)
    _, p_dep, _ = hsic_test(x, x**2 + 0.3 * r.normal(size=500), 200, 0)  # uncorrelated, dependent
    _, p_ind, _ = hsic_test(x, r.normal(size=500), 200, 0)
    assert p_dep < 0.01
    assert p_ind > 0.05
    _, _, rows = hsic_test(r.normal(size=3000), r.normal(size=3000), 10, 0, max_rows=700)
    assert rows == 700


# ---------------------------------------------------------------------- validate
def test_true_graph_not_flagged(abc) -> None:
    train, test = abc
    res = validate(fit(TRUE_ABC, train), test, seed=0)
    t = res.table
    assert list(t.index) == ["a", "b", "c"]
    assert not t["flagged"].any(), t
    assert (t.loc[["b", "c"], "loglik_gain"] > 0.3).all()  # parents help
    assert abs(t.loc["a", "loglik_gain"]) < 0.05  # a root is its own Gaussian baseline
    assert t.loc["a", "baseline"].startswith("unconditional Gaussian")
    assert t.loc["c", "against"] == "a, b"
    assert t.loc["c", "hsic_rows"] == 1000
    assert res.threshold == pytest.approx(0.05 / 5)  # 3 KS + 2 HSIC p-values


def test_dropped_edge_flags_the_child(abc) -> None:
    train, test = abc
    res = validate(fit(DROPPED, train), test, seed=0)
    assert res.flagged == ["c"], res.table
    assert "non-descendants" in res.table.loc["c", "reason"]
    # against the parents only, the residual of c on b is independent of b: not seen. This is
    # why the default is against="all" (a missing parent is never among the fitted parents).
    assert fit(DROPPED, train).evaluate(test, seed=0).flagged == ["c"]  # the DeepSCM method
    par = validate(fit(DROPPED, train), test, seed=0, against="parents")
    assert not par.table.loc["c", "flagged"]
    assert par.table.loc["c", "against"] == "b"


def test_miscalibrated_noise_flagged_by_ks(abc) -> None:
    train, test = abc
    scm = fit(TRUE_ABC, train)
    scm.mechanisms["c"].log_sigma += math.log(2.0)  # σ doubled after fit
    res = validate(scm, test, seed=0)
    assert res.flagged == ["c"]
    assert res.table.loc["c", "ks_p"] < 1e-6
    assert "miscalibrated" in res.table.loc["c", "reason"]


def test_empirical_prior_uses_two_sample_ks(abc) -> None:
    train, test = abc
    scm = ds.DeepSCM("a -> b", mechanisms={"a": "linear", "b": ds.mechanisms.AdditiveNoise(hidden_features=(8,))})
    scm.fit(train[["a", "b"]], epochs=5, progress=False, seed=0)
    t = validate(scm, test[["a", "b"]], seed=0, n_permutations=100).table
    assert "two-sample" in t.loc["b", "calibration"]
    assert t.loc["a", "calibration"].startswith("PIT")


def test_discrete_node_reliability_and_randomised_pit() -> None:
    r = np.random.default_rng(0)
    n = 1500
    a = r.normal(size=n)
    y = np.where(r.random(n) < 1 / (1 + np.exp(-2 * a)), "yes", "no")
    df = pd.DataFrame({"a": a, "y": y})
    scm = ds.DeepSCM("a -> y", mechanisms={"a": "linear", "y": ds.mechanisms.Categorical(hidden_features=(8,))})
    scm.fit(df, epochs=40, progress=False, seed=0)
    res = validate(scm, df, seed=0, n_permutations=100)
    row = res.table.loc["y"]
    assert row["baseline"].startswith("marginal category frequencies")
    assert 0 <= row["ece"] < 0.1
    assert "randomised PIT" in row["calibration"] and row["ks_p"] > 0.001
    rel = res.reliability["y"]
    assert rel["count"].sum() == n and set(rel.columns) == {"bin", "count", "confidence", "accuracy"}


def test_reproducible_plot_and_errors(abc) -> None:
    train, test = abc
    scm = fit(DROPPED, train)
    one, two = validate(scm, test, seed=3), validate(scm, test, seed=3)
    pd.testing.assert_frame_equal(one.table, two.table)
    fig = one.plot("c")
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 3  # PIT + a + b
    with pytest.raises(DataError):
        one.plot("nope")
    with pytest.raises(DataError):
        validate(scm, test, against="everything")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        validate(ds.DeepSCM(DROPPED), test)  # not fitted
    with pytest.warns(ds.errors.DeepSCMWarning, match="Bonferroni"):
        validate(scm, test, n_permutations=20)


# ---------------------------------------------------------------------- falsify
def test_local_markov_conditions() -> None:
    conds = local_markov_conditions(ds.CausalGraph(FIVE_TRUE))
    assert ("d", "a", ("c",)) in conds and ("a", "b", ()) in conds
    assert len(conds) == 7
    assert local_markov_conditions(ds.CausalGraph(TRUE_ABC)) == []  # complete DAG: nothing to test


@pytest.fixture(scope="module")
def five() -> pd.DataFrame:
    return nonlinear_five(2000, 0)


def test_falsify_keeps_true_graph_rejects_wrong(five) -> None:
    good = falsify(FIVE_TRUE, five, n_permutations=100, seed=0)
    assert not good.rejected and good.falsifiable
    assert good.n_tests == 7 and good.n_violations <= 1
    assert len(good.permuted_violations) == 20
    bad = falsify(FIVE_WRONG, five, n_permutations=100, seed=0)
    assert bad.rejected, bad
    failed = set(zip(bad.violations["node"], bad.violations["independent_of"]))
    assert ("b", "c") in failed  # b ⟂ c is implied by the wrong graph, false in the data
    assert bad.n_violations >= 4


def test_falsify_reproducible_and_errors(five) -> None:
    sub = five.iloc[:600]
    one = falsify(FIVE_TRUE, sub, n_permutations=50, n_graph_permutations=5, seed=1)
    two = falsify(FIVE_TRUE, sub, n_permutations=50, n_graph_permutations=5, seed=1)
    pd.testing.assert_frame_equal(one.table, two.table)
    assert one.permuted_violations == two.permuted_violations
    with pytest.raises(DataError, match="no column"):
        falsify("a -> zz", sub)
    with pytest.raises(DataError):
        falsify(FIVE_TRUE, sub, regressor="forest")  # type: ignore[arg-type]


def test_falsify_one_hot_discrete_column() -> None:
    r = np.random.default_rng(0)
    n = 800
    a = r.normal(size=n)
    g = np.where(a + 0.5 * r.normal(size=n) > 0, "hi", "lo")
    c = (g == "hi") * 1.5 + 0.5 * r.normal(size=n)
    df = pd.DataFrame({"a": a, "g": g, "c": c})
    res = falsify("a -> g; g -> c", df, n_permutations=100)
    assert res.n_tests == 1 and res.n_violations == 0  # c ⟂ a | g holds
    wrong = falsify("a -> c; c -> g", df, n_permutations=100)
    assert wrong.table.loc[0, "violated"]  # g ⟂ a | c fails
