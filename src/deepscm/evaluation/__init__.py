"""Evaluation metrics: distribution distances (MMD, energy, Wasserstein) and counterfactual
errors, for comparing a model's samples and counterfactuals with a ground-truth SCM; effect errors
(√PEHE, ATE error) for treatment-effect estimators."""

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
from .validation import ValidationResult, hsic_test, validate

__all__ = [
    "LARGE_N",
    "FalsificationResult",
    "ValidationResult",
    "ate_error",
    "counterfactual_mae",
    "counterfactual_mse",
    "counterfactual_rmse",
    "energy_distance",
    "falsify",
    "hsic_test",
    "local_markov_conditions",
    "mmd2_unbiased",
    "mmd_dcm",
    "pehe",
    "validate",
    "wasserstein1",
]
