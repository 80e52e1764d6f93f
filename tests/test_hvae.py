"""``HierarchicalVAE`` (``deepscm.mechanisms.hvae``; issue 12, item 3).

- abduction recovers ``u`` exactly given the drawn latents (``f(pa, abduct(x, pa)) = x``);
- exogenous prior: the counterfactual keeps ``z``; conditional prior ``p(z | pa)``: ``z``
  moves with the parents (a mediator);
- counterfactuals have the image's shape and the same seed gives the same numbers;
- the ELBO is a bound, the KL of the ladder is the Gaussian closed form;
- save/load round trip through the registry, bad hyper-parameters refused.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import deepscm as ds
from deepscm.errors import ConfigError
from deepscm.mechanisms import registry
from deepscm.mechanisms.hvae import HierarchicalVAE, _kl
from deepscm.scm import engine

SMALL = dict(latent_dims=(4, 2), channels=(8,), hidden=(32,), kl_warmup_steps=20)


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Register the family for this module (until the lead adds it to the registry)."""
    added = "HierarchicalVAE" not in registry.REGISTRY
    if added:
        registry.register(HierarchicalVAE, aliases=("hvae",))
    yield
    if added:
        registry.unregister("HierarchicalVAE")


def images(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    grid = np.linspace(-1, 1, 8)
    pattern = np.exp(-(grid[:, None] ** 2 + 3 * grid[None, :] ** 2))
    pixels = a[:, None, None] * pattern + 0.5 * b[:, None, None] * pattern.T + 0.1 * rng.normal(size=(n, 8, 8))
    cells = np.empty(n, dtype=object)
    cells[:] = list(pixels.astype(np.float32))
    return pd.DataFrame({"a": a, "b": b, "x": cells})


_FITS: dict = {}


def fitted(prior: str):
    if prior not in _FITS:
        df = images(400)
        scm = ds.DeepSCM("a -> x; b -> x", mechanisms={"x": HierarchicalVAE(prior=prior, **SMALL)})
        scm.fit(df, epochs=8, batch_size=100, seed=0, device="cpu", progress=False)
        _FITS[prior] = scm, df
    return _FITS[prior]


def tensors(scm, df, rows=64):
    values = engine.encode(scm, df.head(rows))
    return values["x"], engine.context(scm, "x", values, min(rows, len(df)))


@pytest.mark.parametrize("prior", ["exogenous", "conditional"])
def test_abduction_reproduces_the_image_and_the_counterfactual_has_its_shape(prior):
    scm, df = fitted(prior)
    mech = scm.mechanisms["x"]
    assert mech.abduction == "posterior" and mech.likelihood == "bound" and mech.handles == {"image"}
    x, ctx = tensors(scm, df)
    with torch.no_grad():
        u = mech.abduct(x, ctx, torch.Generator().manual_seed(0))
        assert u.shape == (64, 6 + 64)
        torch.testing.assert_close(mech.sample(ctx, u), x, atol=1e-4, rtol=0)
        assert torch.equal(u, mech.abduct(x, ctx, torch.Generator().manual_seed(0)))
    cf = scm.counterfactual(df.head(10), do={"a": 1.0}, seed=3)
    assert np.stack(cf["x"]).shape == (10, 8, 8)
    again = scm.counterfactual(df.head(10), do={"a": 1.0}, seed=3)
    np.testing.assert_array_equal(np.stack(cf["x"]), np.stack(again["x"]))
    other = scm.counterfactual(df.head(10), do={"a": 1.0}, seed=4)
    assert not np.array_equal(np.stack(cf["x"]), np.stack(other["x"]))  # a posterior draw
    lp = scm.log_prob(df.head(20))
    assert np.isfinite(lp).all()


def test_the_exogenous_prior_keeps_z_and_the_conditional_prior_mediates():
    for prior, moves in (("exogenous", False), ("conditional", True)):
        scm, df = fitted(prior)
        mech = scm.mechanisms["x"]
        x, ctx = tensors(scm, df, 16)
        with torch.no_grad():
            eps, _ = mech._split(mech.abduct(x, ctx, torch.Generator().manual_seed(1)))
            z, z_cf = mech._latents(eps, ctx), mech._latents(eps, ctx + 1.0)
        assert torch.allclose(z, z_cf) != moves, prior


def test_the_ladder_kl_is_the_gaussian_closed_form():
    mq, sq, mp, sp = (torch.tensor([[v]]) for v in (0.3, 0.5, -1.0, 2.0))
    expected = math.log(2.0 / 0.5) + (0.25 + 1.3**2) / 8.0 - 0.5
    assert float(_kl(mq, sq, mp, sp)) == pytest.approx(expected, rel=1e-6)
    assert float(_kl(mq, sq, mq, sq)) == pytest.approx(0.0, abs=1e-7)


def test_save_load_round_trip(tmp_path):
    scm, df = fitted("conditional")
    scm.save(tmp_path / "model")
    loaded = ds.DeepSCM.load(tmp_path / "model")
    mech = loaded.mechanisms["x"]
    assert type(mech) is HierarchicalVAE and mech.hparams == scm.mechanisms["x"].hparams
    np.testing.assert_array_equal(np.stack(loaded.counterfactual(df.head(8), do={"b": 0.0}, seed=5)["x"]),
                                  np.stack(scm.counterfactual(df.head(8), do={"b": 0.0}, seed=5)["x"]))
    np.testing.assert_array_equal(loaded.log_prob(df.head(8)), scm.log_prob(df.head(8)))
    np.testing.assert_array_equal(np.stack(loaded.sample(5, seed=6)["x"]), np.stack(scm.sample(5, seed=6)["x"]))


def test_hyper_parameters_and_node_kinds():
    mech = HierarchicalVAE()
    assert mech.hparams["latent_dims"] == [16, 8] and mech.hparams["prior"] == "exogenous"
    assert "latent_dim" not in mech.hparams and registry.resolve("hvae") is HierarchicalVAE
    for bad in ({"latent_dims": []}, {"latent_dims": [0]}, {"prior": "gaussian"}, {"scale": "wobbly"},
                {"beta": -1.0}):
        with pytest.raises(ConfigError):
            HierarchicalVAE(**bad)
    df = pd.DataFrame({"a": np.arange(40.0), "x": np.arange(40.0) ** 0.5})
    with pytest.raises(ConfigError, match="HierarchicalVAE"):
        ds.DeepSCM("a -> x", mechanisms={"x": HierarchicalVAE()}).fit(df, epochs=1, progress=False, device="cpu")
