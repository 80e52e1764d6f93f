"""An average of several effect estimators' potential-outcome predictions.

Learners of different families err in partly independent ways, so the mean of their
predictions has a lower variance than any one of them (the committee argument of Breiman 1996,
"Bagging predictors", Machine Learning 24(2), for squared error: the average's error is at most
the members' average error). With :class:`~deepscm.estimators.OneStep` members each member's
average effect is first bias-corrected; the ensemble's ATE on the training rows is then the
mean of the members' one-step (AIPW) estimates. :func:`default_members` is the committee
``Ensemble()`` uses: the package's representation learners (TARNet, CFR, Dragonnet) and a
gradient-boosted and a ridge T-learner, all with their defaults and each wrapped in
``OneStep``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import clone

from sklearn.base import RegressorMixin
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..errors import ConfigError
from .base import EffectEstimator
from .dragonnet import Dragonnet
from .meta_learners import TLearner
from .onestep import OneStep
from .tarnet import CFR, TARNet

__all__ = ["Ensemble", "default_members", "ridge_regressor"]


def ridge_regressor() -> RegressorMixin:
    """Standardised ridge regression, penalty chosen by efficient leave-one-out CV over
    ``10^-3 … 10^3``."""
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


def default_members(progress: bool = False) -> list[EffectEstimator]:
    """``OneStep`` of TARNet, CFR (Wasserstein), Dragonnet, the T-learner (gradient boosting)
    and the T-learner with :func:`ridge_regressor`, all with their defaults."""
    nets = [cls(progress=progress) for cls in (TARNet, CFR, Dragonnet)]
    learners = [TLearner(), TLearner(model=ridge_regressor())]
    return [OneStep(est) for est in nets + learners]


class Ensemble(EffectEstimator):
    """The equally weighted mean of ``estimators``' ``(y0, y1)`` predictions
    (``None``: :func:`default_members`).

    ``fit`` fits a clone of every member on all rows (``members_``); each member with a
    ``seed`` gets ``seed``, so a member equals the same estimator fitted alone with that seed.
    :meth:`ate_interval` is the percentile bootstrap of the base class (``n_bootstrap`` refits
    of every member).

    Args:
        estimators: two or more unfitted binary-treatment estimators (``None``: the default
            committee).
        n_bootstrap: refits for :meth:`ate_interval`.
        seed: given to every member that has one, and to the bootstrap.
    """

    def __init__(
        self,
        estimators: Sequence[EffectEstimator] | None = None,
        n_bootstrap: int = 20,
        seed: int = 0,
    ) -> None:
        self.estimators = estimators
        self.n_bootstrap = n_bootstrap
        self.seed = seed

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        chosen = default_members() if self.estimators is None else list(self.estimators)
        if len(chosen) < 2:
            raise ConfigError(
                f"an Ensemble needs at least two estimators, got {len(chosen)}; "
                "fit a single estimator directly"
            )
        self.members_: list[EffectEstimator] = []
        for est in chosen:
            member = clone(est)
            params = member.get_params()
            member.set_params(**{k: v for k, v in (("seed", self.seed), ("progress", False))
                                 if k in params})  # fmt: skip
            self.members_.append(member.fit_validated(x, t, y, self.columns_))

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pairs = [m._outcomes(x) for m in self.members_]
        return np.mean([p[0] for p in pairs], axis=0), np.mean([p[1] for p in pairs], axis=0)

    def _training_propensity(self) -> np.ndarray:
        """The members' mean training propensity."""
        return np.mean([m.propensity_train_ for m in self.members_], axis=0)
