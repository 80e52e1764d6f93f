"""Continuous ground-truth SCMs with hidden confounders: quadrature answers vs closed forms,
finer grids and Monte Carlo."""

import numpy as np
import pytest

from deepscm.datasets.confounded_continuous import (
    ContinuousConfoundedSCM,
    list_confounded_continuous,
    load_confounded_continuous,
)
from deepscm.errors import ConfigError, GraphError
from deepscm.identification import HedgeError, identify

IDENTIFIABLE = {"backdoor", "backdoor_observed", "frontdoor", "scalar_beside_block"}
CLOSED_FORM = {
    "backdoor": lambda a: 1.5 * np.tanh(a) + 0.5,
    "backdoor_observed": lambda a: 1.5 * np.tanh(a),
    "iv": lambda a: np.sin(1.5 * a) + 0.5 * a,
    "bow": lambda a: np.tanh(1.5 * a) + 0.2,
    "scalar_beside_block": lambda a: np.tanh(2 * a),
}
GRID = np.array([-1.5, -0.3, 0.0, 0.7, 2.0])


def test_graphs_latents_and_id_verdicts():
    assert list_confounded_continuous() == ["backdoor", "backdoor_observed", "frontdoor", "iv", "bow",
                                            "scalar_beside_block"]
    for name in list_confounded_continuous():
        scm = load_confounded_continuous(name)
        assert scm.graph.has_latent_confounders == (name != "backdoor_observed")
        assert len(scm.latents) == len(scm.graph.bidirected_edges)
        df = scm.sample(50, seed=0)
        assert list(df.columns) == scm.graph.nodes  # the latents are hidden
        assert set(scm.sample(5, seed=0, return_latents=True).columns) == set(scm.graph.nodes) | set(scm.latents)
        if name in IDENTIFIABLE:
            identify(scm.graph, "p(y | do(x))")
        else:
            with pytest.raises(HedgeError):
                identify(scm.graph, "p(y | do(x))")


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_quadrature_matches_closed_form(name):
    scm = load_confounded_continuous(name)
    np.testing.assert_allclose(scm.mean_do(GRID), CLOSED_FORM[name](GRID), atol=1e-9)


@pytest.mark.parametrize("name", ["backdoor", "frontdoor", "iv", "bow"])
def test_quadrature_converged_and_matches_monte_carlo(name):
    scm = load_confounded_continuous(name)
    np.testing.assert_allclose(scm.mean_do(GRID), scm.mean_do(GRID, quad=32), atol=1e-9)
    for a in (-1.0, 0.8):
        y = scm.sample(100_000, seed=3, do={"x": a})["y"]
        assert abs(y.mean() - scm.mean_do(a)) < 4 * y.std() / np.sqrt(len(y))
    assert scm.ate() == pytest.approx(scm.mean_do(1.0) - scm.mean_do(0.0))


def test_confounding_biases_the_naive_contrast():
    """The hidden U makes E[y | x] differ from E[y | do(x)] (else the cases test nothing)."""
    scm = load_confounded_continuous("bow")
    df = scm.sample(200_000, seed=0)
    near = df[(df.x - 1.0).abs() < 0.05]
    # E[0.8U + 0.2U² | x=1] − 0.2 = 0.8·0.8 + 0.2·(0.8² + 0.2) − 0.2 = 0.608
    assert near.y.mean() - scm.mean_do(1.0) == pytest.approx(0.608, abs=0.05)


def test_atd_against_closed_form_derivative_and_monte_carlo():
    """ATD = E_X[μ'(X)]: bow has x ~ N(0, 1.25) and μ' = 1.5 sech²(1.5a) in closed form."""
    scm = load_confounded_continuous("bow")
    x, w = np.polynomial.hermite_e.hermegauss(200)
    a = np.sqrt(1.25) * x
    assert scm.atd() == pytest.approx(float((1.5 / np.cosh(1.5 * a) ** 2) @ (w / w.sum())), abs=1e-8)
    iv = load_confounded_continuous("iv")  # the least smooth outer integrand: error ≤ 5e-4
    assert iv.atd() == pytest.approx(iv.atd(quad=56), abs=5e-4)
    xs = iv.sample(100_000, seed=5)["x"].to_numpy()
    d = 1.5 * np.cos(1.5 * xs) + 0.5
    assert abs(d.mean() - iv.atd()) < 4 * d.std() / np.sqrt(len(d))


def test_sampling_is_reproducible_and_do_sets_the_node():
    scm = load_confounded_continuous("frontdoor")
    assert scm.sample(20, seed=4).equals(scm.sample(20, seed=4))
    assert not scm.sample(20, seed=4).equals(scm.sample(20, seed=5))
    df = scm.sample(10, seed=0, do={"x": np.arange(10.0)})
    np.testing.assert_array_equal(df["x"], np.arange(10.0))


def test_bad_input():
    with pytest.raises(ConfigError, match="choose one of"):
        load_confounded_continuous("nope")
    scm = load_confounded_continuous("bow")
    with pytest.raises(GraphError):
        scm.sample(5, do={"w": 1.0})
    with pytest.raises(ConfigError):
        scm.sample(-1)
    with pytest.raises(ConfigError, match="no equation"):
        ContinuousConfoundedSCM("x", scm.graph, {"x": lambda v: v["eps"]})
