"""Augmented inverse probability weighting (doubly robust) with cross-fitting.

Robins, Rotnitzky & Zhao (1994); the cross-fitted form of Chernozhukov et al. (2018),
"Double/debiased machine learning for treatment and structural parameters", Econometrics
Journal, §5.1. With outcome models μ0, μ1 and propensity e fitted on the other folds,

    ψ_i = μ1(x_i) − μ0(x_i) + T_i (Y_i − μ1(x_i)) / e(x_i) − (1 − T_i)(Y_i − μ0(x_i)) / (1 − e(x_i))

ATE = mean ψ_i with standard error sd(ψ)/√n (the efficient influence function).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.model_selection import StratifiedKFold

from .base import ArrayLike, EffectEstimator, derived_seeds, normal_interval
from .meta_learners import seeded_regressor
from .weighting import check_clip, fit_propensity

__all__ = ["AIPW"]


class AIPW(EffectEstimator):
    """Doubly robust ATE with ``n_folds``-fold cross-fitting.

    :meth:`ate` without ``X`` is the AIPW estimate (mean of ψ); :meth:`ate_interval` its normal
    interval. :meth:`effect` and :meth:`predict_outcomes` use the outcome models averaged over
    the folds (a T-learner CATE); ``ate(X)`` with ``X`` is their mean over ``X``.
    :meth:`att` is the doubly robust ATT (Chernozhukov et al. 2018, §5.1).

    Args:
        outcome_model: scikit-learn regressor cloned per arm and fold (default gradient boosting).
        propensity_model: scikit-learn classifier (default logistic regression).
        n_folds: cross-fitting folds (stratified by T).
        clip: bounds applied to the propensity.
        seed: fold assignment and the models' ``random_state``.
    """

    def __init__(
        self,
        outcome_model: RegressorMixin | None = None,
        propensity_model: ClassifierMixin | None = None,
        n_folds: int = 5,
        clip: tuple[float, float] | None = (0.01, 0.99),
        seed: int = 0,
    ) -> None:
        self.outcome_model = outcome_model
        self.propensity_model = propensity_model
        self.n_folds = n_folds
        self.clip = clip
        self.seed = seed

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be ≥ 2 for cross-fitting, got {self.n_folds}")
        lo, hi = check_clip(self.clip)
        fold_seed, model_seed = derived_seeds(self.seed, 2)
        folds = StratifiedKFold(self.n_folds, shuffle=True, random_state=fold_seed)
        mu0, mu1, e = np.empty(len(y)), np.empty(len(y)), np.empty(len(y))
        self.outcome_models_: list[tuple[RegressorMixin, RegressorMixin]] = []
        for train, held in folds.split(x, t):
            xt, tt, yt = x[train], t[train], y[train]
            m0, m1 = (
                seeded_regressor(self.outcome_model, model_seed).fit(xt[tt == a], yt[tt == a])
                for a in (0, 1)
            )
            self.outcome_models_.append((m0, m1))
            mu0[held], mu1[held] = m0.predict(x[held]), m1.predict(x[held])
            e[held] = fit_propensity(self.propensity_model, xt, tt, model_seed).predict_proba(
                x[held]
            )[:, 1]
        e = np.clip(e, lo, hi)
        self.propensity_, self.mu0_, self.mu1_ = e, mu0, mu1
        self.psi_ = mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)
        self.ate_ = float(self.psi_.mean())
        self.se_ = float(self.psi_.std(ddof=1) / np.sqrt(len(y)))

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y0 = np.mean([m0.predict(x) for m0, _ in self.outcome_models_], axis=0)
        y1 = np.mean([m1.predict(x) for _, m1 in self.outcome_models_], axis=0)
        return y0, y1

    def ate(self, X: ArrayLike | None = None) -> float:
        """The AIPW estimate (``X=None``), or the mean outcome-model CATE over ``X``."""
        self._check_fitted()
        return self.ate_ if X is None else super().ate(X)

    def att(self) -> float:
        """Doubly robust ATT: Σ[T(Y−μ0) − (1−T)·e/(1−e)·(Y−μ0)] / ΣT with cross-fitted μ0, e."""
        self._check_fitted()
        t, r, e = self.T_, self.Y_ - self.mu0_, self.propensity_
        return float((t * r - (1 - t) * e / (1 - e) * r).sum() / t.sum())

    def ate_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """Wald interval ``ATE ± z·sd(ψ)/√n`` from the influence function."""
        self._check_fitted()
        return normal_interval(self.ate_, self.se_, alpha)
