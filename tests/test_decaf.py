"""DECAF (van Breugel et al. 2021): per-node generators with one joint critic reproduce a small
mixed SCM, FTU generation removes the direct effect, files round-trip, bad input is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepscm.errors import ConfigError, DataError, GraphError, ModelFileError, NotFittedError
from deepscm.fairness import debiased_data, fairness_edges, fit_classifier, ftu
from deepscm.models.decaf import DECAF

GRAPH = "s -> m; s -> y; m -> y"
#: small networks and a short fit: the suite runs on one shared CPU core.
TINY = dict(hidden_features=(32,), critic_features=(64, 64), noise_dim=2)
#: the fixture's fit: 2,000 rows, 40 epochs of batches of 128, n_critic = 2, lr = 2e-3. Its
#: errors against the truth, measured with fit seeds 0 / 1 / 2 (the test uses 0):
#: P(s=1) 0.021 / 0.068 / 0.011, mean(m) 0.087 / 0.164 / 0.107, sd(m) 0.015 / 0.069 / 0.109,
#: P(y=1) 0.045 / 0.033 / 0.059, E[m|s] gap 0.089 / 0.107 / 0.109, P(y|s) gap 0.095 / 0.048 /
#: 0.094; FTU of a classifier on FTU data 0.0017 / 0.0096 / 0.0005 (0.355 / 0.362 / 0.356 on
#: the unedited model's data); DP gap of DP data 0.000 / 0.005 / 0.004.
FIT = dict(epochs=40, batch_size=128, lr=2e-3)


def scm_data(n: int, seed: int) -> pd.DataFrame:
    """s ~ Bernoulli(0.5); m := s + N(0, 1); y ~ Bernoulli(sigmoid(−1 + 1.5 s + m))."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, n)
    m = s + rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1 + 1.5 * s + m)))).astype(np.int64)
    return pd.DataFrame({"s": s, "m": m, "y": y})


def truth(n: int = 400_000) -> pd.DataFrame:
    return scm_data(n, 99)


@pytest.fixture(scope="module")
def fitted() -> DECAF:
    return DECAF(GRAPH, **TINY, critic_steps=2).fit(scm_data(2000, 0), **FIT, seed=0, progress=False)


def test_reproduces_marginals_and_relations(fitted: DECAF) -> None:
    gen, true = fitted.sample(20_000, seed=1), truth()
    assert list(gen.columns) == ["s", "m", "y"]
    assert gen["s"].dtype == np.int64 and set(gen["y"].unique()) == {0, 1}
    # sampling error at n = 20,000 is ~0.01; the bounds are ~1.5x the worst of three fit
    # seeds (FIT), far below what a model without the relations would miss by (1 and 0.47)
    assert abs(gen.s.mean() - 0.5) < 0.1
    assert abs(gen.m.mean() - true.m.mean()) < 0.25  # truth 0.5
    assert abs(gen.m.std() - true.m.std()) < 0.2  # truth √1.25 ≈ 1.12
    assert abs(gen.y.mean() - true.y.mean()) < 0.1
    # the relations: E[m | s=1] − E[m | s=0] = 1; P(y=1 | s=1) − P(y=1 | s=0) ≈ 0.47
    gap = lambda f, c: f.groupby("s")[c].mean().diff().iloc[-1]  # noqa: E731
    assert abs(gap(gen, "m") - 1.0) < 0.2
    assert abs(gap(gen, "y") - gap(true, "y")) < 0.15


def test_ftu_generation_removes_the_direct_effect(fitted: DECAF) -> None:
    base = fitted.sample(20_000, seed=2)
    fair = debiased_data(fitted, "s", "y", level="ftu", n=20_000, seed=2)
    assert fair.attrs["removed_edges"] == [("s", "y")]
    pd.testing.assert_frame_equal(fair, fitted.sample(20_000, seed=2, without_edges=[("s", "y")]))
    # only y is regenerated: the other columns are the unedited sample of the same seed
    pd.testing.assert_frame_equal(fair[["s", "m"]], base[["s", "m"]])
    # flip test: a classifier trained on the generated rows changes its prediction by
    # mean |Δp̂| when s is flipped with m fixed: 0.36 on the unedited model's rows (measured,
    # FIT), 0 in the limit without the edge (sampling error of the fitted coefficient at
    # n = 20,000: ≲ 0.01; measured ≤ 0.0096)
    test = scm_data(5000, 3)
    assert ftu(fit_classifier(base, "y"), test, "s") > 0.2
    assert ftu(fit_classifier(fair, "y"), test, "s") < 0.02
    # the mediated path s -> m -> y is kept: y still rises with m
    assert fair.groupby(pd.cut(fair.m, [-np.inf, 0, np.inf]), observed=True).y.mean().diff().iloc[-1] > 0.2


