"""The fast sampling/abduction path of a scalar ``ConditionalFlow`` (no zuko objects, closed-form
spline inverse, cached root knots) against zuko's path, which stays the reference and the
training path."""

import numpy as np
import pandas as pd
import pytest
import torch

import deepscm as ds
from deepscm.mechanisms import ConditionalFlow
from deepscm.mechanisms.base import MechanismSpec

TOL = 1e-5  # absolute, standardised units
BOUND = 5.0  # zuko's spline bound


def _flow(context_dim, seed=0, weight_std=0.5, **hparams):
    """A built flow with random weights (not the zero initialisation)."""
    torch.manual_seed(seed)
    mech = ConditionalFlow(**hparams)
    mech.build(MechanismSpec(x_dim=1, context_dim=context_dim))
    with torch.no_grad():
        for p in mech.parameters():
            p.normal_(0.0, weight_std)
    return mech.eval()


def _reference_sample(mech, context, noise):
    with torch.no_grad():
        return mech._transform(context).inv(noise)  # zuko, called directly


def _reference_abduct(mech, context, x):
    with torch.no_grad():
        return mech._transform(context)(x)


def _spline_inputs(mech, context, x):
    """What the first spline sees in abduction: ``(x - μ) / σ`` (zuko's affine inverse)."""
    with torch.no_grad():
        return mech._transform(context).transforms[0](x)


CASES = [
    dict(bins=16, transforms=1),  # the default
    dict(bins=4, transforms=2),
    dict(bins=8, transforms=3, hidden_features=[32]),
    dict(bins=5, transforms=1, hidden_features=[]),
    dict(flow="maf", transforms=2),
]


@pytest.mark.parametrize("context_dim", [0, 1, 3])
@pytest.mark.parametrize("hparams", CASES, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()))
def test_sample_and_abduct_match_zuko(context_dim, hparams):
    mech = _flow(context_dim, seed=context_dim, **hparams)
    n = 5000
    gen = torch.Generator().manual_seed(1)
    context = 2.0 * torch.randn(n, context_dim, generator=gen)
    noise = 3.0 * torch.randn(n, 1, generator=gen)  # ~10% beyond the bound: the linear tails
    assert (noise.abs() > BOUND).float().mean() > 0.05
    assert (noise.abs() < BOUND).float().mean() > 0.5

    with torch.no_grad():
        fast = mech.sample(context, noise)
    ref = _reference_sample(mech, context, noise)
    assert fast.shape == ref.shape == (n, 1)
    assert torch.isfinite(ref).all()
    assert (fast - ref).abs().max().item() <= TOL

    # abduction at the reference samples (inside and outside the bound) and at fresh values
    x = torch.cat([ref, 4.0 * torch.randn(n, 1, generator=gen)])
    ctx2 = torch.cat([context, context])
    inputs = _spline_inputs(mech, ctx2, x)
    assert (inputs.abs() > BOUND).any() and (inputs.abs() < BOUND).any()
    with torch.no_grad():
        fast_u = mech.abduct(x, ctx2)
    ref_u = _reference_abduct(mech, ctx2, x)
    assert torch.isfinite(ref_u).all()
    assert (fast_u - ref_u).abs().max().item() <= TOL
    # the round trip through the fast path is zuko's round trip (float32 rounding included)
    with torch.no_grad():
        back = mech.abduct(fast, context)
    assert (back - _reference_abduct(mech, context, ref)).abs().max().item() <= TOL
    assert torch.median((back - noise).abs()).item() <= 1e-4


@pytest.mark.parametrize("context_dim", [0, 2])
def test_blocks_and_small_batches(context_dim, monkeypatch):
    """Row blocks of the conditioner (a ragged last block, a batch of one) change nothing."""
    import deepscm.mechanisms.flow as flow_module

    monkeypatch.setattr(flow_module, "_BLOCK_ROWS", 7)
    mech = _flow(context_dim, seed=3)
    gen = torch.Generator().manual_seed(2)
    for n in (1, 6, 7, 23):
        context = torch.randn(n, context_dim, generator=gen)
        noise = 3.0 * torch.randn(n, 1, generator=gen)
        with torch.no_grad():
            fast = mech.sample(context, noise)
            fast_u = mech.abduct(fast, context)
        assert (fast - _reference_sample(mech, context, noise)).abs().max() <= TOL
        assert (fast_u - _reference_abduct(mech, context, fast)).abs().max() <= TOL


