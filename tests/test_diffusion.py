"""``mechanisms.Diffusion`` (DCM, Chao et al. 2023; issue 12, items 1 and 5).

- counterfactuals on the 1-D monotone SCM ``x2 := x1 + softplus(x1)·u`` against the truth;
- encode→decode with unchanged parents reconstructs within ``abduction_tolerance``, and the
  error measured after fitting (``fit_info["abduction_error"]``) is small, not zero, and saved;
- the DDIM inversion and decoding match their formulas step by step on a closed-form ε;
- ``DeepSCM(g, mechanisms="diffusion")``: every continuous node, no likelihood, approximate
  counterfactuals, save/load.

The generic protocol checks (shapes, seeds, devices, bad hyper-parameters) are in the
contract suite, ``tests/test_mechanism_contract.py``, which covers ``Diffusion`` through the
registry.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
import torch

import deepscm as ds
from deepscm.errors import ConfigError, DataError
from deepscm.mechanisms import Diffusion
from deepscm.mechanisms.base import MechanismSpec
from deepscm.scm import engine

#: the small settings of the fitted tests (T = 50 instead of 100; default network).
SMALL = {"steps": 50}
FIT = {"epochs": 150, "batch_size": 128, "lr": 5e-3, "device": "cpu", "progress": False}
#: the counterfactual error in units of the noise: mean |x2_cf − x2_true| / softplus(value)
#: over 300 units (the true counterfactual is value + softplus(value)·u). With SMALL/FIT a
#: correct fit reaches 0.15–0.35 per value of do(x1 := −1, 0, 1) and 0.22–0.28 pooled over
#: the three (fit seeds 0–2; seed 0, the one tested, 0.28); resampling u instead of
#: abducting it scores 1.0–1.2, so the bounds separate the two.
CF_REL_TOL = 0.5
CF_POOLED_REL_TOL = 0.4
#: |mean − 1| and |sd − 1.313| of P(x2 | do(x1 := 1)) (data units; see the test).
INT_TOL = 0.35


def softplus(v):
    return np.logaddexp(0.0, v)


def monotone(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1, u = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x1 + softplus(x1) * u}), u


@pytest.fixture(scope="module")
def monotone_fit():
    df, _ = monotone(2000, 0)
    scm = ds.DeepSCM(
        "x1 -> x2", mechanisms={"x1": ds.mechanisms.AdditiveNoise((4,)), "x2": Diffusion(**SMALL)}
    )
    scm.fit(df, seed=0, **FIT)
    return scm, df


# ---------------------------------------------------------------------------- counterfactuals
def test_counterfactuals_of_a_monotone_scm_match_the_truth(monotone_fit):
    """DCM's identifiability case: x2 strictly monotone in u, so Dec(Enc(x2, x1), x1') is
    the true counterfactual when the encoding is independent of x1."""
    scm, _ = monotone_fit
    units, u = monotone(300, 1)
    pooled, resampled = [], []
    for value in (-1.0, 0.0, 1.0):
        cf = scm.counterfactual(units, do={"x1": value}, seed=0)
        assert cf.attrs["abduction"]["x2"] == "approximate"
        np.testing.assert_array_equal(cf["x1"], value)
        scale = softplus(value)
        truth = value + scale * u
        rel = np.abs(cf["x2"].to_numpy() - truth) / scale
        assert rel.mean() < CF_REL_TOL, f"do(x1={value}): mean |cf − truth|/scale = {rel.mean():.3f}"
        pooled.append(rel)
        fresh = scm.sample(300, do={"x1": value}, seed=1)["x2"].to_numpy()
        resampled.append(np.abs(fresh - truth).mean() / scale)
    pooled_rel = float(np.concatenate(pooled).mean())
    assert pooled_rel < CF_POOLED_REL_TOL, f"pooled mean |cf − truth|/scale = {pooled_rel:.3f}"
    # the check can fail: ignoring the unit's noise is far outside the tolerance
    assert min(resampled) > 2 * CF_POOLED_REL_TOL


def test_the_interventional_distribution_is_right(monotone_fit):
    """P(x2 | do(x1 := 1)) = N(1, softplus(1)² = 1.313²). A known shortfall, measured, not
    hidden: with SMALL/FIT the mean comes out 0.70 / 0.72 / 0.70 (sd 1.23 / 1.25 / 1.21) for
    fit seeds 0 / 1 / 2 — the learnt conditional is ≈ 0.2 sd low at x1 = 1, the 84th
    percentile (measured before diffusion nodes trained to their epoch budget: without the
    EMA weights, ema_decay=0, mean 0.83, sd 1.20; the full defaults at T = 100, mean 0.85,
    sd 1.25). The bound allows that bias and no more than ≈ 0.05 on
    top; a mechanism that ignored the parent (mean 0) or the noise scale fails it."""
    scm, _ = monotone_fit
    x2 = scm.sample(3000, do={"x1": 1.0}, seed=2)["x2"]
    assert abs(x2.mean() - 1.0) < INT_TOL, f"E[x2 | do(x1=1)] = {x2.mean():.3f}, truth 1"
    assert abs(x2.std() - softplus(1.0)) < INT_TOL, f"sd = {x2.std():.3f}, truth 1.313"


# ---------------------------------------------------------------------------- reconstruction
def test_encode_decode_with_unchanged_parents_reconstructs(monotone_fit):
    scm, df = monotone_fit
    mech = scm.mechanisms["x2"]
    values = engine.encode(scm, df)
    x, ctx = values["x2"], engine.context(scm, "x2", values, len(df))
    with torch.no_grad():
        back = mech.decode(mech.encode(x, ctx), ctx)
        plain = mech.decode(mech.encode(x, ctx, refine=0), ctx)
    error = float((back - x).abs().max())
    assert 0 < error <= mech.abduction_tolerance
    # measured after fitting on the held-out rows: small and not zero
    measured = scm.fit_info["abduction_error"]["x2"]
    assert 0 < measured["max"] <= mech.abduction_tolerance
    assert 0 < measured["mean"] <= measured["max"]
    # refinement is what buys the tolerance: plain inversion misses by more
    assert float((plain - x).abs().max()) > error


def test_validation_score_is_stable_and_is_the_denoising_loss(monotone_fit):
    scm, df = monotone_fit
    mech = scm.mechanisms["x2"]
    values = engine.encode(scm, df.head(500))
    x, ctx = values["x2"], engine.context(scm, "x2", values, 500)
    with torch.no_grad():
        first, second = mech.validation_score(x, ctx), mech.validation_score(x, ctx)
        noisy = mech.denoising_loss(x, ctx, torch.Generator().manual_seed(123))
    assert torch.equal(first, second)
    assert 0 < float(first) < 1  # better than predicting ε = 0 (loss 1)
    assert abs(float(first) - float(noisy)) < 0.2
    assert scm.fit_info["validation"]["x2"]["metric"] == "denoising_mse"


# ---------------------------------------------------------------------------- the formulas
def toy_epsilon(x_t: torch.Tensor, t, context: torch.Tensor) -> torch.Tensor:
    """A closed-form ε: smooth in x_t, depending on t and the parents."""
    t = float(t) if not torch.is_tensor(t) else t.to(x_t.dtype).unsqueeze(-1)
    return 0.5 * torch.sin(x_t) + 0.01 * t * context[:, :1] + 0.2 * torch.tanh(x_t.flip(-1))


def toy_mechanism(**hparams) -> Diffusion:
    mech = Diffusion(steps=12, beta_start=1e-3, beta_end=0.3, hidden_features=(4,), **hparams)
    mech.build(MechanismSpec(x_dim=2, context_dim=1))
    mech.epsilon = toy_epsilon  # the instance's ε-network replaced by the closed form
    mech.alpha_bar = Diffusion.schedule(12, 1e-3, 0.3)  # float64, for a tight comparison
    return mech


def alpha_bars(steps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """ᾱ_0..ᾱ_T from the β schedule, independently of the implementation."""
    beta = np.linspace(beta_start, beta_end, steps)
    return np.concatenate([[1.0], np.cumprod(1.0 - beta)])


@pytest.mark.parametrize("inference_steps", [None, 5])
def test_ddim_inversion_matches_its_formula_step_by_step(inference_steps):
    """z_s = √(ᾱ_s/ᾱ_r) z_r + ε(z_r, s, pa)·(√(1−ᾱ_s) − √(ᾱ_s(1−ᾱ_r)/ᾱ_r)) per step (refine=0),
    on the grid 0..T or on 5 evenly spaced steps."""
    mech = toy_mechanism(inference_steps=inference_steps, refine=0)
    ab = alpha_bars(12, 1e-3, 0.3)
    np.testing.assert_allclose(mech.alpha_bar.numpy(), ab, rtol=1e-12)
    built = Diffusion(steps=12, beta_start=1e-3, beta_end=0.3)
    built.build(MechanismSpec(x_dim=2, context_dim=1))
    np.testing.assert_allclose(built.alpha_bar.numpy(), ab, rtol=1e-6)  # the float32 buffer
    levels = list(range(13)) if inference_steps is None else [0, 2, 5, 7, 10, 12]
    assert mech.grid() == levels
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(6, 2)))
    pa = torch.tensor(rng.normal(size=(6, 1)))
    path = mech.encode(x, pa, trajectory=True)
    assert len(path) == len(levels)
    torch.testing.assert_close(path[0], x)
    for i, (r, s) in enumerate(pairwise(levels)):
        z = path[i].numpy()
        eps = 0.5 * np.sin(z) + 0.01 * s * pa.numpy() + 0.2 * np.tanh(z[:, ::-1])
        expected = math.sqrt(ab[s] / ab[r]) * z + eps * (
            math.sqrt(1 - ab[s]) - math.sqrt(ab[s] * (1 - ab[r]) / ab[r])
        )
        np.testing.assert_allclose(path[i + 1].numpy(), expected, rtol=1e-10, atol=1e-12,
                                   err_msg=f"inversion step {r} → {s}")
    # the decoder step, x_r = √(ᾱ_r/ᾱ_s) x_s − ε(x_s, s)·(√(ᾱ_r(1−ᾱ_s)/ᾱ_s) − √(1−ᾱ_r))
    down = mech.decode(path[-1], pa, trajectory=True)
    for i, (s, r) in enumerate(pairwise(levels[::-1])):
        xs = down[i].numpy()
        eps = 0.5 * np.sin(xs) + 0.01 * s * pa.numpy() + 0.2 * np.tanh(xs[:, ::-1])
        expected = math.sqrt(ab[r] / ab[s]) * xs - eps * (
            math.sqrt(ab[r] * (1 - ab[s]) / ab[s]) - math.sqrt(1 - ab[r])
        )
        np.testing.assert_allclose(down[i + 1].numpy(), expected, rtol=1e-10, atol=1e-12,
                                   err_msg=f"decoding step {s} → {r}")


def test_refined_inversion_is_the_inverse_of_the_decoder():
    """With fixed-point refinement each inversion step solves z_s = base + coef·ε(z_s, s):
    the decoder's step run backwards, so the round trip closes to round-off."""
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(50, 2)))
    pa = torch.tensor(rng.normal(size=(50, 1)))
    plain, refined = toy_mechanism(refine=0), toy_mechanism(refine=30)
    plain_gap = float((plain.decode(plain.encode(x, pa), pa) - x).abs().max())
    refined_gap = float((refined.decode(refined.encode(x, pa), pa) - x).abs().max())
    assert refined_gap < 1e-9
    assert plain_gap > 1e-3


