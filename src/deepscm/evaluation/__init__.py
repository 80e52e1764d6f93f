"""Evaluation metrics: distribution distances (MMD, energy, Wasserstein) and counterfactual
errors, for comparing a model's samples and counterfactuals with a ground-truth SCM; effect errors
(√PEHE, ATE error) for treatment-effect estimators."""

from .cld import counterfactual_latent_divergence, fit_image_embedding
from .effects import ate_error, pehe
from .falsification import FalsificationResult, falsify, local_markov_conditions
from .metrics import (
    LARGE_N,
    counterfactual_mae,
    counterfactual_mse,
    counterfactual_rmse,
    energy_distance,
    mmd2_unbiased,
    mmd_dcm,
    wasserstein1,
)
from .soundness import (
    composition,
    effectiveness,
    effectiveness_index,
    fit_oracles,
    minimality,
    morpho_oracles,
    pendulum_oracles,
    reversibility,
    soundness,
)
from .validation import ValidationResult, hsic_test, validate

__all__ = [
    "LARGE_N",
    "FalsificationResult",
    "ValidationResult",
    "ate_error",
    "composition",
    "counterfactual_latent_divergence",
    "counterfactual_mae",
    "counterfactual_mse",
    "counterfactual_rmse",
    "effectiveness",
    "effectiveness_index",
    "energy_distance",
    "falsify",
    "fit_image_embedding",
    "fit_oracles",
    "hsic_test",
    "local_markov_conditions",
    "mmd2_unbiased",
    "minimality",
    "mmd_dcm",
    "morpho_oracles",
    "pehe",
    "pendulum_oracles",
    "reversibility",
    "soundness",
    "validate",
    "wasserstein1",
]
