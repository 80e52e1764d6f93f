"""Generative causal models beyond the per-node :class:`~deepscm.DeepSCM`: CCGM (Bhat et al.),
whose counterfactual (de-biased) variants are made by removing edges of a learned causal layer,
and DECAF (van Breugel et al.), per-node generators trained against one critic on the joint,
whose fair variants are generated with edges removed."""

from .ccgm import CAUSE_TOL, CCGM, DEFAULT_WEIGHTS, IMAGE_DECODERS, VARIANTS, AugmentedLagrangian, notears
from .decaf import DECAF, MAX_CATEGORIES

__all__ = [
    "CAUSE_TOL", "CCGM", "DECAF", "AugmentedLagrangian", "DEFAULT_WEIGHTS", "IMAGE_DECODERS", "MAX_CATEGORIES",
    "VARIANTS", "notears",
]