# ---------------------------------------------------------------------------- the model
def test_mechanisms_diffusion_fits_every_continuous_node_and_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    a = rng.normal(size=n)
    b = np.tanh(a) + 0.5 * rng.normal(size=n)
    c = np.column_stack([a * b + 0.3 * rng.normal(size=n), b - a + 0.3 * rng.normal(size=n)])
    df = pd.DataFrame({"a": a, "b": b, "c0": c[:, 0], "c1": c[:, 1]})
    scm = ds.DeepSCM("a -> b; a -> c; b -> c", mechanisms="diffusion",
                     variables={"c": ["c0", "c1"]})
    scm.fit(df, seed=0, epochs=5, batch_size=100, device="cpu", progress=False)
    assert {type(m) for m in scm.mechanisms.values()} == {Diffusion}
    for name, mech in scm.mechanisms.items():
        assert mech.hparams["steps"] == 100 and mech.hparams["hidden_features"] == [64, 128]
        assert scm.fit_info["validation"][name]["metric"] == "denoising_mse"
        assert 0 < scm.fit_info["abduction_error"][name]["max"] <= mech.abduction_tolerance, name
    assert scm.fit_info["val_log_prob"] == {}
    with pytest.raises(DataError, match="no tractable likelihood"):
        scm.log_prob(df)
    cf = scm.counterfactual(df.head(10), do={"a": 0.5}, seed=1)
    assert {cf.attrs["abduction"][k] for k in ("b", "c0", "c1")} == {"approximate"}
    np.testing.assert_array_equal(cf["a"], 0.5)
    scm.save(tmp_path / "model")
    loaded = ds.DeepSCM.load(tmp_path / "model")
    for mech in loaded.mechanisms.values():
        assert type(mech) is Diffusion
    assert loaded.fit_info["abduction_error"] == scm.fit_info["abduction_error"]
    pd.testing.assert_frame_equal(loaded.sample(30, seed=2), scm.sample(30, seed=2))
    pd.testing.assert_frame_equal(
        loaded.counterfactual(df.head(10), do={"a": 0.5}, seed=1), cf, check_like=False
    )


