"""Generative causal models beyond the per-node :class:`~deepscm.DeepSCM`: CCGM (Bhat et al.),
whose counterfactual (de-biased) variants are made by removing edges of a learned causal layer."""

from .ccgm import CCGM, DEFAULT_WEIGHTS, IMAGE_DECODERS, VARIANTS, AugmentedLagrangian, notears

__all__ = ["CCGM", "AugmentedLagrangian", "DEFAULT_WEIGHTS", "IMAGE_DECODERS", "VARIANTS", "notears"]
