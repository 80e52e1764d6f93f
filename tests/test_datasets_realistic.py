"""Tests of the realistic, physical-unit ground-truth SCMs (deepscm.datasets.realistic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepscm
from deepscm.datasets import list_scms, load_scm

NAMES = list_scms("realistic")

#: 1st-99th percentile ranges stated in each SCM's docstring (a small margin added for
#: sampling error), per continuous node.
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "realistic_clinical": {
        "age": (22, 87), "bmi": (16, 36), "sbp": (90, 172), "ldl": (100, 275),
        "dose": (10, 100), "sbp_treated": (80, 156), "risk": (0.2, 80),
    },
    "realistic_economics": {
        "education": (9, 22), "experience": (2, 31), "hours": (22, 65), "income": (22, 300),
        "savings": (0.5, 750),
    },
    "realistic_environment": {
        "altitude": (70, 3200), "temperature": (6, 30), "pressure": (690, 1010),
        "humidity": (14, 96), "rainfall": (2.5, 480), "soil_moisture": (9, 48),
        "growth": (15, 150),
    },
    "realistic_pharmacokinetic": {
        "age": (22, 87), "weight": (45, 107), "creatinine": (48, 160), "crcl": (33, 210),
        "dose": (400, 2500), "auc": (280, 960), "response": (6, 100),
        "creatinine_rise": (0.5, 38),
    },
}


#: nodes that may physically be <= 0 (every other continuous node is positive).
SIGNED = {("realistic_environment", "temperature")}


def _continuous(scm) -> list[str]:
    return [v for v in scm.nodes if v not in scm.categorical]


def test_registry_has_four_realistic_scms_of_6_to_12_nodes():
    assert NAMES == list(RANGES)
    assert set(NAMES) <= set(list_scms())
    families = {}
    for name in NAMES:
        scm = load_scm(name)
        assert 6 <= len(scm.nodes) <= 12
        assert scm.invertible and not scm.additive
        assert scm.family in scm.description
        families[name] = scm.family
    assert families["realistic_economics"] == "mixed"
    assert load_scm("realistic_economics").categorical == {
        "sector": ["public", "private", "self-employed"]}
    assert all(not load_scm(n).categorical for n in NAMES if n != "realistic_economics")


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_finite_and_physical(name):
    scm = load_scm(name)
    data = scm.sample(20_000, seed=0)
    for v, (low, high) in RANGES[name].items():
        x = data[v].to_numpy()
        assert np.isfinite(x).all(), v
        assert (name, v) in SIGNED or (x > 0).all(), v
        q01, q99 = np.quantile(x, [0.01, 0.99])
        assert low <= q01 and q99 <= high, (v, q01, q99)
    assert set(RANGES[name]) == set(_continuous(scm))


@pytest.mark.parametrize("name", NAMES)
def test_abduction_inverts_every_mechanism(name):
    scm = load_scm(name)
    data, noise = scm.sample(2000, seed=1, return_noise=True)
    u = scm.abduct(data)
    cont = _continuous(scm)
    np.testing.assert_allclose(u[cont].to_numpy(), noise[cont].to_numpy(), rtol=1e-8, atol=1e-10)
    # inverse ∘ f = identity on the data side too (categorical roots by their noise interval)
    pd.testing.assert_frame_equal(scm.from_noise(u), data, check_exact=False, rtol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_counterfactuals_from_abducted_noise_equal_those_from_true_noise(name):
    scm = load_scm(name)
    data, noise = scm.sample(500, seed=2, return_noise=True)
    ref = scm.sample(2000, seed=3)
    for node in scm.intervention_nodes:
        if node in scm.categorical:
            dos = [{node: label} for label in scm.categorical[node]]
        else:
            q10, q90 = np.quantile(ref[node], [0.1, 0.9])
            dos = [{node: float(q10)}, {node: float(q90)}, {node: lambda t: t * 1.1}]
        for do in dos:
            pd.testing.assert_frame_equal(
                scm.counterfactual(data, do), scm.counterfactual(data, do, noise=noise),
                check_exact=False, rtol=1e-8, atol=1e-8,
            )


@pytest.mark.parametrize("name", NAMES)
def test_an_intervention_changes_exactly_the_descendants(name):
    scm = load_scm(name)
    data, noise = scm.sample(300, seed=4, return_noise=True)
    for node in scm.intervention_nodes:
        if node in scm.categorical:
            do = {node: scm.categorical[node][0]}
            moved = data[node] != scm.categorical[node][0]
        else:
            do = {node: lambda t: t * 1.1}
            moved = pd.Series(True, index=data.index)
        out = scm.from_noise(noise, do)
        downstream = set(scm.descendants(node))
        for v in scm.nodes:
            if v == node or v not in downstream:
                if v != node:
                    pd.testing.assert_series_equal(out[v], data[v])
                continue
            changed = ~np.isclose(out[v].to_numpy(float), data[v].to_numpy(float),
                                  rtol=1e-12, atol=0)
            # every moved unit changes (a categorical root: those whose label was not kept)
            assert changed[moved.to_numpy()].all(), (node, v)
            assert not changed[~moved.to_numpy()].any(), (node, v)


def test_pharmacokinetic_dose_interventions_reach_beyond_the_observed_auc():
    scm = load_scm("realistic_pharmacokinetic")
    obs = scm.sample(5000, seed=5)
    units, noise = scm.sample(1000, seed=6, return_noise=True)
    q10, q90 = np.quantile(obs["dose"], [0.1, 0.9])
    low, high = obs["auc"].min(), obs["auc"].max()
    for value in (q10, q90):
        cf = scm.counterfactual(units, {"dose": value}, noise=noise)
        # auc is exactly linear in the dose, unit by unit
        np.testing.assert_allclose(cf["auc"], units["auc"] * value / units["dose"], rtol=1e-12)
        outside = ((cf["auc"] < low) | (cf["auc"] > high)).mean()
        assert outside > 0.1, outside
    # dosing on clearance: dose and crcl are nearly collinear in the observed data
    assert np.corrcoef(np.log(obs["dose"]), np.log(obs["crcl"]))[0, 1] > 0.8


def test_economics_sector_is_an_abductable_categorical_root():
    scm = load_scm("realistic_economics")
    data, noise = scm.sample(2000, seed=7, return_noise=True)
    assert isinstance(data["sector"].dtype, pd.CategoricalDtype)
    share = data["sector"].value_counts(normalize=True)
    np.testing.assert_allclose(share[["public", "private", "self-employed"]],
                               [0.22, 0.63, 0.15], atol=0.03)
    u = scm.abduct(data)
    assert ((u["sector"] > 0) & (u["sector"] < 1)).all()
    cf = scm.counterfactual(data, {"sector": "self-employed"})
    pd.testing.assert_frame_equal(
        cf, scm.counterfactual(data, {"sector": "self-employed"}, noise=noise),
        check_exact=False, rtol=1e-8)
    assert (cf["sector"] == "self-employed").all()


@pytest.mark.parametrize("name", NAMES)
def test_deepscm_fits_and_infers_the_kinds(name):
    scm = load_scm(name)
    data = scm.sample(300, seed=8)
    model = deepscm.DeepSCM(scm.graph).fit(data, epochs=2, progress=False)
    kinds = {v: model.schema[v].kind for v in scm.nodes}
    assert kinds == {v: "categorical" if v in scm.categorical else "continuous"
                     for v in scm.nodes}
    assert model.sample(50, seed=0).shape == (50, len(scm.nodes))
