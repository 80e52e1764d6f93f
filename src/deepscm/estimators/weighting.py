"""Inverse probability weighting (Horvitz & Thompson 1952; Hájek 1971; for the ATE see
Lunceford & Davidian 2004, Statistics in Medicine, "Stratification and weighting via the
propensity score in estimation of causal treatment effects", eqs. 3–4).

With the propensity e(x) = P(T=1 | x), clipped to ``clip``,

    μ̂1 = Σ T_i Y_i / e_i / Σ T_i / e_i,     μ̂0 = Σ (1−T_i) Y_i / (1−e_i) / Σ (1−T_i) / (1−e_i)

(stabilised / Hájek); the unstabilised Horvitz–Thompson form divides by n instead of the weight
sums. The ATE is μ̂1 − μ̂0.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .base import ArrayLike, EffectEstimator, normal_interval

__all__ = ["IPW", "check_clip", "default_classifier", "fit_propensity"]


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


class IPW(EffectEstimator):
    """Inverse probability weighting with a propensity classifier.

    IPW does not model heterogeneity: :meth:`effect` returns the training-sample ATE for every
    row, and :meth:`predict_outcomes` the weighted arm means μ̂0, μ̂1.

    :meth:`ate_interval` is the Wald interval with the influence-function variance of the
    weighted means, treating the propensity as known; with a propensity fitted by maximum
    likelihood this is conservative for the ATE (Lunceford & Davidian 2004, §3.2).

    Args:
        propensity_model: a scikit-learn classifier with ``predict_proba`` (default: logistic
            regression on standardised covariates).
        clip: bounds applied to the propensity (``None``: no clipping).
        stabilized: Hájek (self-normalised) weights instead of Horvitz–Thompson.
        seed: sets the classifier's ``random_state`` where it has one.
    """

    def __init__(
        self,
        propensity_model: ClassifierMixin | None = None,
        clip: tuple[float, float] | None = (0.01, 0.99),
        stabilized: bool = True,
        seed: int = 0,
    ) -> None:
        self.propensity_model = propensity_model
        self.clip = clip
        self.stabilized = stabilized
        self.seed = seed

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        lo, hi = check_clip(self.clip)
        self.propensity_model_ = fit_propensity(self.propensity_model, x, t, self.seed)
        e = np.clip(self.propensity_model_.predict_proba(x)[:, 1], lo, hi)
        self.propensity_ = e
        w1, w0 = t / e, (1 - t) / (1 - e)
        n = len(y)
        norm1, norm0 = (w1.sum(), w0.sum()) if self.stabilized else (n, n)
        self.mu1_ = float((w1 * y).sum() / norm1)
        self.mu0_ = float((w0 * y).sum() / norm0)
        self.ate_ = self.mu1_ - self.mu0_
        if self.stabilized:
            psi = n * (w1 * (y - self.mu1_) / norm1 - w0 * (y - self.mu0_) / norm0)
        else:
            psi = w1 * y - w0 * y - self.ate_
        self.se_ = float(psi.std(ddof=1) / np.sqrt(n))

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(x), self.mu0_), np.full(len(x), self.mu1_)

    def propensity(self, X: ArrayLike | None = None) -> np.ndarray:
        """The fitted (unclipped) propensity ``P(T=1 | x)`` per row."""
        return self.propensity_model_.predict_proba(self._rows(X))[:, 1]

    def att(self) -> float:
        """The effect on the treated: treated mean minus the control mean weighted by
        ``e/(1−e)`` (normalised when ``stabilized``, by the treated count otherwise)."""
        self._check_fitted()
        t, y, e = self.T_, self.Y_, self.propensity_
        w = (1 - t) * e / (1 - e)
        norm = w.sum() if self.stabilized else t.sum()
        return float(y[t == 1].mean() - (w * y).sum() / norm)

    def ate_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """Wald interval ``ATE ± z·se`` with the influence-function standard error."""
        self._check_fitted()
        return normal_interval(self.ate_, self.se_, alpha)
