"""GAN-NCM (WGAN-GP neural causal model) and the continuous-treatment Sinkhorn bounds.

Fast tests: structure, reproducibility, bad input, a small fit against an exact answer.
Slow tests (``-m slow``): the exact answers of ``deepscm.datasets.confounded_continuous`` with
stated tolerances, modular vs joint training, and the bounds.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import wasserstein_distance

from deepscm.datasets.confounded_continuous import load_confounded_continuous
from deepscm.errors import ConfigError, DataError, GraphError, NotFittedError
from deepscm.graph import CausalGraph
from deepscm.identification.query import QueryError
from deepscm.ncm.continuous_bounds import continuous_bounds, parse_continuous_query, sinkhorn_divergence
from deepscm.ncm.gan import GANNCM, _sorted_w1, training_groups

TINY = dict(hidden=(8,), critic_hidden=(8,))


def _w1(a, b) -> float:
    """scipy's 1-D Wasserstein distance of two samples."""
    return float(wasserstein_distance(np.asarray(a), np.asarray(b)))


pytestmark = pytest.mark.usefixtures("one_thread")


def test_training_groups_merge_components_whose_outside_parents_descend_from_them():
    assert training_groups(CausalGraph("z -> x; x -> y; x <-> y")) == [("z",), ("x", "y")]
    # backdoor: {z, y} has the outside parent x, a child of z: merged with {x}
    assert training_groups(load_confounded_continuous("backdoor").graph) == [("z", "x", "y")]
    # front-door: {x, y} needs m, a child of x
    assert training_groups(CausalGraph("x -> m; m -> y; x <-> y")) == [("x", "m", "y")]
    groups = training_groups(load_confounded_continuous("scalar_beside_block").graph)
    assert ("x",) in groups and ("y",) in groups and ("h1", "h2") in groups and len(groups) == 17


def test_shared_latents_and_groups_of_the_model():
    scm = load_confounded_continuous("iv")
    joint = GANNCM(scm.graph)
    assert joint.components == [("x", "y")] and joint.groups == [("z", "x", "y")]
    assert GANNCM(scm.graph, modular=True).groups == [("z",), ("x", "y")]


def test_tiny_fit_is_reproducible_and_samples_dataframes():
    scm = load_confounded_continuous("iv")
    df = scm.sample(300, seed=1)
    a = GANNCM(scm.graph, seed=3, modular=True, **TINY).fit(df, steps=3, n_critic=1)
    b = GANNCM(scm.graph, seed=3, modular=True, **TINY).fit(df, steps=3, n_critic=1)
    c = GANNCM(scm.graph, seed=4, modular=True, **TINY).fit(df, steps=3, n_critic=1)
    sa = a.sample(50, seed=0)
    assert list(sa.columns) == ["z", "x", "y"] and sa.dtypes.eq(float).all()
    pd.testing.assert_frame_equal(sa, b.sample(50, seed=0))
    assert not sa.equals(c.sample(50, seed=0))
    assert a.ate(n=500) == b.ate(n=500) and a.atd(x=df.x) == b.atd(x=df.x)
    do = a.sample(20, do={"x": np.linspace(-1, 1, 20)}, seed=0)
    np.testing.assert_allclose(do["x"], np.linspace(-1, 1, 20), atol=1e-6)
    assert a.sample(20, do={"x": 0.5})["z"].equals(a.sample(20)["z"])  # z is upstream of x


def test_sorted_w1_is_the_exact_one_dimensional_wasserstein_distance():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 1)), rng.standard_t(3, size=(200, 1)) + 0.5
    got = float(_sorted_w1(torch.tensor(a), torch.tensor(b)))
    assert got == pytest.approx(_w1(a[:, 0], b[:, 0]), rel=1e-12)


def test_modular_root_alone_in_its_group_fits_its_marginal_without_a_critic():
    """On the instrument graph the root ``z`` is a group of one scalar: its generator fits
    the exact 1-D W1 (a WGAN-GP critic let such roots collapse towards their mode), and its
    critic is never trained."""
    scm = load_confounded_continuous("iv")
    df = scm.sample(2000, seed=1)
    ncm = GANNCM(scm.graph, seed=0, modular=True, hidden=(16, 16), critic_hidden=(16, 16))
    ncm._setup(df)
    before = [p.detach().clone() for p in ncm.critics[0].parameters()]
    ncm.fit(df, steps=150, n_critic=2, lr=2e-3)
    z = ncm.sample(20_000, seed=0)["z"]
    assert z.mean() == pytest.approx(df.z.mean(), abs=0.1)
    assert z.std() == pytest.approx(df.z.std(), rel=0.1)
    assert all(torch.equal(p, q) for p, q in zip(before, ncm.critics[0].parameters()))


