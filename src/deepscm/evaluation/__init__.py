"""Evaluation metrics: distribution distances (MMD, energy, Wasserstein) and counterfactual
errors, for comparing a model's samples and counterfactuals with a ground-truth SCM; effect errors
(√PEHE, ATE error) for treatment-effect estimators."""

from .effects import ate_error, pehe
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

__all__ = [
    "LARGE_N",
    "ate_error",
    "counterfactual_mae",
    "counterfactual_mse",
    "counterfactual_rmse",
    "energy_distance",
    "mmd2_unbiased",
    "mmd_dcm",
    "pehe",
    "wasserstein1",
]
