"""Inverse probability weighting (Horvitz & Thompson 1952; Hájek 1971; for the ATE see
Lunceford & Davidian 2004, Statistics in Medicine, "Stratification and weighting via the
propensity score in estimation of causal treatment effects", eqs. 3–4).

With the propensity e(x) = P(T=1 | x), clipped to ``clip``, and balancing weights w1, w0,

    μ̂1 = Σ w1_i Y_i / Σ w1_i,     μ̂0 = Σ w0_i Y_i / Σ w0_i

(stabilised / Hájek); the unstabilised Horvitz–Thompson ATE divides by n instead of the weight
sums. ``weights="ate"`` uses ``w1 = T/e``, ``w0 = (1−T)/(1−e)``; ``weights="overlap"`` uses the
overlap weights ``T(1−e)``, ``(1−T)e`` of Li, Morgan & Zaslavsky (2018), whose estimand is the
ATO (the effect in the population weighted by ``e(1−e)``). ``trim`` first drops the rows with
``e ∉ [α, 1−α]`` (Crump et al. 2009), re-defining the estimand as the ATE of the kept rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin

from .base import ArrayLike, EffectEstimator, normal_interval
from .overlap import Trim, balancing_weights, trim_mask
from .propensity import check_clip, default_classifier, fit_propensity

__all__ = [
    "IPW",
    "WEIGHTS",
    "check_clip",
    "default_classifier",
    "describe_estimand",
    "fit_propensity",
]

#: The ATE-type weightings of :class:`IPW` and :class:`~deepscm.estimators.AIPW`.
WEIGHTS = ("ate", "overlap")


def describe_estimand(weights: str, trim: Trim, kept: np.ndarray) -> str:
    """A short statement of what ``ate()`` estimates under ``weights`` and ``trim``."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    base = "ATO (overlap-weighted ATE, Li et al. 2018)" if weights == "overlap" else "ATE"
    if trim is None:
        return base
    return f"{base} of the {int(kept.sum())} of {len(kept)} rows kept by trim={trim!r}"


class IPW(EffectEstimator):
    """Inverse probability weighting with a propensity classifier.

    IPW does not model heterogeneity: :meth:`effect` returns the training-sample estimate for
    every row, and :meth:`predict_outcomes` the weighted arm means μ̂0, μ̂1. ``estimand_`` says
    what :meth:`ate` estimates (it changes with ``weights`` and ``trim``).

    :meth:`ate_interval` is the Wald interval with the influence-function variance of the
    weighted means, treating the propensity as known; with a propensity fitted by maximum
    likelihood this is conservative for the ATE (Lunceford & Davidian 2004, §3.2).

    Args:
        propensity_model: a scikit-learn classifier with ``predict_proba`` (default: logistic
            regression on standardised covariates).
        clip: bounds applied to the propensity in the ATE weights (``None``: no clipping); the
            ATT weights ``e/(1−e)`` use only the upper bound.
        stabilized: Hájek (self-normalised) weights instead of Horvitz–Thompson (ATE only).
        weights: ``"ate"`` (inverse probability) or ``"overlap"`` (ATO weights).
        trim: ``None``, ``"crump"`` (Crump et al. 2009) or ``ε`` (keep ``ε ≤ e ≤ 1−ε``).
        seed: sets the classifier's ``random_state`` where it has one.
    """

    def __init__(
        self,
        propensity_model: ClassifierMixin | None = None,
        clip: tuple[float, float] | None = (0.01, 0.99),
        stabilized: bool = True,
        weights: str = "ate",
        trim: Trim = None,
        seed: int = 0,
    ) -> None:
        self.propensity_model = propensity_model
        self.clip = clip
        self.stabilized = stabilized
        self.weights = weights
        self.trim = trim
        self.seed = seed

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        lo, hi = check_clip(self.clip)
        self.propensity_model_ = fit_propensity(self.propensity_model, x, t, self.seed)
        raw = self.propensity_model_.predict_proba(x)[:, 1]
        self.kept_ = trim_mask(raw, self.trim)
        self.estimand_ = describe_estimand(self.weights, self.trim, self.kept_)
        e = np.clip(raw, lo, hi)
        self.propensity_ = e
        k = self.kept_
        t, y, e = t[k], y[k], e[k]
        w1, w0 = balancing_weights(e, t, self.weights)
        n = len(y)
        normalise = self.stabilized or self.weights == "overlap"
        norm1, norm0 = (w1.sum(), w0.sum()) if normalise else (n, n)
        self.mu1_ = float((w1 * y).sum() / norm1)
        self.mu0_ = float((w0 * y).sum() / norm0)
        self.ate_ = self.mu1_ - self.mu0_
        if normalise:
            psi = n * (w1 * (y - self.mu1_) / norm1 - w0 * (y - self.mu0_) / norm0)
        else:
            psi = w1 * y - w0 * y - self.ate_
        self.se_ = float(psi.std(ddof=1) / np.sqrt(n))

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(x), self.mu0_), np.full(len(x), self.mu1_)

    def _training_propensity(self) -> np.ndarray:
        return self.propensity_model_.predict_proba(self.X_)[:, 1]

    def _att_max_propensity(self) -> float:
        return check_clip(self.clip)[1]

    def propensity(self, X: ArrayLike | None = None) -> np.ndarray:
        """The fitted (unclipped) propensity ``P(T=1 | x)`` per row."""
        return self.propensity_model_.predict_proba(self._rows(X))[:, 1]

    def att(self) -> float:
        """The effect on the treated: treated mean minus the control mean weighted by
        ``e/(1−e)`` (``e`` capped at the upper clip bound only; normalised when
        ``stabilized``, by the treated count otherwise)."""
        self._check_fitted()
        t, y = self.T_, self.Y_
        e = np.minimum(self.propensity_train_, self._att_max_propensity())
        _, w = balancing_weights(e, t, "att")
        norm = w.sum() if self.stabilized else t.sum()
        return float(y[t == 1].mean() - (w * y).sum() / norm)

    def att_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """Wald interval for :meth:`att` with the influence function of the weighted means
        (propensity treated as known)."""
        self._check_fitted()
        t, y = self.T_, self.Y_
        e = np.minimum(self.propensity_train_, self._att_max_propensity())
        _, w = balancing_weights(e, t, "att")
        n, mu1 = len(y), y[t == 1].mean()
        norm = w.sum() if self.stabilized else t.sum()
        mu0 = (w * y).sum() / norm
        psi = n * (t * (y - mu1) / t.sum() - w * (y - mu0) / norm)
        return normal_interval(self.att(), float(psi.std(ddof=1) / np.sqrt(n)), alpha)

    def ate_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """Wald interval ``estimate ± z·se`` with the influence-function standard error."""
        self._check_fitted()
        return normal_interval(self.ate_, self.se_, alpha)