def _binary_treatment_data(n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = (rng.random(n) < 0.3).astype(int)
    return pd.DataFrame({"t": t, "y": 2 * t + 0.5 * rng.standard_normal(n)})


def test_mixed_data_discrete_node_is_a_gumbel_max_draw():
    ncm = GANNCM("t -> y", seed=0, **TINY).fit(_binary_treatment_data(200), steps=3, n_critic=1)
    assert ncm.categories == {"t": [0, 1]}
    s = ncm.sample(500, seed=1)
    assert set(s["t"].unique()) == {0, 1} and s["t"].dtype.kind == "i"
    assert (ncm.sample(10, do={"t": 1})["t"] == 1).all()
    with torch.no_grad():  # argmax(ℓ + g) with Gumbel g: P(t = k) = softmax(ℓ)_k
        logits = ncm.generators["t"](torch.zeros(1, 1))
    p1 = float(torch.softmax(logits, -1)[0, 1])
    assert s["t"].mean() == pytest.approx(p1, abs=4 * np.sqrt(p1 * (1 - p1) / 500))


def test_small_fit_recovers_a_nonlinear_effect():
    """x -> y with y = tanh(2x) + 0.2ε: E[y | do(x=1)] − E[y | do(x=0)] = tanh(2) = 0.964.

    1,000 steps with the default weight average (ema 0.99): the errors of the ATE and of
    E[y | do(x=−1)] were within 0.09 and 0.07 for seeds 0–4 on an AVX-512 CPU. The 300-step
    last iterate this test used before was within 0.2 on one machine and off by up to 0.51 /
    1.43 over the same seeds on another: a GAN's short fit is a draw, not a result."""
    scm = load_confounded_continuous("scalar_beside_block")
    df = scm.sample(2000, seed=1)[["x", "y"]]
    ncm = GANNCM("x -> y", seed=0, hidden=(16, 16), critic_hidden=(32, 32)).fit(
        df, steps=1000, n_critic=2, lr=3e-3)
    assert ncm.ate() == pytest.approx(np.tanh(2.0), abs=0.2)
    assert ncm.mean_do(-1.0) == pytest.approx(scm.mean_do(-1.0), abs=0.2)


def test_bad_input_is_a_clear_error():
    scm = load_confounded_continuous("bow")
    df = scm.sample(100, seed=0)
    ncm = GANNCM(scm.graph, **TINY)
    with pytest.raises(NotFittedError):
        ncm.sample(5)
    with pytest.raises(DataError, match="no column for node"):
        ncm.fit(df[["x"]], steps=1)
    with pytest.raises(DataError, match="missing values"):
        ncm.fit(df.assign(y=np.nan), steps=1)
    with pytest.raises(DataError, match="constant"):
        ncm.fit(df.assign(y=1.5), steps=1)
    with pytest.raises(ConfigError):
        ncm.fit(df, steps=0)
    with pytest.raises(ConfigError):
        GANNCM(scm.graph, u_dim=0)
    with pytest.raises(GraphError):
        GANNCM("x -> y; y -> x")
    ncm.fit(df, steps=2, n_critic=1)
    with pytest.raises(GraphError):
        ncm.sample(5, do={"w": 1.0})
    with pytest.raises(DataError, match="one value or 5 values"):
        ncm.sample(5, do={"x": [1.0, 2.0]})
    mixed = GANNCM("t -> y", **TINY).fit(pd.DataFrame({"t": [0, 1] * 20, "y": np.arange(40.0)}), steps=1, n_critic=1)
    with pytest.raises(DataError, match="not a category"):
        mixed.sample(3, do={"t": 2})
    with pytest.raises(ConfigError, match="discrete"):
        mixed.atd("t", "y")


def test_sinkhorn_divergence_properties():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g)
    assert abs(float(sinkhorn_divergence(x, x))) < 1e-4
    near, far = float(sinkhorn_divergence(x, y)), float(sinkhorn_divergence(x, y + 1.0))
    assert 0 <= near < 0.1 and far > 10 * near  # 300 vs 300 points: a sampling bias of ~0.05
    # a translation by t: the linear part of ½‖x − y − t‖² integrates to 0, so S_ε = ½‖t‖² = 1 exactly
    assert float(sinkhorn_divergence(x, x + 1.0, iterations=50)) == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ConfigError):
        sinkhorn_divergence(x, y[:, :1])


