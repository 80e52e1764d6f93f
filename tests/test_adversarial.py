"""The adversarial mechanism (issue 13, item 3): ``x = G(pa, z)`` trained by WGAN-GP, with
encoder-plus-refinement abduction, checked on ``x := 2·pa + 0.5·u`` against the analytic
interventional and counterfactual answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import deepscm as ds
from deepscm.errors import ConfigError
from deepscm.mechanisms import registry
from deepscm.mechanisms.adversarial import Adversarial, energy_distance
from deepscm.mechanisms.base import MechanismSpec
from deepscm.scm import engine

SLOPE, SD = 2.0, 0.5
#: small networks: the suite runs on one shared CPU core.
TINY = dict(hidden_features=(16,), critic_features=(32, 32), encoder_features=(16,))
#: |E[x | do(pa=1)] − 2| and |sd(x | do(pa=1)) − 0.5| (x's sd ≈ 2.06). Measured on this fit
#: with seeds 0 / 1 / 2: 0.011 / 0.039 / 0.022 and 0.065 / 0.154 / 0.105 (the fitted sd runs
#: high); the test uses seed 0.
MEAN_TOL, SD_TOL = 0.2, 0.2
#: mean |x_cf − (x + 2·(1 − pa))| of counterfactuals under do(pa=1); measured 0.049 / 0.058
#: / 0.080 with seeds 0 / 1 / 2.
CF_TOL = 0.15


def linear_data(n: int = 1000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pa = rng.normal(size=n)
    return pd.DataFrame({"pa": pa, "x": SLOPE * pa + SD * rng.normal(size=n)})


def fit_linear(mech: Adversarial, n: int = 1000, epochs: int = 25, seed: int = 0) -> ds.DeepSCM:
    scm = ds.DeepSCM("pa -> x", mechanisms={"pa": ds.mechanisms.AdditiveNoise((4,)), "x": mech})
    scm.fit(linear_data(n), epochs=epochs, batch_size=128, seed=seed, device="cpu", progress=False)
    return scm


def test_registered_under_its_aliases():
    assert registry.REGISTRY["Adversarial"] is Adversarial
    assert type(registry.make("gan")) is Adversarial


@pytest.fixture(scope="module")
def fitted() -> ds.DeepSCM:
    return fit_linear(Adversarial(**TINY))


def tensors(scm: ds.DeepSCM, df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    values = engine.encode(scm, df)
    return values["x"], engine.context(scm, "x", values, len(df))


def test_capabilities():
    assert Adversarial.abduction == "approximate" and Adversarial.likelihood == "none"
    assert Adversarial.abduction_tolerance > 0
    assert Adversarial.validation_metric == "energy_distance"


def test_interventional_mean_and_sd(fitted):
    sample = fitted.sample(4000, do={"pa": 1.0}, seed=13)["x"]
    mean, sd = float(sample.mean()), float(sample.std())
    assert abs(mean - SLOPE) < MEAN_TOL, f"E[x | do(pa=1)] = {mean:.3f}, truth 2"
    assert abs(sd - SD) < SD_TOL, f"sd(x | do(pa=1)) = {sd:.3f}, truth 0.5"


def test_counterfactuals_keep_the_noise(fitted):
    units = linear_data().head(200)
    cf = fitted.counterfactual(units, do={"pa": 1.0}, seed=14)
    gap = float((cf["x"] - (units["x"] + SLOPE * (1.0 - units["pa"]))).abs().mean())
    assert gap < CF_TOL
    assert cf.attrs["abduction"]["x"] == "approximate"


def test_abduction_round_trip_within_the_tolerance(fitted):
    mech = fitted.mechanisms["x"]
    x, ctx = tensors(fitted, linear_data())
    with torch.no_grad():
        error = float((mech.sample(ctx, mech.abduct(x, ctx)) - x).abs().max())
        encoder_only = float((mech.sample(ctx, mech.encode(x, ctx)) - x).abs().max())
    assert error <= mech.abduction_tolerance
    assert error < encoder_only  # the refinement does the work the encoder leaves
    reported = fitted.fit_info["abduction_error"]["x"]
    assert 0 < reported["mean"] <= reported["max"] <= mech.abduction_tolerance


def test_vector_node_round_trip_and_shapes():
    rng = np.random.default_rng(0)
    pa = rng.normal(size=400)
    e = 0.3 * rng.normal(size=(400, 2))
    df = pd.DataFrame({"pa": pa, "x0": pa + e[:, 0], "x1": pa ** 2 - pa + e[:, 1]})
    mech = Adversarial(**TINY, noise_dim=None)
    scm = ds.DeepSCM("pa -> x", mechanisms={"pa": ds.mechanisms.AdditiveNoise((4,)), "x": mech},
                     variables={"x": ["x0", "x1"]})
    scm.fit(df, epochs=10, batch_size=100, seed=0, device="cpu", progress=False)
    mech = scm.mechanisms["x"]  # the fitted copy
    x, ctx = tensors(scm, df)
    with torch.no_grad():
        u = mech.abduct(x, ctx)
        assert u.shape == (400, 2)
        assert float((mech.sample(ctx, u) - x).abs().max()) <= mech.abduction_tolerance


def test_same_seed_same_numbers(fitted):
    mech = fitted.mechanisms["x"]
    x, ctx = tensors(fitted, linear_data().head(64))
    with torch.no_grad():
        assert torch.equal(mech.abduct(x, ctx), mech.abduct(x, ctx))
        assert torch.equal(mech.validation_score(x, ctx), mech.validation_score(x, ctx))
    pd.testing.assert_frame_equal(fitted.sample(50, seed=3), fitted.sample(50, seed=3))
    first = fit_linear(Adversarial(**TINY), n=200, epochs=2, seed=5).sample(30, seed=8)
    second = fit_linear(Adversarial(**TINY), n=200, epochs=2, seed=5).sample(30, seed=8)
    pd.testing.assert_frame_equal(first, second)


def test_save_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = ds.DeepSCM.load(tmp_path / "model")
    assert type(loaded.mechanisms["x"]) is Adversarial
    assert loaded.mechanisms["x"].hparams == fitted.mechanisms["x"].hparams
    pd.testing.assert_frame_equal(loaded.sample(60, seed=9), fitted.sample(60, seed=9))
    units = linear_data().head(20)
    pd.testing.assert_frame_equal(loaded.counterfactual(units, do={"pa": 0.5}, seed=10),
                                  fitted.counterfactual(units, do={"pa": 0.5}, seed=10))


def test_energy_distance_is_zero_on_equal_samples_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 2, generator=g)
    assert float(energy_distance(a, a)) == pytest.approx(0.0, abs=1e-5)
    near, far = energy_distance(a, a + 0.1), energy_distance(a, a + 1.0)
    assert 0 < float(near) < float(far)


@pytest.mark.parametrize("kwargs", [
    dict(critic_steps=0), dict(gp_weight=-1.0), dict(noise_dim=0), dict(refine=-1),
    dict(hidden_features=[2.5]), dict(critic_features=[]), dict(latent_weight="abc"),
])
def test_bad_hyper_parameters_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        Adversarial(**kwargs)


# ---------------------------------------------------------------------- ALI/BiGAN encoder
#: ``encoder_training="ali"`` with the default cycle weights (ALICE) on the fit of
#: ``fit_linear`` with ALI_EPOCHS epochs on ALI_ROWS rows. Measured on one CPU with seeds
#: 0 / 1 / 2 at 1,000 rows: corr(E(x, pa), u) 0.991 / 0.981 / 0.970; max round trip after
#: refinement 0.0000 (all three); |E[x | do(pa=1)] − 2| 0.038 / 0.051 / 0.095; mean
#: |x_cf − truth| 0.075 / 0.095 / 0.129. On an AVX-512 CPU the same fits gave mean
#: |x_cf − truth| 0.174 / 0.103 / 0.134 / 0.188 / 0.215 for seeds 0–4: at 1,000 rows the
#: generator's accuracy is a draw. At 2,000 rows: 0.054 / 0.058 / 0.077 / 0.072 / 0.191, with
#: |E[x | do(pa=1)] − 2| 0.007 / 0.073 / 0.120 / 0.017 / 0.063.
#: Plain ALI (both weights 0) at this size is unreliable — corr 0.18 / 0.87 / 0.97, round trip
#: 0.49 / 0.00 / 0.41 — so it is only checked for where its gradient goes.
ALI_EPOCHS, ALI_ROWS = 15, 2000


@pytest.fixture(scope="module")
def fitted_ali() -> ds.DeepSCM:
    return fit_linear(Adversarial(**TINY, encoder_training="ali"), n=ALI_ROWS, epochs=ALI_EPOCHS)


def test_ali_critic_reads_pairs_and_the_encoder_inverts(fitted_ali):
    mech = fitted_ali.mechanisms["x"]
    assert mech.hparams["encoder_training"] == "ali"
    assert mech.critic[0].in_features == 1 + 1 + mech.noise_dim  # (x, pa, z)
    rng = np.random.default_rng(1)  # linear_data's draws: pa, then the noise u
    rng.normal(size=1000)
    u = rng.normal(size=1000)
    x, ctx = tensors(fitted_ali, linear_data())
    with torch.no_grad():
        code = mech.encode(x, ctx)[:, 0].numpy()
        error = float((mech.sample(ctx, mech.abduct(x, ctx)) - x).abs().max())
    # the encoder starts as E = x, whose correlation with u is 0.5 / 2.06 ≈ 0.24
    assert abs(np.corrcoef(code, u)[0, 1]) > 0.9
    assert error <= mech.abduction_tolerance
    sample = fitted_ali.sample(4000, do={"pa": 1.0}, seed=13)["x"]
    assert abs(float(sample.mean()) - SLOPE) < MEAN_TOL
    units = linear_data().head(200)
    cf = fitted_ali.counterfactual(units, do={"pa": 1.0}, seed=14)
    assert float((cf["x"] - (units["x"] + SLOPE * (1.0 - units["pa"]))).abs().mean()) < CF_TOL


def test_plain_ali_trains_the_encoder_through_the_pair_critic():
    """Without cycle terms the encoder's only signal is the critic: in ``"ali"`` mode the
    generator loss reaches it, in ``"cycle"`` mode (the critic sees no code) it cannot."""
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(64, 1, generator=g)
    x = SLOPE * ctx + SD * torch.randn(64, 1, generator=g)
    for mode, reaches in (("ali", True), ("cycle", False)):
        torch.manual_seed(0)
        mech = Adversarial(**TINY, encoder_training=mode, reconstruction_weight=0.0, latent_weight=0.0)
        mech.build(MechanismSpec(x_dim=1, context_dim=1))
        mech.generator_loss(x, ctx, g).backward()
        grads = [p.grad for p in mech.encoder_net.parameters()]
        assert any(grad is not None and float(grad.abs().sum()) > 0 for grad in grads) is reaches, mode


def test_ali_save_load_round_trip(fitted_ali, tmp_path):
    fitted_ali.save(tmp_path / "ali")
    loaded = ds.DeepSCM.load(tmp_path / "ali")
    assert loaded.mechanisms["x"].hparams == fitted_ali.mechanisms["x"].hparams
    units = linear_data().head(20)
    pd.testing.assert_frame_equal(loaded.counterfactual(units, do={"pa": 0.5}, seed=10),
                                  fitted_ali.counterfactual(units, do={"pa": 0.5}, seed=10))


def test_unknown_encoder_training_is_a_config_error():
    with pytest.raises(ConfigError, match="encoder_training"):
        Adversarial(encoder_training="bigan")
