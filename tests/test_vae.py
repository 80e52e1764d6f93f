"""ConditionalVAE (DSCM §2.2–2.3) and image variables in DeepSCM."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import deepscm as ds
from deepscm.errors import DataError
from deepscm.mechanisms import ConditionalVAE, MechanismSpec
from deepscm.variables import Schema

SIDE = 8
PATTERN = np.linspace(-1.0, 1.0, SIDE, dtype=np.float32)[None, :].repeat(SIDE, 0)


def image_scm_data(n: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``t ~ N(0,1)``; ``x = base[id] + t · pattern + small noise``, ids uniform over 4 bases.

    The counterfactual image under ``do(t := t')`` is ``x + (t' − t) · pattern`` exactly.
    """
    rng = np.random.default_rng(seed)
    bases = rng.normal(size=(4, SIDE, SIDE)).astype(np.float32)
    ids = rng.integers(0, 4, n)
    t = rng.normal(size=n)
    noise = 0.05 * rng.normal(size=(n, SIDE, SIDE))
    images = (bases[ids] + t[:, None, None] * PATTERN + noise).astype(np.float32)
    frame = pd.DataFrame({"t": t})
    frame["x"] = list(images)
    return frame, images, t


def small_vae(**kw) -> ConditionalVAE:
    return ConditionalVAE(**{"latent_dim": 4, "channels": (8,), "hidden": (32,), **kw})


@pytest.fixture(scope="module")
def fitted():
    frame, images, t = image_scm_data()
    torch.manual_seed(0)
    scm = ds.DeepSCM("t -> x", mechanisms={"x": small_vae(kl_warmup_steps=50)})
    scm.fit(frame, epochs=15, batch_size=100, progress=False, seed=0)
    return scm, frame, images, t


# ---------------------------------------------------------------------- image variables
def test_image_column_is_inferred_with_shape_scale_and_bounds():
    frame, images, _ = image_scm_data(50)
    schema = Schema.infer(frame, ["t", "x"])
    var = schema["x"]
    assert var.kind == "image" and var.shape == [SIDE, SIDE] and var.tensor_shape == (1, SIDE, SIDE)
    assert var.dim == SIDE * SIDE
    assert var.loc[0] == pytest.approx(images.mean(), abs=1e-5)
    assert var.bounds == [pytest.approx(images.min()), pytest.approx(images.max())]
    encoded = var.encode(frame)
    assert encoded.shape == (50, 1, SIDE, SIDE)
    back = var.decode_array(encoded)
    np.testing.assert_allclose(back, images, atol=1e-5)
    # the log-Jacobian converts a standardised density into pixel units
    assert var.log_jacobian() == pytest.approx(-SIDE * SIDE * math.log(var.scale[0]))


def test_image_errors_name_the_problem():
    frame, _, _ = image_scm_data(10)
    cells = frame["x"].to_list()
    ragged = frame.assign(x=cells[:3] + [np.zeros((SIDE, SIDE + 1), dtype=np.float32)] + cells[4:])
    with pytest.raises(DataError, match="one shape"):
        Schema.infer(ragged, ["t", "x"])
    bad = cells[2].copy()
    bad[0, 0] = np.nan
    broken = frame.assign(x=cells[:2] + [bad] + cells[3:])
    schema = Schema.infer(frame, ["t", "x"])
    with pytest.raises(DataError, match="NaN or infinite pixels"):
        schema.check(broken, "test")
    other = frame.copy()
    other["x"] = [np.zeros((4, 4), dtype=np.float32)] * len(frame)
    with pytest.raises(DataError, match=r"shape \(4, 4\).*expects \(8, 8\)"):
        schema.check(other, "test")


def test_image_node_rejects_flows_and_odd_sizes():
    frame, _, _ = image_scm_data(40)
    with pytest.raises(ds.ConfigError, match="image but ConditionalFlow"):
        ds.DeepSCM("t -> x", mechanisms={"x": "flow"}).fit(frame, epochs=1, progress=False)
    odd = frame.copy()
    odd["x"] = [np.zeros((6, 6), dtype=np.float32) + i for i in range(len(frame))]
    with pytest.raises(DataError, match="divisible by 4"):
        ds.DeepSCM("t -> x", mechanisms={"x": ConditionalVAE(channels=(8, 8))}).fit(
            odd, epochs=1, progress=False
        )


def test_default_mechanism_for_an_image_is_the_vae():
    frame, _, _ = image_scm_data(40)
    scm = ds.DeepSCM("t -> x").fit(frame, epochs=1, progress=False)
    assert isinstance(scm.mechanisms["x"], ConditionalVAE)