def test_continuous_query_parsing_and_errors():
    assert parse_continuous_query("atd(x, y)").kind == "atd"
    q = parse_continuous_query("E[y | do(x=0.5)]")
    assert (q.kind, q.treatment, q.outcome, q.value) == ("mean", "x", "y", 0.5)
    with pytest.raises(QueryError):
        parse_continuous_query("p(y | x)")
    scm = load_confounded_continuous("bow")
    with pytest.raises(GraphError):
        continuous_bounds(scm.graph, scm.sample(50, seed=0), "atd(x, w)")


def test_bounds_tiny_run_is_reproducible():
    scm = load_confounded_continuous("iv")
    df = scm.sample(300, seed=1)
    kw = dict(fit_steps=4, search_steps=4, eval_every=2, eval_rows=100, batch_size=64, hidden=(8,))
    a, b = continuous_bounds(scm.graph, df, "ate(x, y)", **kw), continuous_bounds(scm.graph, df, "ate(x, y)", **kw)
    assert (a.lower, a.upper, a.estimate) == (b.lower, b.upper, b.estimate)
    assert a.lower <= a.estimate <= a.upper and a.alpha >= a.fit_divergence


# --------------------------------------------------------------------------- slow: accuracy
# the same data, seeds and sizes as seed 0 of benchmarks/ncm_continuous.py, so the numbers
# are those of benchmarks/results/ncm_continuous.md
FIT = dict(steps=500, n_critic=2, lr=2e-3, batch_size=512)


def _bench_data(name: str):
    scm = load_confounded_continuous(name)
    return scm, scm.sample(2000, seed=1000)


@pytest.mark.slow
def test_modular_gan_ncm_on_the_observed_backdoor_fits_marginals_and_beats_the_joint_ate():
    """Three singleton groups; the root ``z`` alone fits the exact 1-D W1. Measured
    (seed 0 of the benchmark): |ATE error| 0.132 modular vs 0.283 joint (truth 1.142); W1 of
    ``y`` 0.087 vs 0.222; ``z``'s sd right to 2 %."""
    scm, df = _bench_data("backdoor_observed")
    fits = {m: GANNCM(scm.graph, seed=0, modular=m, hidden=(32, 32)).fit(df, **FIT) for m in (False, True)}
    errors = {m: abs(ncm.ate(seed=0) - scm.ate()) for m, ncm in fits.items()}
    assert errors[True] < errors[False]
    sample = fits[True].sample(20_000, seed=0)
    assert sample.z.std() == pytest.approx(df.z.std(), rel=0.1)
    assert _w1(sample.y, df.y) < _w1(fits[False].sample(20_000, seed=0).y, df.y)


@pytest.mark.slow
def test_modular_training_keeps_the_marginals_of_the_scalar_beside_the_block():
    """17 training groups; the root ``x``, alone in its group, fits the exact 1-D W1. Measured
    (seeds 0 / 1 of the benchmark): W1 of ``y`` 0.085 / 0.066 (joint 0.072 / 0.047; with a
    WGAN-GP critic on ``x`` alone it was 0.70 / 0.31, as ``x`` collapsed). The ATE and ATD errors are
    better than the joint fit's at one seed and worse at the other, so no order is claimed."""
    scm, df = _bench_data("scalar_beside_block")
    ncm = GANNCM(scm.graph, seed=0, modular=True, hidden=(32, 32)).fit(df, **FIT)
    sample = ncm.sample(20_000, seed=0)
    assert _w1(sample.y, df.y) < 0.15
    assert sample.x.std() == pytest.approx(df.x.std(), rel=0.1)


@pytest.mark.slow
def test_bounds_contain_truth_on_iv_and_are_narrow_on_an_identified_backdoor():
    kw = dict(seed=0, fit_steps=300, search_steps=200, hidden=(32, 32), lr=2e-3)
    iv, df = _bench_data("iv")
    b = continuous_bounds(iv.graph, df, "atd(x, y)", **kw)
    assert b.contains(iv.atd())
    bd, df = _bench_data("backdoor_observed")
    c = continuous_bounds(bd.graph, df, "atd(x, y)", **kw)
    assert c.contains(bd.atd()) and c.width < 0.6
