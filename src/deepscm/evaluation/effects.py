"""Errors of treatment-effect estimates against known effects (semi-synthetic benchmarks).

√PEHE, the precision in estimating heterogeneous effects (Hill 2011, JCGS, §4.2; reported as
√ε_PEHE by Shalit et al. 2017, §6), and the absolute ATE error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["ate_error", "pehe"]


def _vector(v: np.ndarray | pd.Series | list, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or len(a) == 0:
        raise DataError(f"{name} must be a non-empty vector, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataError(f"{name} contains NaN or inf")
    return a


def _pair(tau_hat: np.ndarray | pd.Series | list, tau_true: np.ndarray | pd.Series | list) -> tuple:
    a, b = _vector(tau_hat, "tau_hat"), _vector(tau_true, "tau_true")
    if len(a) != len(b):
        raise DataError(f"tau_hat has {len(a)} rows but tau_true has {len(b)}")
    return a, b


def pehe(tau_hat: np.ndarray | pd.Series | list, tau_true: np.ndarray | pd.Series | list) -> float:
    """√PEHE = √(mean_i (τ̂(x_i) − τ(x_i))²)."""
    a, b = _pair(tau_hat, tau_true)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def ate_error(
    tau_hat: np.ndarray | pd.Series | list | float, tau_true: np.ndarray | pd.Series | list | float
) -> float:
    """|mean τ̂ − mean τ|; each argument is per-row effects or an ATE (a scalar)."""
    a = float(tau_hat) if np.ndim(tau_hat) == 0 else _vector(tau_hat, "tau_hat").mean()
    b = float(tau_true) if np.ndim(tau_true) == 0 else _vector(tau_true, "tau_true").mean()
    return float(abs(a - b))
