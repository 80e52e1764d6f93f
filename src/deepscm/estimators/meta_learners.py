"""Regression adjustment: the S-learner and the T-learner (Künzel et al. 2019, PNAS,
"Metalearners for estimating heterogeneous treatment effects", §2).

Both work with any scikit-learn regressor (default: gradient boosting). The S-learner fits one
model μ(x, t) and reports τ̂(x) = μ(x, 1) − μ(x, 0); the T-learner fits μ0 on the controls and
μ1 on the treated and reports τ̂(x) = μ1(x) − μ0(x).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin, clone
from sklearn.ensemble import GradientBoostingRegressor

from .base import EffectEstimator

__all__ = ["SLearner", "TLearner", "default_regressor", "seeded_regressor"]


def default_regressor(seed: int) -> RegressorMixin:
    """Gradient boosting with shallow trees and shrinkage, seeded."""
    return GradientBoostingRegressor(
        n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=seed
    )


def seeded_regressor(model: RegressorMixin | None, seed: int) -> RegressorMixin:
    """An unfitted clone of ``model`` (default :func:`default_regressor`) seeded by ``seed``."""
    if model is None:
        return default_regressor(seed)
    m = clone(model)
    if "random_state" in m.get_params():
        m.set_params(random_state=seed)
    return m


class SLearner(EffectEstimator):
    """One regressor on ``[X, T]``; ``model`` is any scikit-learn regressor (cloned; its
    ``random_state`` is set from ``seed``). ``ate_interval`` bootstraps ``n_bootstrap`` refits."""

    def __init__(
        self, model: RegressorMixin | None = None, n_bootstrap: int = 100, seed: int = 0
    ) -> None:
        self.model = model
        self.n_bootstrap = n_bootstrap
        self.seed = seed

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        self.model_ = seeded_regressor(self.model, self.seed).fit(np.column_stack([x, t]), y)

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ones = np.ones(len(x))
        return (
            self.model_.predict(np.column_stack([x, 0 * ones])),
            self.model_.predict(np.column_stack([x, ones])),
        )


class TLearner(EffectEstimator):
    """One regressor per arm; ``model`` is any scikit-learn regressor (cloned per arm; its
    ``random_state`` is set from ``seed``). ``ate_interval`` bootstraps ``n_bootstrap`` refits."""

    def __init__(
        self, model: RegressorMixin | None = None, n_bootstrap: int = 100, seed: int = 0
    ) -> None:
        self.model = model
        self.n_bootstrap = n_bootstrap
        self.seed = seed

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        self.models_ = [
            seeded_regressor(self.model, self.seed).fit(x[t == arm], y[t == arm]) for arm in (0, 1)
        ]

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.models_[0].predict(x), self.models_[1].predict(x)