def test_float64_matches_zuko():
    mech = _flow(2, seed=4).double()
    gen = torch.Generator().manual_seed(3)
    context = torch.randn(500, 2, generator=gen, dtype=torch.float64)
    noise = 3.0 * torch.randn(500, 1, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        fast = mech.sample(context, noise)
    assert fast.dtype == torch.float64
    assert (fast - _reference_sample(mech, context, noise)).abs().max() <= 1e-10


def test_root_knots_are_cached_and_follow_weight_changes():
    mech = _flow(0, seed=5)
    noise = 3.0 * torch.randn(1000, 1, generator=torch.Generator().manual_seed(4))
    context = torch.empty(1000, 0)

    def check():
        with torch.no_grad():
            fast = mech.sample(context, noise)
        assert (fast - _reference_sample(mech, context, noise)).abs().max() <= TOL

    check()
    cached = mech.__dict__["_root_cache"]
    check()
    assert mech.__dict__["_root_cache"] is cached  # unchanged weights: reused
    # an optimiser step (in place, under no_grad)
    opt = torch.optim.SGD(mech.parameters(), lr=0.5)
    mech.train()
    mech.loss(torch.randn(64, 1), torch.empty(64, 0)).backward()
    opt.step()
    mech.eval()
    check()
    assert mech.__dict__["_root_cache"] is not cached
    # load_state_dict, a .data write (which does not bump the version counter), a dtype change
    mech.load_state_dict({"root_params": torch.randn_like(mech.root_params)})
    check()
    mech.root_params.data.copy_(torch.randn_like(mech.root_params))
    check()
    mech.double()
    with torch.no_grad():
        fast = mech.sample(context.double(), noise.double())
    assert (fast - _reference_sample(mech, context.double(), noise.double())).abs().max() <= 1e-10
    # the cache is no state: the state dict holds the weights only
    assert list(mech.state_dict()) == ["root_params"]


def test_gradients_and_log_prob_keep_zukos_path():
    mech = _flow(2, seed=6)
    context, noise = torch.randn(50, 2), torch.randn(50, 1)
    x = mech.sample(context, noise)  # grad enabled: zuko's path, differentiable
    assert x.requires_grad
    x.sum().backward()
    assert mech.shape[0].weight.grad is not None
    with torch.no_grad():
        lp = mech.log_prob(x.detach(), context)
        u, ladj = mech._transform(context).call_and_ladj(x.detach())
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(u).sum(-1) + ladj.sum(-1)
    assert torch.equal(lp, ref)


def _data(n=800, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = np.tanh(a) + 0.3 * rng.standard_t(3, size=n)
    c = a * b + 0.5 * rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c})


GRAPH = "a -> b; a -> c; b -> c"


def _set_fast(scm, flag):
    for mech in scm.mechanisms.values():
        mech._fast = flag


@pytest.fixture(scope="module")
def fitted():
    df = _data()
    scm = ds.DeepSCM(GRAPH, mechanisms=ConditionalFlow()).fit(df, epochs=4, seed=0, progress=False)
    return scm, df


def _assert_close(a, b):
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=0, atol=TOL * 10)


def test_fitted_scm_same_samples_and_counterfactuals(fitted):
    scm, df = fitted
    units = df.head(300)
    outputs = {}
    for flag in (False, True):
        _set_fast(scm, flag)
        outputs[flag] = (
            scm.sample(3000, seed=1),
            scm.sample(3000, do={"a": 2.5}, seed=2),  # b, c beyond their training range
            scm.counterfactual(units, do={"a": -1.0}, seed=3),
            scm.counterfactual(units, do={"b": 4.0}, seed=3),
        )
    _set_fast(scm, True)
    for ref, fast in zip(outputs[False], outputs[True]):
        _assert_close(ref, fast)  # natural units; the data are O(1)


@pytest.mark.parametrize("context_dim", [0, 2])
def test_training_log_density_is_zukos(context_dim):
    """The differentiable fast path (training) gives zuko's log-density bit for bit, and its
    gradients to float32 summation order."""
    torch.manual_seed(0)
    mech = ConditionalFlow(hidden_features=(16, 16), bins=8)
    mech.build(MechanismSpec(1, context_dim))
    for p in mech.parameters():
        torch.nn.init.normal_(p, std=0.3)  # non-trivial splines and location
    x, ctx = 2 * torch.randn(400, 1), torch.randn(400, context_dim)
    values, grads = [], []
    for fast in (True, False):
        mech._fast = fast
        lp = mech.log_prob(x, ctx)
        values.append(lp)
        grads.append(torch.autograd.grad(lp.sum(), list(mech.parameters())))
    assert torch.equal(values[0], values[1])
    for fast_grad, zuko_grad in zip(*grads):
        torch.testing.assert_close(fast_grad, zuko_grad, rtol=1e-5, atol=1e-5 * float(zuko_grad.abs().max()))


