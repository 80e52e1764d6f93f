"""Data sets with known causal ground truth.

- Ground-truth structural causal models: exact samples, interventions and counterfactuals from
  known equations (DCM, Causal NF and VACA benchmark SCMs, basic structures, a mixed categorical
  SCM and the demo's medical SCM): :func:`load_scm`, :func:`list_scms`.
- Morpho-digits (:class:`MorphoDigits`, DSCM eq. 7 with images): ``deepscm.datasets.morpho``.
- Treatment-effect data: IHDP with Hill's response surfaces (:func:`load_ihdp`), NHEFS
  (:func:`load_nhefs`) and LaLonde (:func:`load_lalonde`): ``deepscm.datasets.effects``; a
  Learning-Mindsets-like SCM with a known effect (:func:`load_mindsets`).
- Fairness: a credit SCM with a sensitive attribute (:func:`load_credit`).
- Hidden confounders: binary SCMs of the neural-causal-model graphs with exact interventional
  and counterfactual answers (:func:`load_confounded`, :func:`list_confounded`), and continuous
  ones with quadrature-exact interventional answers (:func:`load_confounded_continuous`).
- The CausalVAE pendulum with true counterfactual images (:func:`load_pendulum`,
  :class:`PendulumGenerator`).

Example:
    >>> from deepscm.datasets import load_scm
    >>> scm = load_scm("dcm_chain_nonlinear")
    >>> data, noise = scm.sample(100, seed=0, return_noise=True)
    >>> cf = scm.counterfactual(data, do={"x1": 1.0}, noise=noise)
"""

from typing import Any

from .base import FAMILIES, GroundTruthSCM
from .confounded import ConfoundedSCM, list_confounded, load_confounded
from .confounded_continuous import ContinuousConfoundedSCM, list_confounded_continuous, load_confounded_continuous
from .effects import EffectData, load_ihdp, load_lalonde, load_nhefs
from .fairness_scm import credit_scm, load_credit
from .mindsets import load_mindsets
from .pendulum import PendulumGenerator, load_pendulum, measure_pendulum, measure_shadow
from .suite import KINDS, list_scms, load_scm, suite

__all__ = [
    "FAMILIES", "KINDS", "ConfoundedSCM", "ContinuousConfoundedSCM", "EffectData", "GroundTruthSCM", "MorphoDigits",
    "PendulumGenerator", "credit_scm", "list_confounded", "list_confounded_continuous", "list_scms", "load_confounded", "load_confounded_continuous",
    "load_credit", "load_digit_images",
    "load_ihdp", "load_lalonde", "load_mindsets", "load_nhefs", "load_pendulum", "load_scm",
    "measure_pendulum", "measure_shadow", "suite",
]


def __getattr__(name: str) -> Any:
    """Morpho-digits loads scikit-image, so it is imported on first use."""
    if name in ("MorphoDigits", "load_digit_images"):
        from . import morpho

        return getattr(morpho, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