# ---------------------------------------------------------------------- the mechanism itself
def _linear_gaussian_vae(scale: float = 0.5, latent: int = 2, dim: int = 6) -> tuple:
    """A VAE whose decoder is linear, ``x = W z + b + σ u``, with ``W``'s columns orthogonal,
    so the exact posterior ``p(z | x)`` is a diagonal Gaussian that a linear encoder can
    represent: ``Σ = (I + WᵀW/σ²)⁻¹``, ``m = Σ Wᵀ (x − b)/σ²``."""
    torch.manual_seed(1)
    vae = ConditionalVAE(latent_dim=latent, hidden=(), scale="constant", min_scale=1e-3)
    vae.build(MechanismSpec(x_dim=dim, context_dim=0))
    q, _ = torch.linalg.qr(torch.randn(dim, latent))
    weight = q * torch.tensor([1.5, 0.7])
    bias = torch.randn(dim)
    with torch.no_grad():
        vae.decoder.net[0].weight.copy_(weight)
        vae.decoder.net[0].bias.copy_(bias)
        vae.log_scale.fill_(math.log(math.expm1(scale - 1e-3)))  # softplus⁻¹(σ − floor)
    return vae, weight, bias


def test_elbo_is_a_bound_that_is_tight_at_the_exact_posterior():
    sigma = 0.5
    vae, weight, bias = _linear_gaussian_vae(sigma)
    covariance = weight @ weight.T + sigma**2 * torch.eye(6)
    exact = torch.distributions.MultivariateNormal(bias, covariance)
    x = exact.sample((5,))
    # exact posterior: diagonal because W has orthogonal columns
    precision = torch.eye(2) + weight.T @ weight / sigma**2
    post_cov = torch.linalg.inv(precision)
    assert torch.allclose(post_cov, torch.diag(torch.diagonal(post_cov)), atol=1e-6)
    post_std = torch.diagonal(post_cov).sqrt()
    encoder = vae.encoder.net[0]
    with torch.no_grad():
        encoder.weight.zero_()
        encoder.weight[:2] = post_cov @ weight.T / sigma**2
        encoder.bias[:2] = -(post_cov @ weight.T / sigma**2) @ bias
        encoder.bias[2:] = torch.log(torch.expm1(post_std - 1e-4))
    context = torch.zeros(5, 0)
    generator = torch.Generator().manual_seed(0)
    tight = vae.elbo(x, context, n_samples=4000, generator=generator)
    torch.testing.assert_close(tight, exact.log_prob(x), atol=0.05, rtol=0)
    with torch.no_grad():  # a worse encoder: the bound stays below the exact log-likelihood
        encoder.bias[:2] += 1.0
    loose = vae.elbo(x, context, n_samples=4000, generator=generator)
    assert bool((loose < exact.log_prob(x) - 0.1).all())


def test_identity_counterfactual_reconstructs_the_input_for_any_latent_draw():
    vae = small_vae()
    vae.build(MechanismSpec(x_dim=SIDE * SIDE, context_dim=1, x_shape=(1, SIDE, SIDE)))
    x, context = torch.randn(7, 1, SIDE, SIDE), torch.randn(7, 1)
    for seed in range(3):  # abduction draws z at random; u absorbs the rest exactly
        noise = vae.abduct(x, context, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(vae.sample(context, noise), x, atol=1e-5, rtol=0)


def test_constant_scale_shortcut_equals_the_general_prediction():
    vae = small_vae(scale="constant")
    vae.build(MechanismSpec(x_dim=SIDE * SIDE, context_dim=2, x_shape=(1, SIDE, SIDE)))
    with torch.no_grad():
        vae.log_scale.normal_()  # a non-trivial per-pixel scale
    x, pa, new_pa = torch.randn(5, 1, SIDE, SIDE), torch.randn(5, 2), torch.randn(5, 2)
    noise = vae.abduct(x, pa, torch.Generator().manual_seed(0))
    general = vae.sample(new_pa, noise)  # eq. 6
    shortcut = vae.counterfactual_shortcut(x, pa, new_pa, noise[:, : vae.latent_dim])
    torch.testing.assert_close(general, shortcut, atol=1e-5, rtol=0)
    learned = small_vae()
    learned.build(MechanismSpec(x_dim=4, context_dim=1))
    with pytest.raises(DataError, match="constant"):
        learned.counterfactual_shortcut(torch.zeros(1, 4), torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 4))


def test_kl_warmup_weight_rises_linearly_while_training():
    vae = ConditionalVAE(latent_dim=2, hidden=(8,), kl_warmup_steps=4)
    vae.build(MechanismSpec(x_dim=3, context_dim=0))
    x, context = torch.randn(10, 3), torch.zeros(10, 0)
    losses = []
    for step in range(5):
        torch.manual_seed(0)
        with torch.no_grad():
            loss = vae.loss(x, context)
        torch.manual_seed(0)
        weight = min(1.0, (step + 1) / 4)
        with torch.no_grad():
            expected = -vae.elbo(x, context, kl_weight=weight).mean()
        losses.append((loss.item(), expected.item()))
    for got, want in losses:
        assert got == pytest.approx(want, rel=1e-6)
    vae.eval()  # evaluation uses the full bound, deterministically
    with torch.no_grad():
        assert vae.loss(x, context).item() == vae.loss(x, context).item()


