"""A tiny run of the Morpho-digits case study (the full one is benchmarks/morpho_dscm.py)."""

from __future__ import annotations

import json

import pytest

from deepscm.studies.morpho import LEARNED_SCALE_VARIANT, MODELS, MorphoSettings, run_morpho_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("morpho")
    settings = MorphoSettings(
        out=str(out), n_train=400, n_test=60, epochs=3, batch_size=100, latent_dim=4,
        channels=(8, 8), hidden=(32,), cf_draws=2, density_samples=150, threads=1, progress=False,
    )
    return run_morpho_study(settings, echo=lambda *_: None), out


def test_study_writes_results_report_and_plots(study):
    results, out = study
    written = sorted(p.name for p in out.iterdir())
    assert written == ["morpho_dscm.json", "morpho_dscm.md", "morpho_dscm_counterfactuals.png",
                       "morpho_dscm_interventions.png"]
    saved = json.loads((out / "morpho_dscm.json").read_text())
    assert set(saved["models"]) == set(MODELS) | {LEARNED_SCALE_VARIANT}
    for metrics in saved["models"].values():
        for key in ("log p(x,t,i) >=", "log p(x|t,i) >=", "log p(t)", "log p(i|t)",
                    "reconstruction MAE", "counterfactual MAE"):
            assert isinstance(metrics[key], float)
    assert "full / independent" in saved["targets"]


def test_independent_model_changes_nothing_and_the_full_model_updates_intensity(study):
    results, _ = study
    models = results["models"]
    # no edge from t: the counterfactual image and intensity are the factual ones
    assert models["independent"]["counterfactual MAE"] == pytest.approx(results["unchanged image MAE"], rel=1e-6)
    assert models["independent"]["counterfactual i MAE"] == models["conditional"]["counterfactual i MAE"]
    # only the full graph has t -> i: its counterfactual intensity follows the change of t
    assert models["full"]["counterfactual i MAE"] < 0.5 * models["independent"]["counterfactual i MAE"]
    # the log-likelihood decomposes over the graph's terms
    for m in models.values():
        assert m["log p(x,t,i) >="] == pytest.approx(m["log p(x|t,i) >="] + m["log p(t)"] + m["log p(i|t)"], rel=1e-6)
