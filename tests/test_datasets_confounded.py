"""Binary ground-truth SCMs with hidden confounders: exact answers vs independent computations."""

import numpy as np
import pandas as pd
import pytest

from deepscm.datasets.confounded import ConfoundedSCM, list_confounded, load_confounded
from deepscm.errors import ConfigError, GraphError
from deepscm.graph import CausalGraph
from deepscm.identification import HedgeError, identify

IDENTIFIABLE = {"backdoor", "frontdoor", "m", "napkin"}


def test_eight_graphs_and_their_id_verdicts():
    assert list_confounded() == ["backdoor", "frontdoor", "m", "napkin", "bow", "iv", "bad_m", "extended_bow"]
    for name in list_confounded():
        scm = load_confounded(name, seed=0)
        if name in IDENTIFIABLE:
            identify(scm.graph, "p(y | do(x))")
        else:
            with pytest.raises(HedgeError):
                identify(scm.graph, "p(y | do(x))")


def test_hand_computed_bow():
    """x -> y, x <-> y with U ~ Bern(0.5): every number below is worked out by hand."""
    g = CausalGraph("x -> y; x <-> y")
    px = np.array([0.2, 0.8])  # P(x=1 | u)
    py = np.array([[0.1, 0.5], [0.3, 0.9]])  # P(y=1 | x, u)
    scm = ConfoundedSCM("hand", g, {"x": px, "y": py}, [0.5])
    assert scm.p_do("y", {"x": 1}) == pytest.approx(0.5 * 0.3 + 0.5 * 0.9)
    assert scm.ate() == pytest.approx(0.6 - 0.3)
    # ETT: P(u | x=1) = (0.2, 0.8)/1.0 -> E[Y_1 - Y_0 | x=1] = 0.2*(0.3-0.1) + 0.8*(0.9-0.5)
    assert scm.ett() == pytest.approx(0.2 * 0.2 + 0.8 * 0.4)
    # observational P(y=1 | x=1) = same posterior over u
    table = scm.distribution()
    p_x1 = table.loc[table.x == 1, "p"].sum()
    p_x1y1 = table.loc[(table.x == 1) & (table.y == 1), "p"].sum()
    assert p_x1y1 / p_x1 == pytest.approx(0.2 * 0.3 + 0.8 * 0.9)


@pytest.mark.parametrize("name", ["frontdoor", "napkin", "iv", "bad_m"])
def test_exact_answers_match_large_samples(name):
    scm = load_confounded(name, seed=3)
    obs = scm.sample(200_000, seed=1)
    table = scm.distribution()
    emp = obs.value_counts(normalize=True).rename("emp").reset_index()
    merged = table.merge(emp, on=list(scm.graph.nodes), how="left").fillna(0.0)
    assert np.abs(merged["p"] - merged["emp"]).max() < 0.006
    do1 = scm.sample(200_000, seed=2, do={"x": 1})["y"].mean()
    do0 = scm.sample(200_000, seed=3, do={"x": 0})["y"].mean()
    assert do1 - do0 == pytest.approx(scm.ate(), abs=0.01)


@pytest.mark.parametrize("name", ["backdoor", "frontdoor", "napkin", "m"])
def test_identified_formula_gives_the_exact_ate(name):
    scm = load_confounded(name, seed=1)
    est = identify(scm.graph, "p(y | do(x))").evaluate(scm.distribution(), weight="p")
    p1 = est.loc[(est.x == 1) & (est.y == 1), "p"].iloc[0]
    p0 = est.loc[(est.x == 0) & (est.y == 1), "p"].iloc[0]
    assert p1 - p0 == pytest.approx(scm.ate(), abs=1e-9)


def test_counterfactual_consistency_and_monte_carlo():
    scm = load_confounded("extended_bow", seed=2)
    table = scm.distribution()
    p_y_given_x1 = table.loc[(table.x == 1) & (table.y == 1), "p"].sum() / table.loc[table.x == 1, "p"].sum()
    assert scm.p_counterfactual(observed=1, do=1) == pytest.approx(p_y_given_x1)
    # Monte Carlo of the twin network: same latents and noise of x's non-descendants
    rng = np.random.default_rng(0)
    n = 400_000
    data = scm.sample(n, seed=5, return_latents=True)
    u = data[[lat.name for lat in scm.latents]].to_numpy()
    z_cf = (rng.random(n) < scm._p1("z", {"x": np.zeros(n, int)}, u)).astype(int)
    y_cf = (rng.random(n) < scm._p1("y", {"z": z_cf}, u)).astype(int)
    treated = data["x"].to_numpy() == 1
    assert y_cf[treated].mean() == pytest.approx(scm.p_counterfactual(observed=1, do=0), abs=0.006)


def test_same_seed_same_numbers_and_hidden_latents():
    a, b = load_confounded("napkin", 4), load_confounded("napkin", 4)
    pd.testing.assert_frame_equal(a.sample(50, seed=1), b.sample(50, seed=1))
    assert a.ate() == b.ate() and load_confounded("napkin", 5).ate() != a.ate()
    assert list(a.sample(5, seed=0).columns) == ["w", "z", "x", "y"]


def test_bad_input():
    with pytest.raises(ConfigError, match="unknown confounded SCM"):
        load_confounded("nope")
    scm = load_confounded("bow")
    with pytest.raises(GraphError, match="unknown node"):
        scm.p_do("q", {"x": 1})
    with pytest.raises(ConfigError, match="0 or 1"):
        scm.sample(10, do={"x": 2})
