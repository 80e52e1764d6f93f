"""Propensity models ``e(x) = P(T = 1 | x)`` shared by the estimators."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["check_clip", "default_classifier", "fit_propensity"]


def default_classifier() -> ClassifierMixin:
    """Standardised logistic regression (mild L2 penalty, C = 1)."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def check_clip(clip: tuple[float, float] | None) -> tuple[float, float]:
    """The propensity bounds; ``None`` means no clipping."""
    lo, hi = (0.0, 1.0) if clip is None else clip
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"clip must satisfy 0 ≤ low < high ≤ 1, got {clip}")
    return float(lo), float(hi)


def fit_propensity(
    model: ClassifierMixin | None, x: np.ndarray, t: np.ndarray, seed: int
) -> ClassifierMixin:
    """A fitted clone of ``model`` (default :func:`default_classifier`) predicting T from x."""
    m = default_classifier() if model is None else clone(model)
    if "random_state" in m.get_params():
        m.set_params(random_state=seed)
    return m.fit(x, t.astype(int))