def test_a_round_trip_beyond_the_tolerance_warns():
    """Plain inversion on a 2-step grid cannot meet the tabular tolerance: the fit says so."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=300)
    df = pd.DataFrame({"a": a, "b": np.sin(2 * a) + 0.3 * rng.normal(size=300)})
    scm = ds.DeepSCM("a -> b", mechanisms={"b": Diffusion(steps=10, inference_steps=2, refine=0)})
    with pytest.warns(ds.AbductionWarning, match=r"'b': .* > 0.01.*inference_steps"):
        scm.fit(df, seed=0, epochs=3, batch_size=100, device="cpu", progress=False)
    assert scm.fit_info["abduction_error"]["b"]["max"] > scm.mechanisms["b"].abduction_tolerance


def test_aliases_and_hyper_parameters():
    for alias in ("diffusion", "ddim", "dcm", "Diffusion"):
        assert ds.mechanisms.registry.resolve(alias) is Diffusion
    mech = Diffusion()
    assert mech.hparams == {"steps": 100, "beta_start": 1e-4, "beta_end": 0.1,
                                "hidden_features": [64, 128], "time_frequencies": 4,
                                "inference_steps": None, "refine": 4, "ema_decay": 0.995,
                                "unet_channels": [16, 32, 64], "max_batch_size": 128}
    assert mech.abduction == "approximate" and mech.likelihood == "none"
    assert mech.handles == frozenset({"continuous", "image"})
    bad = [{"steps": 0}, {"beta_start": 0.0}, {"beta_end": 1.0}, {"beta_start": 0.2},
           {"inference_steps": 0}, {"inference_steps": 101}, {"refine": -1},
           {"refine": 1.5}, {"time_frequencies": -2}, {"hidden_features": [0]},
           {"ema_decay": 1.0}, {"ema_decay": -0.1}, {"unet_channels": []},
           {"unet_channels": [8, 0]}, {"max_batch_size": 0}, {"max_batch_size": 2.5}]
    for kwargs in bad:
        with pytest.raises(ConfigError):
            Diffusion(**kwargs)
    fewer = Diffusion(inference_steps=10)
    fewer.build(MechanismSpec(1, 0))
    assert fewer.grid() == list(range(0, 101, 10))


def test_a_large_mini_batch_is_trained_in_slices():
    """``max_batch_size=m``: one Adam step (and one average update) per ``m`` rows of a fit
    mini-batch; ``None`` takes one step for the whole batch."""
    x, ctx = torch.randn(300, 1), torch.randn(300, 1)
    for size, steps in ((128, 3), (None, 1), (300, 1)):
        mech = Diffusion(max_batch_size=size)
        mech.build(MechanismSpec(1, 1))
        (opt,) = mech.configure_optimizers(1e-3)
        mech.train()
        mech.training_step(x, ctx, [opt], torch.Generator().manual_seed(0))
        assert int(mech.ema_updates) == steps
        assert opt.state[next(mech.eps_net.parameters())]["step"] == steps


def test_ema_weights_are_used_outside_training_and_saved(tmp_path):
    df, _ = monotone(300, 4)
    scm = ds.DeepSCM("x1 -> x2", mechanisms={"x1": ds.mechanisms.AdditiveNoise((4,)),
                                             "x2": Diffusion(steps=10, ema_decay=0.9)})
    scm.fit(df, seed=0, epochs=3, batch_size=50, device="cpu", progress=False)
    mech = scm.mechanisms["x2"]
    live, ema = mech.eps_net[0].weight, mech.ema_net[0].weight
    assert not torch.equal(live, ema) and not ema.requires_grad
    x, ctx = torch.zeros(4, 1), torch.zeros(4, 1)
    with torch.no_grad():
        mech.eval()
        at_eval = mech.epsilon(x, 5, ctx)
        mech.train()
        at_train = mech.epsilon(x, 5, ctx)
        mech.eval()
    assert not torch.equal(at_eval, at_train)
    scm.save(tmp_path / "model")
    loaded = ds.DeepSCM.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.sample(20, seed=3), scm.sample(20, seed=3))
