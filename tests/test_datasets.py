"""Tests of the ground-truth SCM suite (deepscm.datasets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepscm.datasets import FAMILIES, KINDS, GroundTruthSCM, list_scms, load_scm, suite
from deepscm.errors import DataError, GraphError

NAMES = list_scms()
INVERTIBLE = [n for n in NAMES if load_scm(n).invertible]
N = 200


def _continuous(scm: GroundTruthSCM) -> list[str]:
    return [v for v in scm.nodes if v not in scm.categorical]


def _assert_same(a: pd.Series, b: pd.Series, exact: bool) -> None:
    if a.dtype == "category" or b.dtype == "category":
        assert np.array_equal(a.to_numpy(dtype=object), b.to_numpy(dtype=object))
    elif exact:
        assert np.array_equal(a.to_numpy(), b.to_numpy())
    else:
        np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------- registry
def test_registry_names_kinds_and_unknown_name():
    assert len(NAMES) == len(set(NAMES)) >= 40
    assert sorted(NAMES) == sorted(n for k in KINDS[1:] for n in list_scms(k))
    assert [s.name for s in suite("vaca")] == list_scms("vaca")
    with pytest.raises(ValueError, match="textbook"):
        load_scm("no_such_scm")
    with pytest.raises(ValueError, match="causal_nf"):
        list_scms("nope")


def test_families_and_published_structures_are_covered():
    scms = suite()
    assert {s.family for s in scms} == set(FAMILIES)
    for family in FAMILIES:
        assert sum(s.family == family for s in scms) >= 3, family
    assert load_scm("dcm_ladder_nonlinear").intervention_nodes == ["x01", "x04"]
    assert load_scm("causal_nf_large_backdoor_nonlinear").intervention_nodes == [
        "x1", "x2", "x3", "x5"]
    assert load_scm("vaca_loan").intervention_nodes == ["x1", "x2", "x4", "x6"]
    assert load_scm("dcm_diamond_nonlinear").intervention_nodes == ["x1", "x2", "x3"]
    assert len(load_scm("dcm_ladder_nonadditive").nodes) == 30


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_consistent(name):
    scm = load_scm(name)
    assert scm.name == name and scm.family in FAMILIES
    assert scm.family in scm.description
    edges = {tuple(e.split(" -> ")) for e in scm.graph.split("; ")}
    assert edges == {(p, v) for v in scm.nodes for p in scm.parents[v]}
    for i, v in enumerate(scm.nodes):  # topological order
        assert all(scm.nodes.index(p) < i for p in scm.parents[v])
    assert set(scm.intervention_nodes) <= set(scm.nodes)


def test_graph_string_parses_with_causal_graph():
    from deepscm.graph import CausalGraph

    scm = load_scm("dcm_ladder_nonlinear")
    g = CausalGraph(scm.graph)
    assert sorted(g.nodes) == sorted(scm.nodes)
    assert sorted(g.parents("x10")) == scm.parents["x10"]


# ---------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("name", NAMES)
def test_sample_shapes_dtypes_and_seeds(name):
    scm = load_scm(name)
    data, noise = scm.sample(N, seed=0, return_noise=True)
    assert list(data.columns) == scm.nodes == list(noise.columns)
    assert data.shape == noise.shape == (N, len(scm.nodes))
    for v in scm.nodes:
        assert noise[v].dtype == np.float64
        if v in scm.categorical:
            assert isinstance(data[v].dtype, pd.CategoricalDtype)
            assert list(data[v].cat.categories) == scm.categorical[v]
        else:
            assert data[v].dtype == np.float64
            assert np.isfinite(data[v]).all()
    again = scm.sample(N, seed=0)
    pd.testing.assert_frame_equal(data, again)
    pd.testing.assert_frame_equal(data, scm.from_noise(noise))
    assert not data[_continuous(scm)].equals(scm.sample(N, seed=1)[_continuous(scm)])


def test_generator_seed_continues_the_stream():
    scm = load_scm("dcm_chain_nonlinear")
    rng = np.random.default_rng(3)
    a, b = scm.sample(50, seed=rng), scm.sample(50, seed=rng)
    assert not a.equals(b)
    pd.testing.assert_frame_equal(a, scm.sample(50, seed=np.random.default_rng(3)))


# ---------------------------------------------------------------------------------- rung 3
def test_textbook_counterfactual_is_exactly_13():
    scm = load_scm("textbook")
    obs = pd.DataFrame({"x1": [2.0], "x2": [4.0]}, index=["unit"])
    assert scm.abduct(obs).loc["unit"].tolist() == [1.0, -2.0]
    cf = scm.counterfactual(obs, do={"x1": 5.0})
    assert cf.loc["unit", "x2"] == 13.0 and cf.loc["unit", "x1"] == 5.0
    assert scm.counterfactual(obs, do={"x1": lambda t: t + 3})["x2"].item() == 13.0


@pytest.mark.parametrize("name", NAMES)
def test_counterfactual_with_true_noise(name):
    scm = load_scm(name)
    data, noise = scm.sample(N, seed=2, return_noise=True)
    data.index = noise.index = pd.RangeIndex(100, 100 + N)
    for node in scm.intervention_nodes:
        value = data[node].iloc[0]  # a label for categorical nodes, a float otherwise
        shift = [] if node in scm.categorical else [{node: lambda t: t + 1.0}]
        for do in [{node: value}, *shift]:
            cf = scm.counterfactual(data, do, noise=noise)
            assert cf.index.equals(data.index) and list(cf.columns) == scm.nodes
            downstream = set(scm.descendants(node))
            expected = scm.from_noise(noise, do)
            for v in scm.nodes:
                if v in downstream or v == node:
                    _assert_same(cf[v], expected[v], exact=False)
                else:
                    _assert_same(cf[v], data[v], exact=True)


@pytest.mark.parametrize("name", INVERTIBLE)
def test_abduction_recovers_the_noise(name):
    scm = load_scm(name)
    data, noise = scm.sample(N, seed=4, return_noise=True)
    u = scm.abduct(data)
    cont = _continuous(scm)
    np.testing.assert_allclose(u[cont].to_numpy(), noise[cont].to_numpy(), rtol=1e-6, atol=1e-8)
    pd.testing.assert_frame_equal(scm.from_noise(u), data, check_exact=False, rtol=1e-8)
    node = scm.intervention_nodes[-1]
    do = {node: data[node].iloc[3]}
    pd.testing.assert_frame_equal(
        scm.counterfactual(data, do), scm.counterfactual(data, do, noise=noise),
        check_exact=False, rtol=1e-6, atol=1e-8,
    )


@pytest.mark.parametrize("name", sorted(set(NAMES) - set(INVERTIBLE)))
def test_non_invertible_abduction_raises_clearly(name):
    scm = load_scm(name)
    with pytest.raises(NotImplementedError, match="noise=true_noise"):
        scm.abduct(scm.sample(10, seed=0))


def test_categorical_root_abduction_is_consistent():
    scm = load_scm("medical_brain")
    data = scm.sample(N, seed=5)
    u = scm.abduct(data)
    assert ((u["sex"] > 0) & (u["sex"] < 1)).all()
    pd.testing.assert_frame_equal(scm.from_noise(u), data, check_exact=False, rtol=1e-8)


def test_mixed_scm_counterfactuals_need_true_noise_only_where_recomputed():
    scm = load_scm("basic_mixed_categorical")
    data, noise = scm.sample(N, seed=6, return_noise=True)
    assert scm.categorical == {"b": [0, 1], "c": ["low", "mid", "high"]}
    assert set(data["c"].unique()) == {"low", "mid", "high"}
    with pytest.raises(NotImplementedError, match="'c'"):
        scm.counterfactual(data, {"z": 1.0})
    cf = scm.counterfactual(data, {"z": 1.0}, noise=noise)
    assert cf["c"].equals(scm.from_noise(noise, {"z": 1.0})["c"])
    # c is recomputed only downstream of z or b; do(y) needs the noise of w alone
    cf_y = scm.counterfactual(data, {"y": 0.0})
    np.testing.assert_allclose(cf_y["w"], scm.from_noise(noise, {"y": 0.0})["w"])
    cf_c = scm.counterfactual(data, {"c": "high"})
    assert (cf_c["c"] == "high").all() and cf_c["b"].equals(data["b"])
    flip = scm.sample(N, seed=6, do={"b": lambda b: 1 - b})
    assert np.array_equal(flip["b"].to_numpy(dtype=int), 1 - data["b"].to_numpy(dtype=int))


def test_interventions_constant_array_and_shift():
    scm = load_scm("dcm_chain_nonlinear")
    data, noise = scm.sample(N, seed=7, return_noise=True)
    shifted = scm.sample(N, seed=7, do={"x1": lambda t: t + 1})
    np.testing.assert_allclose(shifted["x1"], data["x1"] + 1)
    assert not np.allclose(shifted["x3"], data["x3"])
    assert (scm.sample(N, seed=7, do={"x2": 0.5})["x2"] == 0.5).all()
    per_unit = np.linspace(-1, 1, N)
    np.testing.assert_array_equal(scm.from_noise(noise, {"x1": per_unit})["x1"], per_unit)
    # a shift of a node that is itself downstream of another intervention
    cf = scm.counterfactual(data, {"x1": 0.0, "x2": lambda t: t + 1}, noise=noise)
    np.testing.assert_allclose(
        cf["x2"], scm.from_noise(noise, {"x1": 0.0})["x2"] + 1, rtol=1e-12)


def test_input_validation():
    scm = load_scm("medical_brain")
    data, noise = scm.sample(20, seed=0, return_noise=True)
    with pytest.raises(GraphError, match="unknown nodes"):
        scm.sample(5, do={"height": 1.0})
    with pytest.raises(DataError, match="lacks columns"):
        scm.abduct(data.drop(columns="age"))
    with pytest.raises(DataError, match="categories"):
        scm.sample(5, do={"sex": "other"})
    with pytest.raises(DataError, match="same index"):
        scm.counterfactual(data, {"age": 50.0}, noise=noise.iloc[::-1])
    with pytest.raises(ValueError, match="positive integer"):
        scm.sample(0)
    with pytest.raises(DataError, match="NaN"):
        scm.abduct(data.assign(age=np.nan))


def test_medical_scm_magnitudes():
    scm = load_scm("medical_brain")
    data = scm.sample(4000, seed=8)
    assert scm.categorical == {"sex": ["female", "male"]}
    assert data["age"].between(20, 90).all()
    assert 1000 < data["brain_volume"].median() < 1300
    assert data["brain_volume"].quantile([0.01, 0.99]).between(850, 1500).all()
    male = data["sex"] == "male"
    assert data.loc[male, "brain_volume"].mean() > data.loc[~male, "brain_volume"].mean() + 50
    assert data["ventricle_volume"].quantile([0.05, 0.95]).between(10, 90).all()
    old, young = data["age"] > 70, data["age"] < 35
    assert data.loc[old, "ventricle_volume"].median() > 2 * data.loc[young, "ventricle_volume"].median()


# Loose unit-variance check of the DCM divisors. dcm_diamond_nonlinear's x3 has a true std of
# about 3.4 (x3 ~ x1^4 / (2.25 * 1.27) has heavy tails), so the published divisor 1.27 does not
# normalise it; the check documents that instead of hiding it.
@pytest.mark.parametrize("name", [n for n in list_scms("dcm") if "ladder" not in n])
def test_dcm_divisors_give_roughly_unit_variance(name):
    std = load_scm(name).sample(20000, seed=9).std()
    off = {"dcm_diamond_nonlinear": {"x3"}}.get(name, set())
    for v, s in std.items():
        if v in off:
            assert 3.0 < s < 4.0
        else:
            assert 0.3 <= s <= 3.0, (v, s)
