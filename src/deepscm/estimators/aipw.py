"""Augmented inverse probability weighting (doubly robust) with cross-fitting.

Robins, Rotnitzky & Zhao (1994); the cross-fitted form of Chernozhukov et al. (2018),
"Double/debiased machine learning for treatment and structural parameters", Econometrics
Journal, §5.1. With outcome models μ0, μ1 and propensity e fitted on the other folds,

    ψ_i = μ1(x_i) − μ0(x_i) + T_i (Y_i − μ1(x_i)) / e(x_i) − (1 − T_i)(Y_i − μ0(x_i)) / (1 − e(x_i))

ATE = mean ψ_i with standard error sd(ψ)/√n (the efficient influence function).
``trim`` averages ψ over the rows with ``e ∈ [α, 1−α]`` only (Crump et al. 2009);
``weights="overlap"`` gives the augmented overlap-weighted estimator of the ATO,
Σ h_i ψ_i / Σ h_i with h = e(1 − e) (Li, Morgan & Zaslavsky 2018, §4; Mao, Li & Greene 2019).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.model_selection import StratifiedKFold

from .base import ArrayLike, EffectEstimator, derived_seeds, normal_interval
from .meta_learners import seeded_regressor
from .overlap import Trim, trim_mask
from .propensity import check_clip, fit_propensity
from .weighting import describe_estimand

__all__ = ["AIPW"]


class AIPW(EffectEstimator):
    """Doubly robust ATE with ``n_folds``-fold cross-fitting.

    :meth:`ate` without ``X`` is the AIPW estimate (mean of ψ); :meth:`ate_interval` its normal
    interval. :meth:`effect` and :meth:`predict_outcomes` use the outcome models averaged over
    the folds (a T-learner CATE); ``ate(X)`` with ``X`` is their mean over ``X``.
    :meth:`att` is the doubly robust ATT (Chernozhukov et al. 2018, §5.1) with the
    cross-fitted μ0 and e. ``estimand_`` says what :meth:`ate` estimates.

    Args:
        outcome_model: scikit-learn regressor cloned per arm and fold (default gradient boosting).
        propensity_model: scikit-learn classifier (default logistic regression).
        n_folds: cross-fitting folds (stratified by T).
        clip: bounds applied to the propensity in ψ; the ATT weights use the upper one only.
        weights: ``"ate"`` (ψ as above) or ``"overlap"`` (the ATO, weights ``e(1−e)``).
        trim: ``None``, ``"crump"`` (Crump et al. 2009) or ``ε`` (keep ``ε ≤ e ≤ 1−ε``).
        seed: fold assignment and the models' ``random_state``.
    """

    def __init__(
        self,
        outcome_model: RegressorMixin | None = None,
        propensity_model: ClassifierMixin | None = None,
        n_folds: int = 5,
        clip: tuple[float, float] | None = (0.01, 0.99),
        weights: str = "ate",
        trim: Trim = None,
        seed: int = 0,
    ) -> None:
        self.outcome_model = outcome_model
        self.propensity_model = propensity_model
        self.n_folds = n_folds
        self.clip = clip
        self.weights = weights
        self.trim = trim
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
        self.propensity_cf_ = e
        self.kept_ = trim_mask(e, self.trim)
        self.estimand_ = describe_estimand(self.weights, self.trim, self.kept_)
        e = np.clip(e, lo, hi)
        self.propensity_, self.mu0_, self.mu1_ = e, mu0, mu1
        self.psi_ = mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)
        k = self.kept_
        h = e[k] * (1 - e[k]) if self.weights == "overlap" else np.ones(int(k.sum()))
        self.ate_ = float((h * self.psi_[k]).sum() / h.sum())
        phi = h * (self.psi_[k] - self.ate_) / h.mean()
        self.se_ = float(phi.std(ddof=1) / np.sqrt(len(phi)))

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y0 = np.mean([m0.predict(x) for m0, _ in self.outcome_models_], axis=0)
        y1 = np.mean([m1.predict(x) for _, m1 in self.outcome_models_], axis=0)
        return y0, y1

    def _training_propensity(self) -> np.ndarray:
        return self.propensity_cf_

    def _control_outcomes(self) -> np.ndarray:
        return self.mu0_

    def _att_max_propensity(self) -> float:
        return check_clip(self.clip)[1]

    def ate(self, X: ArrayLike | None = None) -> float:
        """The AIPW estimate of ``estimand_`` (``X=None``), or the mean outcome-model CATE
        over ``X``."""
        self._check_fitted()
        return self.ate_ if X is None else super().ate(X)

    def ate_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """Wald interval ``estimate ± z·se`` from the (weighted) influence function."""
        self._check_fitted()
        return normal_interval(self.ate_, self.se_, alpha)