# ---------------------------------------------------------------------- in a DeepSCM
def test_counterfactual_images_follow_the_true_change(fitted):
    scm, frame, images, t = fitted
    units = frame.head(40)
    cf = scm.counterfactual(units, do={"t": lambda v: v + 1.5}, seed=0, n_samples=4, average=True)
    assert cf.attrs["abduction"] == {"t": "exact", "x": "mean"}
    assert list(cf.index) == list(units.index)
    predicted = np.stack(cf["x"].to_list())
    assert predicted.shape == (40, SIDE, SIDE) and predicted.dtype == np.float32
    truth = images[:40] + 1.5 * PATTERN
    model_error = np.abs(predicted - truth).mean()
    unchanged_error = np.abs(images[:40] - truth).mean()  # = 0.75 · mean|pattern|
    assert model_error < 0.35 * unchanged_error, (model_error, unchanged_error)


def test_identity_counterfactual_through_the_scm_returns_the_factual_image(fitted):
    scm, frame, images, _ = fitted
    cf = scm.counterfactual(frame.head(10), do={"t": lambda v: v}, seed=3)
    np.testing.assert_allclose(np.stack(cf["x"].to_list()), images[:10], atol=1e-4)


def test_draws_have_shape_dtype_and_the_training_pixel_range(fitted):
    scm, frame, images, _ = fitted
    draws = scm.counterfactual(frame.head(3), do={"t": 6.0}, seed=0, n_samples=5)
    assert draws.index.names == ["unit", "draw"] and len(draws) == 15
    assert draws.attrs["abduction"]["x"] == "draws"
    stacked = np.stack(draws["x"].to_list())
    assert stacked.shape == (15, SIDE, SIDE) and stacked.dtype == np.float32
    assert stacked.min() >= images.min() and stacked.max() <= images.max()
    again = scm.counterfactual(frame.head(3), do={"t": 6.0}, seed=0, n_samples=5)
    np.testing.assert_array_equal(stacked, np.stack(again["x"].to_list()))
    sample = scm.sample(6, seed=1)
    assert np.stack(sample["x"].to_list()).shape == (6, SIDE, SIDE)


def test_log_prob_reports_the_elbo_as_a_bound(fitted):
    scm, frame, _, _ = fitted
    total = scm.log_prob(frame.head(20))
    assert total.attrs["lower_bound"] == ["x"]
    per_node = scm.log_prob(frame.head(20), per_node=True)
    np.testing.assert_allclose(per_node.sum(axis=1), total, rtol=1e-6)
    np.testing.assert_array_equal(total, scm.log_prob(frame.head(20)))  # deterministic
    # a unit whose image does not match its t scores lower than the matching one
    swapped = frame.head(20).copy()
    swapped["t"] = swapped["t"] + 3.0
    assert per_node["x"].mean() > scm.log_prob(swapped, per_node=True)["x"].mean() + 5


def test_image_model_saves_and_loads_without_pickle(fitted, tmp_path):
    scm, frame, _, _ = fitted
    path = scm.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir())[0] == "model.json" and len(list(path.iterdir())) == 2
    meta = json.loads((path / "model.json").read_text())
    assert meta["mechanisms"]["x"]["type"] == "ConditionalVAE"
    assert meta["mechanisms"]["x"]["spec"]["x_shape"] == [1, SIDE, SIDE]
    loaded = ds.DeepSCM.load(path)
    np.testing.assert_allclose(loaded.log_prob(frame.head(5)), scm.log_prob(frame.head(5)), rtol=1e-6)
    a = loaded.counterfactual(frame.head(4), do={"t": 1.0}, seed=5)
    b = scm.counterfactual(frame.head(4), do={"t": 1.0}, seed=5)
    np.testing.assert_array_equal(np.stack(a["x"].to_list()), np.stack(b["x"].to_list()))


def test_vae_on_a_vector_node_shifts_counterfactuals_by_the_effect():
    rng = np.random.default_rng(0)
    n = 600
    a = rng.integers(0, 2, n)
    y = rng.normal(size=(n, 3)) + 2.0 * a[:, None]
    frame = pd.DataFrame({"a": a, "y0": y[:, 0], "y1": y[:, 1], "y2": y[:, 2]})
    scm = ds.DeepSCM(
        "a -> y", mechanisms={"y": ConditionalVAE(latent_dim=2, hidden=(16,), kl_warmup_steps=20)},
        variables={"y": ["y0", "y1", "y2"]},
    ).fit(frame, epochs=20, batch_size=100, progress=False)
    cf = scm.counterfactual(frame.head(50), do={"a": 1}, seed=0, n_samples=3, average=True)
    shift = cf[["y0", "y1", "y2"]].to_numpy() - frame.head(50)[["y0", "y1", "y2"]].to_numpy()
    expected = 2.0 * (1 - frame.head(50)["a"].to_numpy())[:, None]
    assert np.abs(shift - expected).mean() < 0.5, np.abs(shift - expected).mean()


def test_cli_refuses_image_models_with_a_pointer_to_the_python_api(fitted, tmp_path):
    from click.testing import CliRunner

    from deepscm.cli import main

    scm, _, _, _ = fitted
    scm.save(tmp_path / "model")
    result = CliRunner().invoke(main, ["sample", str(tmp_path / "model"), "-n", "3"])
    assert result.exit_code == 2
    assert "image node(s) ['x']" in result.output and "Python API" in result.output