def test_dp_generation_makes_the_outcome_independent(fitted: DECAF) -> None:
    fair = debiased_data(fitted, "s", "y", level="dp", n=20_000, seed=4)
    assert sorted(fair.attrs["removed_edges"]) == sorted(fairness_edges(GRAPH, "s", "y", "dp"))
    rates = fair.groupby("s").y.mean()
    assert abs(rates[1] - rates[0]) < 0.03  # independent by construction; s.e. ≈ 0.007


def test_save_load_round_trip_and_same_seed(fitted: DECAF, tmp_path) -> None:
    fitted.save(tmp_path / "decaf")
    loaded = DECAF.load(tmp_path / "decaf")
    assert loaded.hparams == fitted.hparams and loaded.columns == fitted.columns
    pd.testing.assert_frame_equal(loaded.sample(500, seed=5), fitted.sample(500, seed=5))
    edges = [("s", "y"), ("m", "y")]
    pd.testing.assert_frame_equal(loaded.sample(500, seed=6, without_edges=edges),
                                  fitted.sample(500, seed=6, without_edges=edges))
    assert not fitted.sample(500, seed=5).equals(fitted.sample(500, seed=7))
    small = scm_data(200, 1)
    first = DECAF(GRAPH, **TINY).fit(small, epochs=2, seed=3, progress=False).sample(50, seed=1)
    second = DECAF(GRAPH, **TINY).fit(small, epochs=2, seed=3, progress=False).sample(50, seed=1)
    pd.testing.assert_frame_equal(first, second)
    with pytest.raises(ModelFileError):
        DECAF.load(tmp_path / "nothing-here")


def test_bad_input_is_refused_clearly(fitted: DECAF) -> None:
    with pytest.raises(GraphError, match="no such edge"):
        fitted.sample(10, seed=0, without_edges=[("y", "s")])
    with pytest.raises(GraphError, match="not node"):
        fitted.sample(10, seed=0, without_edges=[("sex", "y")])
    with pytest.raises(GraphError, match="pairs"):
        fitted.sample(10, seed=0, without_edges="s -> y")
    data = scm_data(100, 0)
    with pytest.raises(DataError, match="not nodes of the graph"):
        DECAF(GRAPH).fit(data.assign(extra=1.0), epochs=1, progress=False)
    with pytest.raises(DataError, match="lack the graph node"):
        DECAF(GRAPH).fit(data.drop(columns="m"), epochs=1, progress=False)
    with pytest.raises(DataError, match="NaN"):
        DECAF(GRAPH).fit(data.assign(m=data.m.where(data.index != 3)), epochs=1, progress=False)
    with pytest.raises(DataError, match="distinct values"):
        DECAF(GRAPH).fit(data.assign(m=np.arange(100)), epochs=1, progress=False)
    with pytest.raises(NotFittedError):
        DECAF(GRAPH).sample(10)
    with pytest.raises(NotFittedError):
        debiased_data(DECAF(GRAPH), "s", "y")
    with pytest.raises(GraphError, match="latent confounders"):
        DECAF("s -> y; s <-> y")
    for kwargs in (dict(critic_steps=0), dict(gp_weight=-1.0), dict(temperature=0), dict(critic_features=[])):
        with pytest.raises(ConfigError):
            DECAF(GRAPH, **kwargs)
    with pytest.raises(ConfigError):
        debiased_data(object(), "s", "y")


def test_l1_regulariser_adds_rho_times_the_parent_weights(fitted: DECAF) -> None:
    """DECAF's ℓ1 term: ρ·Σ_i ‖W_i^pa‖₁ over the first-layer weights that read the parents
    (not the noise), on top of the same adversarial loss for the same noise."""
    import torch

    plain = fitted._generator_loss(64, torch.Generator().manual_seed(0))
    fitted.hparams["l1_weight"] = 0.5
    try:
        penalised = fitted._generator_loss(64, torch.Generator().manual_seed(0))
    finally:
        fitted.hparams["l1_weight"] = 0.0
    k = fitted.hparams["noise_dim"]
    weights = {v: fitted.generators.nets[v][0].weight.detach() for v in fitted.nodes}
    expected = sum(float(w[:, : w.shape[1] - k].abs().sum()) for w in weights.values())
    assert weights["s"].shape[1] == k  # a root reads only its noise: no parent weights
    assert float((penalised - plain).detach()) == pytest.approx(0.5 * expected, rel=1e-5)
