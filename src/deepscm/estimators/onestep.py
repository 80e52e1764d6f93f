"""The one-step (AIPW) correction of a learner's average effect, kept as a CATE shift.

A plug-in learner with outcome models μ̂0, μ̂1 estimates the ATE by ``mean τ̂(x_i)``; its
first-order bias is removed by the one-step estimator (Bickel et al. 1993; Kennedy 2022,
"Semiparametric doubly robust targeted double machine learning: a review", arXiv:2203.06469),
which adds the mean of the efficient influence function's residual terms:

    δ1 = mean_i T_i (Y_i − μ̂1(x_i)) / e(x_i),     δ0 = mean_i (1 − T_i)(Y_i − μ̂0(x_i)) / (1 − e(x_i)),
    ATÊ_1step = mean_i [μ̂1(x_i) − μ̂0(x_i)] + δ1 − δ0,

the AIPW estimate (Robins, Rotnitzky & Zhao 1994) with the learner's own outcome models.
:class:`OneStep` keeps the correction as constant shifts of the potential-outcome predictions,
``ỹ1(x) = μ̂1(x) + δ1`` and ``ỹ0(x) = μ̂0(x) + δ0``: its ``ate()`` on the training rows is the
one-step estimate, and on new rows ``mean τ̂(x) + δ1 − δ0`` — the learner's population-average
bias estimated once from the training residuals and removed everywhere (the CATE's shape is
the learner's). The residuals are those of the training rows: a learner that interpolates its
training outcomes gets no correction (early-stopped networks do not; for a fully cross-fitted
estimate use :class:`~deepscm.estimators.AIPW`).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from .base import ArrayLike, EffectEstimator, normal_interval
from .propensity import check_clip

__all__ = ["OneStep", "one_step_terms"]


def one_step_terms(
    mu0: np.ndarray, mu1: np.ndarray, e: np.ndarray, t: np.ndarray, y: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """``(δ0, δ1, ψ)``: the arm corrections of the module docstring and the per-row efficient
    influence terms ``ψ_i = μ̂1 − μ̂0 + T(Y − μ̂1)/e − (1 − T)(Y − μ̂0)/(1 − e)``."""
    r1 = t * (y - mu1) / e
    r0 = (1 - t) * (y - mu0) / (1 - e)
    return float(r0.mean()), float(r1.mean()), mu1 - mu0 + r1 - r0


class OneStep(EffectEstimator):
    """``estimator`` with its average effect corrected by the one-step (AIPW) term.

    ``fit`` fits a clone of ``estimator`` (``base_``) and computes ``shift0_ = δ0``,
    ``shift1_ = δ1`` from its training-row predictions and its own propensity
    (``base_.propensity_train_``: Dragonnet's head, CEVAE's model, otherwise a standardised
    logistic regression), clipped to ``clip``. :meth:`predict_outcomes`, :meth:`effect` and
    :meth:`ate` report the shifted outcomes, so ``ate()`` is the one-step estimate;
    :meth:`ate_interval` is its Wald interval ``sd(ψ)/√n`` (nuisances treated as known, no
    refits); :meth:`att` is the base learner's doubly robust ATT (already corrected).

    Args:
        estimator: an unfitted binary-treatment estimator (cloned).
        clip: propensity bounds inside the correction.
        seed: set on the learner when it has a ``seed`` (``None``: keep the learner's).
    """

    def __init__(
        self,
        estimator: EffectEstimator,
        clip: tuple[float, float] = (0.01, 0.99),
        seed: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.clip = clip
        self.seed = seed

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        lo, hi = check_clip(self.clip)
        base = clone(self.estimator)
        if self.seed is not None and "seed" in base.get_params():
            base.set_params(seed=self.seed)
        self.base_ = base.fit_validated(x, t, y, self.columns_)
        mu0, mu1 = self.base_._outcomes(x)
        e = np.clip(self.base_.propensity_train_, lo, hi)
        self.shift0_, self.shift1_, self.psi_ = one_step_terms(mu0, mu1, e, t, y)

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y0, y1 = self.base_._outcomes(x)
        return y0 + self.shift0_, y1 + self.shift1_

    def _training_propensity(self) -> np.ndarray:
        return self.base_.propensity_train_

    def _control_outcomes(self) -> np.ndarray:
        return self.base_._control_outcomes()

    def _att_max_propensity(self) -> float:
        return self.base_._att_max_propensity()

    def _seed(self) -> int:
        return int(self.seed) if self.seed is not None else self.base_._seed()

    def ate(self, X: ArrayLike | None = None) -> float:
        """The one-step estimate (``X=None``: ``mean ψ``), or ``mean τ̂(x) + δ1 − δ0`` over ``X``."""
        self._check_fitted()
        return float(self.psi_.mean()) if X is None else super().ate(X)

    def ate_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """Wald interval ``mean ψ ± z · sd(ψ)/√n``."""
        self._check_fitted()
        se = float(self.psi_.std(ddof=1) / np.sqrt(len(self.psi_)))
        return normal_interval(float(self.psi_.mean()), se, alpha)
