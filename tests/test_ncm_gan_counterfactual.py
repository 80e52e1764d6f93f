"""Counterfactuals of the GAN-NCM given continuous evidence (amortised posterior), and the exact
counterfactuals of the continuous confounded SCMs they are measured against.

The abduction is tested on a GAN-NCM whose generators are replaced by known mechanisms
(standardised units), the bow graph ``x -> y, x <-> y``::

    x = A·u + S_X·ε_x,   y = B·x + (C + d·x)·u + S_Y·ε_y,   u, ε ~ N(0, 1)

Given the unit ``(x, y)`` and the Gaussian observation model of scale ``σ``, the observations
``(x, y − B·x)`` are linear in ``w = (u, ε_x, ε_y)`` with matrix
``M(x) = [[A, S_X, 0], [C + d·x, 0, S_Y]]``, so the exact posterior mean is
``E[w | v] = M(x)ᵀ (M(x) M(x)ᵀ + σ² I)⁻¹ (x, y − B·x)`` and the counterfactual mean is
``E[y_{x'} | v] = B·x' + (C + d·x')·E[u | v] + S_Y·E[ε_y | v]``. With ``d = 0`` the
counterfactual is additive (``≈ y + B(x' − x)`` whatever the posterior), so that case checks the
posterior mean of ``u``; with ``d = 0.4`` the counterfactual itself depends on the posterior.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from deepscm.datasets.confounded_continuous import load_confounded_continuous
from deepscm.errors import ConfigError, DataError, GraphError, NotFittedError
from deepscm.ncm.gan import GANNCM
from deepscm.ncm.posterior import gaussian, kl_standard_normal

A, S_X, B, C, S_Y = 1.0, 0.5, 0.7, 0.8, 0.3
SIGMA = 0.05
TINY = dict(hidden=(8,), critic_hidden=(8,))


pytestmark = pytest.mark.usefixtures("one_thread")


class _Known(nn.Module):
    """A fixed mechanism in place of a generator (its inputs: parents, latent, own noise)."""

    def __init__(self, f):
        super().__init__()
        self.f = f
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.f(z)


def _known_model(d: float, seed: int = 0) -> GANNCM:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.standard_normal(50), "y": rng.standard_normal(50)})
    ncm = GANNCM("x -> y; x <-> y", u_dim=1, seed=seed, **TINY).fit(df, steps=1, n_critic=1)
    ncm.loc, ncm.scale = {"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 1.0}
    ncm.generators["x"] = _Known(lambda z: A * z[:, 0:1] + S_X * z[:, 1:2])  # (u, ε_x)
    ncm.generators["y"] = _Known(lambda z: B * z[:, 0:1] + (C + d * z[:, 0:1]) * z[:, 1:2] + S_Y * z[:, 2:3])
    return ncm


def _analytic(units: pd.DataFrame, d: float, x_new: float) -> tuple[np.ndarray, np.ndarray]:
    """(E[u | v], E[y_{x'} | v]) per unit (module docstring)."""
    u, cf = [], []
    for x, y in zip(units.x, units.y):
        m = np.array([[A, S_X, 0.0], [C + d * x, 0.0, S_Y]])
        w = m.T @ np.linalg.solve(m @ m.T + SIGMA**2 * np.eye(2), np.array([x, y - B * x]))
        u.append(w[0])
        cf.append(B * x_new + (C + d * x_new) * w[0] + S_Y * w[2])
    return np.array(u), np.array(cf)


@pytest.fixture(scope="module")
def fitted() -> dict[float, GANNCM]:
    torch.set_num_threads(1)
    out = {}
    for d in (0.0, 0.4):
        ncm = _known_model(d)
        out[d] = ncm.fit_posterior(ncm.sample(2000, seed=10), steps=1500, obs_scale=SIGMA, hidden=(32,))
    return out


def test_gaussian_parameterisation_and_closed_form_kl():
    mean, tril = gaussian(torch.zeros(2, 3 + 6), 3)  # raw zeros: the prior N(0, I)
    assert torch.equal(mean, torch.zeros(2, 3)) and torch.equal(tril, torch.eye(3).expand(2, 3, 3))
    raw = torch.randn(4, 3 + 6, generator=torch.Generator().manual_seed(0))
    mean, tril = gaussian(raw, 3)
    ref = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(mean, scale_tril=tril),
        torch.distributions.MultivariateNormal(torch.zeros(3), torch.eye(3)),
    )
    torch.testing.assert_close(kl_standard_normal(mean, tril), ref)


def test_exact_counterfactuals_of_the_ground_truth_scms():
    """Grid posterior against closed forms, consistency, a finer grid and importance sampling."""
    for name in ("bow", "backdoor", "iv", "frontdoor"):
        scm = load_confounded_continuous(name)
        units = scm.sample(40, seed=0)
        cf = scm.counterfactual_mean(units, {"x": 1.0})
        same = scm.counterfactual_mean(units, {"x": units["x"].to_numpy()})  # do(x = x) is the unit
        np.testing.assert_allclose(same.to_numpy(), units.to_numpy(), atol=1e-9)
        np.testing.assert_allclose(cf.to_numpy(), scm.counterfactual_mean(units, {"x": 1.0}, grid=4001).to_numpy(),
                                   atol=1e-9)
        if name == "bow":  # additive in x: y + tanh(1.5x') − tanh(1.5x) whatever the posterior
            np.testing.assert_allclose(cf.y, units.y + np.tanh(1.5) - np.tanh(1.5 * units.x), atol=1e-9)
        if name == "backdoor":  # z is observed and upstream: y + 1.5(tanh x' − tanh x) + ½z(x' − x)
            np.testing.assert_allclose(cf.y, units.y + 1.5 * (np.tanh(1.0) - np.tanh(units.x))
                                       + 0.5 * units.z * (1.0 - units.x), atol=1e-9)
    # iv: y_{x'} = y + sin(1.5x') − sin(1.5x) + ½(x' − x) + 0.3(x' − x)·E[U | v]; E[U | v] by
    # self-normalised importance sampling from the prior, p(v | u) ∝ φ(ε_z) φ(ε_x(u)) φ(ε_y(u))
    scm = load_confounded_continuous("iv")
    units = scm.sample(3, seed=1)
    exact = scm.latent_posterior_mean(units)["u_xy"].to_numpy()
    u = np.random.default_rng(0).standard_normal(400_000)
    for i, (z, x, y) in enumerate(units[["z", "x", "y"]].to_numpy()):
        ex = (x - 1.2 * np.tanh(1.5 * z) - 0.8 * u) / 0.3
        ey = (y - np.sin(1.5 * x) - 0.5 * x - u * (1 + 0.3 * x)) / 0.3
        w = np.exp(-0.5 * (ex**2 + ey**2))
        w /= w.sum()
        se = np.sqrt(np.sum(w**2 * (u - w @ u) ** 2))
        assert abs(w @ u - exact[i]) < 5 * se + 1e-4
    cf = scm.counterfactual_mean(units, {"x": 1.0})
    np.testing.assert_allclose(cf.y, units.y + np.sin(1.5) - np.sin(1.5 * units.x) + 0.5 * (1 - units.x)
                               + 0.3 * (1 - units.x) * exact, atol=1e-9)
    with pytest.raises(DataError, match="lacks node"):
        scm.counterfactual_mean(units[["x", "y"]], {"x": 1.0})
    with pytest.raises(GraphError):
        scm.counterfactual_mean(units, {"w": 1.0})


def test_additive_case_posterior_mean_of_the_shared_latent_matches_analytic(fitted):
    """Measured over 3 seeds: mean |û − E[u|v]| 0.003–0.018 (tolerance 0.04); the factual round
    trip ≤ 0.006 (tolerance 0.02 = 0.4σ)."""
    ncm = fitted[0.0]
    units = ncm.sample(100, seed=2)
    u, cf = _analytic(units, 0.0, 1.0)
    post = ncm.abduct(units)
    assert list(post.columns) == ["u[x,y]", "eps[x]", "eps[y]", "sd(u[x,y])", "sd(eps[x])", "sd(eps[y])"]
    assert np.abs(post["u[x,y]"] - u).mean() < 0.04
    assert max(ncm.posterior_info["abduction_error"].values()) < 0.02
    out = ncm.counterfactual(units, {"x": 1.0}, n_samples=200, seed=0)
    assert np.abs(out.y - cf).mean() < 0.02  # measured 0.004–0.005
    assert out.attrs["abduction"] == "amortised posterior (approximate)"
    assert max(out.attrs["reconstruction_error"].values()) < 2 * SIGMA  # draws of a σ-wide posterior


def test_interaction_case_counterfactual_depends_on_the_posterior_and_matches_analytic(fitted):
    """y = Bx + (C + d·x)u + S_Y·ε_y: the counterfactual needs E[u | v]. Measured over 3 seeds:
    mean |error| 0.037–0.043 (tolerance 0.08), against 0.90 for the prior (no abduction)."""
    ncm = fitted[0.4]
    units = ncm.sample(100, seed=2)
    _, cf = _analytic(units, 0.4, 1.0)
    out = ncm.counterfactual(units, {"x": 1.0}, n_samples=200, seed=0)
    err = np.abs(out.y - cf).mean()
    assert err < 0.08
    assert np.abs(ncm.mean_do(1.0, seed=0) - cf).mean() > 10 * err  # abduction matters here
    np.testing.assert_allclose(out.x, 1.0, atol=1e-6)
    # one do value per unit; do(x = x) reproduces the unit within the round-trip error
    back = ncm.counterfactual(units, {"x": units.x.to_numpy()}, n_samples=200, seed=0)
    assert np.abs(back.y - units.y).mean() < 2 * SIGMA


def test_importance_sampled_abduction_matches_analytic(fitted):
    """The reference abduction (same target, no Gaussian restriction): measured mean |error|
    0.012 with 1e5 proposals (Monte Carlo; tolerance 0.03), median ESS ≈ 590."""
    ncm = fitted[0.4]
    units = ncm.sample(100, seed=2)
    _, cf = _analytic(units, 0.4, 1.0)
    out = ncm.counterfactual(units, {"x": 1.0}, n_samples=500, seed=0, abduction="importance")
    assert np.abs(out.y - cf).mean() < 0.03
    assert out.attrs["abduction"].startswith("importance") and len(out.attrs["ess"]) == 100
    assert np.median(out.attrs["ess"]) > 100


def test_non_descendants_keep_their_values_draws_and_refinement(fitted):
    ncm = fitted[0.4]
    units = ncm.sample(5, seed=3)
    out = ncm.counterfactual(units, {"y": 0.0}, n_samples=10, seed=0)  # x is upstream of y
    np.testing.assert_allclose(out.x, units.x, atol=1e-6)
    long = ncm.counterfactual(units, {"x": 1.0}, n_samples=10, seed=0, draws=True)
    assert list(long.columns) == ["unit", "draw", "x", "y"] and len(long) == 50
    mean = ncm.counterfactual(units, {"x": 1.0}, n_samples=10, seed=0)
    np.testing.assert_allclose(long.groupby("unit")["y"].mean().loc[units.index], mean.y, rtol=1e-5)
    refined = ncm.counterfactual(units, {"x": 1.0}, n_samples=10, seed=0, refine_steps=3)
    assert refined.attrs["refine_steps"] == 3 and not np.allclose(refined.y, mean.y)


def test_bad_input_gives_clear_errors(fitted):
    ncm = fitted[0.4]
    units = ncm.sample(4, seed=0)
    with pytest.raises(DataError, match="no column for node 'y'"):
        ncm.counterfactual(units[["x"]], {"x": 1.0})
    with pytest.raises(DataError, match="missing values"):
        ncm.counterfactual(units.assign(y=[np.nan, 1.0, 2.0, 3.0]), {"x": 1.0})
    with pytest.raises(GraphError, match="unknown node"):
        ncm.counterfactual(units, {"w": 1.0})
    with pytest.raises(DataError, match="one value or 4 values"):
        ncm.counterfactual(units, {"x": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="n_samples"):
        ncm.counterfactual(units, {"x": 1.0}, n_samples=0)
    with pytest.raises(ConfigError, match="dict"):
        ncm.counterfactual(units, [("x", 1.0)])
    with pytest.raises(ConfigError, match="choose 'amortised' or 'importance'"):
        ncm.counterfactual(units, {"x": 1.0}, abduction="exact")
    with pytest.raises(ConfigError, match="refine_steps"):
        ncm.counterfactual(units, {"x": 1.0}, abduction="importance", refine_steps=2)
    with pytest.raises(NotFittedError, match="fit_posterior"):
        _known_model(0.0).counterfactual(units, {"x": 1.0})
    with pytest.raises(NotFittedError, match="fit"):
        GANNCM("x -> y").fit_posterior(units)
    rng = np.random.default_rng(0)
    t = (rng.random(100) < 0.5).astype(int)
    mixed = GANNCM("t -> y", seed=0, **TINY).fit(pd.DataFrame({"t": t, "y": t + rng.standard_normal(100)}),
                                                 steps=1, n_critic=1)
    with pytest.raises(ConfigError, match="discrete"):
        mixed.fit_posterior(pd.DataFrame({"t": t, "y": t * 1.0}))


def test_same_seed_same_numbers_and_refit_drops_the_posterior():
    scm = load_confounded_continuous("iv")
    df = scm.sample(200, seed=1)
    runs = []
    for seed in (3, 3, 4):
        ncm = GANNCM(scm.graph, seed=seed, **TINY).fit(df, steps=2, n_critic=1)
        ncm.fit_posterior(df, steps=20, hidden=(8,), eval_every=5)
        runs.append(ncm.counterfactual(df.head(5), {"x": 0.5}, n_samples=20))
    pd.testing.assert_frame_equal(runs[0], runs[1])
    assert not runs[0].equals(runs[2])
    assert runs[0].attrs == runs[1].attrs
    ncm.fit(df, steps=1, n_critic=1)
    assert ncm.encoder is None and ncm.posterior_info == {}
