"""Mechanisms in isolation: inversion, noise priors and Gumbel-max posteriors."""

import numpy as np
import pandas as pd
import pytest
import torch

import deepscm as ds
from deepscm.errors import ConfigError
from deepscm.mechanisms import AdditiveNoise, Categorical, ConditionalFlow, LinearGaussian, MechanismSpec


def test_flow_abduction_inverts_sampling_for_scalars_and_vectors():
    g = torch.Generator().manual_seed(0)
    for spec in (MechanismSpec(1, 3), MechanismSpec(1, 0), MechanismSpec(2, 3)):
        flow = ConditionalFlow()
        flow.build(spec)
        torch.nn.init.normal_(next(flow.parameters()), std=0.5)
        context = torch.randn(64, spec.context_dim)
        u = flow.sample_noise(64, g)
        x = flow.sample(context, u)
        assert torch.allclose(flow.abduct(x, context), u, atol=1e-4)
        assert flow.log_prob(x, context).shape == (64,)


def test_gumbel_posterior_reproduces_the_observed_category_and_matches_the_prior():
    g = torch.Generator().manual_seed(0)
    mech = Categorical(hidden_features=(8,))
    mech.build(MechanismSpec(1, 2, n_categories=4))
    context = torch.randn(2000, 2)
    x = mech.sample(context, mech.sample_noise(2000, g))
    noise = mech.abduct(x, context, g)
    assert torch.equal(mech.sample(context, noise), x)  # consistency: same parents, same category
    # averaged over observations, posterior noise is distributed as the prior: Gumbel(0, 1)
    assert abs(noise.mean().item() - 0.5772) < 0.05
    assert abs(noise.std().item() - 1.2825) < 0.05


def test_a_categorical_root_is_fitted_in_closed_form_to_its_smoothed_frequencies():
    """A root's logits are ``log((c_k + 1/2) / (n + K/2))`` of its training counts: no weight
    is trained (the fit skips it), and a category the rows miss keeps a finite likelihood."""
    rng = np.random.default_rng(0)
    arm = rng.choice(["a", "b", "c"], p=[0.6, 0.3, 0.1], size=2000)
    df = pd.DataFrame({"arm": arm, "y": (arm == "b") + 0.5 * rng.normal(size=2000)})
    scm = ds.DeepSCM("arm -> y", mechanisms={"y": "linear"}).fit(df, seed=0, progress=False)
    mech = scm.mechanisms["arm"]
    assert isinstance(mech, Categorical) and not any(p.requires_grad for p in mech.parameters())
    assert "arm" not in scm.history.train_loss  # nothing trained by gradient
    labels = list(scm.schema["arm"].categories)
    counts = np.array([(arm == c).sum() for c in labels])  # all rows: a chosen closed form refits
    expected = np.log((counts + 0.5) / (counts.sum() + 1.5))
    assert np.allclose(mech.root_logits.numpy(), expected, atol=1e-6)
    sampled = scm.sample(20_000, seed=1)["arm"].value_counts(normalize=True)
    assert abs(sampled["a"] - 0.6) < 0.015 and abs(sampled["c"] - 0.1) < 0.01
    missing = Categorical()
    missing.build(MechanismSpec(1, 0, n_categories=3))
    missing.after_fit(torch.tensor([0.0, 0.0, 1.0]), torch.zeros(3, 0))
    assert torch.isfinite(missing.log_prob(torch.tensor([2.0]), torch.zeros(1, 0))).all()


def test_additive_noise_residuals_and_abduction():
    g = torch.Generator().manual_seed(0)
    mech = AdditiveNoise(hidden_features=(8,))
    mech.build(MechanismSpec(1, 1))
    context = torch.randn(500, 1)
    x = 2 * context + torch.randn(500, 1)
    mech.after_fit(x, context)
    assert mech.residuals.shape == (500, 1)
    u = mech.sample_noise(10, g)
    assert all(any(torch.isclose(v, mech.residuals).all(-1)) for v in u)  # drawn from residuals
    assert torch.allclose(mech.abduct(mech.sample(context, x - mech.mean(context)), context), x - mech.mean(context))


@pytest.mark.parametrize("early_stopping", [True, False])
def test_boosted_trees_predict_as_scikit_learn(early_stopping):
    """The boosted location's trees, stored as tensors and walked in parallel, predict what the
    fitted HistGradientBoostingRegressor predicts (float32 round-off), inside and outside the
    training range."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from deepscm.mechanisms import BoostedAdditive
    from deepscm.mechanisms.base import MechanismSpec

    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(1500, 3, generator=g)
    x = torch.sin(2 * ctx[:, :1]) * ctx[:, 1:2] + ctx[:, 2:3] ** 2 + 0.3 * torch.randn(1500, 1, generator=g)
    mech = BoostedAdditive(max_iter=200, early_stopping=early_stopping)
    mech.build(MechanismSpec(1, 3))
    mech.after_fit(x, ctx)
    design = np.column_stack([ctx.double().numpy(), np.ones(1500)])
    solution = np.linalg.lstsq(design, x.double().numpy(), rcond=None)[0]
    hgb = HistGradientBoostingRegressor(max_iter=200, max_leaf_nodes=31, learning_rate=0.1,
                                        early_stopping=early_stopping, random_state=0)
    hgb.fit(ctx.numpy(), (x.double().numpy() - design @ solution)[:, 0])
    test = 2 * torch.randn(800, 3, generator=g)  # a third of the rows beyond the training range
    trees = mech.mean(test)[:, 0] - (test @ mech.weight.T + mech.bias)[:, 0]
    np.testing.assert_allclose(trees.numpy(), hgb.predict(test.numpy()), rtol=0, atol=1e-5)
    assert (mech.feature.shape[1] < 200) == early_stopping  # stopped early, or all 200 trees


def test_flow_started_linear_is_the_fitted_linear_gaussian():
    """``ConditionalFlow.start_linear`` puts a fresh flow at the least-squares linear-Gaussian
    conditional: the same log-density and the same samples from the same noise."""
    gen = torch.Generator().manual_seed(0)
    ctx = torch.randn(500, 3, generator=gen)
    x = ctx @ torch.tensor([[1.5], [-0.5], [0.2]]) + 0.3 + 0.4 * torch.randn(500, 1, generator=gen)
    spec = MechanismSpec(x_dim=1, context_dim=3)
    linear, flow = LinearGaussian(), ConditionalFlow()
    linear.build(spec)
    flow.build(spec)
    linear.after_fit(x, ctx)
    assert not torch.allclose(flow.log_prob(x, ctx), linear.log_prob(x, ctx), atol=1e-2)
    flow.start_linear(linear.weight, linear.bias, linear.log_sigma)
    with torch.no_grad():
        torch.testing.assert_close(flow.log_prob(x, ctx), linear.log_prob(x, ctx), atol=1e-5, rtol=0)
        noise = torch.randn(500, 1, generator=gen)
        torch.testing.assert_close(flow.eval().sample(ctx, noise), linear.sample(ctx, noise), atol=1e-5, rtol=0)
    root = ConditionalFlow()
    root.build(MechanismSpec(x_dim=1, context_dim=0))
    with pytest.raises(ConfigError, match="scalar node with parents"):
        root.start_linear(linear.weight, linear.bias, linear.log_sigma)
