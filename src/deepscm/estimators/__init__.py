"""Treatment-effect estimators for a treatment T, an outcome Y and covariates X.

All binary-treatment estimators share one interface (:class:`EffectEstimator`): ``fit(X, T, Y)``,
``effect(X)``, ``predict_outcomes(X)``, ``ate(X)``, ``att()``, ``ate_interval(alpha)``,
``att_interval(alpha)``, and after fitting an overlap report ``overlap_`` (poor overlap issues an
:class:`OverlapWarning`). :class:`Tuned` / :func:`select` choose hyper-parameters by the R-loss
(Nie & Wager 2021) or a doubly robust pseudo-outcome, without counterfactuals. :class:`OneStep`
adds the one-step (AIPW) correction to a learner's average effect; :class:`Ensemble` averages
several learners (by default the one-step-corrected committee of every outcome-model family).
:class:`DeepIV` (continuous treatment, instrument Z) and :class:`BackdoorAdjustment` (a graph and
a DataFrame) keep the same method names with their own ``fit`` arguments.
"""

from .aipw import AIPW
from .backdoor import BackdoorAdjustment
from .base import EffectEstimator
from .cevae import CEVAE
from .deepiv import DeepIV
from .dragonnet import Dragonnet
from .ensemble import Ensemble
from .meta_learners import SLearner, TLearner
from .onestep import OneStep
from .overlap import OverlapReport, OverlapWarning, crump_threshold, overlap_report, trim_mask
from .selection import Selection, Tuned, dr_loss, r_loss, select
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
    "Ensemble",
    "IPW",
    "OneStep",
    "OverlapReport",
    "OverlapWarning",
    "SLearner",
    "Selection",
    "TARNet",
    "TLearner",
    "Tuned",
    "crump_threshold",
    "dr_loss",
    "ipm",
    "mmd_linear",
    "overlap_report",
    "r_loss",
    "select",
    "trim_mask",
    "wasserstein_sinkhorn",
]
