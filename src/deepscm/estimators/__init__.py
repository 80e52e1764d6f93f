"""Treatment-effect estimators for a treatment T, an outcome Y and covariates X.

All binary-treatment estimators share one interface (:class:`EffectEstimator`): ``fit(X, T, Y)``,
``effect(X)``, ``predict_outcomes(X)``, ``ate(X)``, ``att()``, ``ate_interval(alpha)``.
:class:`DeepIV` (continuous treatment, instrument Z) and :class:`BackdoorAdjustment` (a graph and
a DataFrame) keep the same method names with their own ``fit`` arguments.
"""

from .aipw import AIPW
from .backdoor import BackdoorAdjustment
from .base import EffectEstimator
from .cevae import CEVAE
from .deepiv import DeepIV
from .dragonnet import Dragonnet
from .meta_learners import SLearner, TLearner
from .tarnet import CFR, TARNet, ipm, mmd_linear, wasserstein_sinkhorn
from .weighting import IPW

__all__ = [
    "AIPW",
    "BackdoorAdjustment",
    "CEVAE",
    "CFR",
    "DeepIV",
    "Dragonnet",
    "EffectEstimator",
    "IPW",
    "SLearner",
    "TARNet",
    "TLearner",
    "ipm",
    "mmd_linear",
    "wasserstein_sinkhorn",
]