def test_training_with_the_fast_path_matches_zukos_path(monkeypatch):
    """Two epochs of fitting with and without the fast path end at the same weights (to the
    float32 round-off the gradients differ by)."""
    df = _data(n=300, seed=1)
    fast = ds.DeepSCM(GRAPH, mechanisms=ConditionalFlow()).fit(df, epochs=2, seed=0, progress=False)
    monkeypatch.setattr(ConditionalFlow, "_fast", False)
    ref = ds.DeepSCM(GRAPH, mechanisms=ConditionalFlow()).fit(df, epochs=2, seed=0, progress=False)
    for node in ("a", "b", "c"):
        a, b = fast.mechanisms[node].state_dict(), ref.mechanisms[node].state_dict()
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_save_load_round_trip(fitted, tmp_path):
    scm, df = fitted
    _set_fast(scm, True)
    scm.sample(100, seed=0)  # fill the root cache before saving
    path = scm.save(tmp_path / "model")
    loaded = ds.DeepSCM.load(path)
    pd.testing.assert_frame_equal(scm.sample(2000, seed=4), loaded.sample(2000, seed=4))
    units = df.head(50)
    pd.testing.assert_frame_equal(
        scm.counterfactual(units, do={"a": 0.5}, seed=5), loaded.counterfactual(units, do={"a": 0.5}, seed=5)
    )
    _set_fast(loaded, False)
    _assert_close(scm.sample(2000, seed=4), loaded.sample(2000, seed=4))
    assert all(not k.startswith("_") for m in loaded.mechanisms.values() for k in m.state_dict())


def test_bfloat16_sampling_is_opt_in_and_scoped():
    """``sampling_precision``: float32 (or None) is the reference path bit for bit; bfloat16
    changes sampling only (abduction stays exact), within bfloat16's precision (8 bits of
    mantissa: ~0.4% relative per product), and the setting is restored on exit."""
    from deepscm.errors import ConfigError
    from deepscm.mechanisms.flow import sampling_precision

    mech = _flow(3, seed=7, weight_std=0.2)
    gen = torch.Generator().manual_seed(8)
    context, noise = torch.randn(4000, 3, generator=gen), torch.randn(4000, 1, generator=gen)
    ref = _reference_sample(mech, context, noise)
    with torch.no_grad():
        with sampling_precision([mech], "float32"):
            same = mech.sample(context, noise)
        with sampling_precision([mech], "bfloat16"):
            assert mech.sampling_dtype is torch.bfloat16
            low = mech.sample(context, noise)
            u = mech.abduct(ref, context)
        after = mech.sample(context, noise)
    assert (same - ref).abs().max().item() <= TOL
    assert torch.equal(after, same) and mech.sampling_dtype is None
    assert (u - _reference_abduct(mech, context, ref)).abs().max().item() <= TOL
    err = (low - ref).abs()
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert 0 < err.median().item() < 0.02 * ref.std().item()  # it did run in bfloat16, closely
    with pytest.raises(ConfigError, match="bfloat16"):
        with sampling_precision([mech], "float16"):
            pass


def test_model_sample_in_bfloat16_by_argument_or_by_block():
    """``DeepSCM.sample(dtype="bfloat16")`` and a surrounding ``sampling_precision`` block give
    the same bf16 draws, different from float32's; ``sample()`` alone keeps the block's setting."""
    from deepscm.datasets import load_scm
    from deepscm.mechanisms.flow import sampling_precision

    truth = load_scm("dcm_triangle_nonlinear")
    scm = ds.DeepSCM(truth.graph, mechanisms="flow").fit(truth.sample(600, seed=0), epochs=2, progress=False)
    full = scm.sample(3000, do={"x1": 0.5}, seed=0)
    by_argument = scm.sample(3000, do={"x1": 0.5}, seed=0, dtype="bfloat16")
    with sampling_precision(scm.mechanisms.values(), "bfloat16"):
        by_block = scm.sample(3000, do={"x1": 0.5}, seed=0)
    assert by_block.equals(by_argument)
    assert (by_block["x3"] - full["x3"]).abs().max() > 0
