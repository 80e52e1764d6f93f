"""Mechanism families. Adding one means a new module plus a :func:`register` call."""

from .additive import AdditiveNoise
from .adversarial import Adversarial
from .boosted import BoostedAdditive
from .base import ABDUCTION_KINDS, Mechanism, MechanismSpec
from .categorical import Categorical
from .diffusion import Diffusion
from .flow import ConditionalFlow
from .hvae import HierarchicalVAE
from .linear import LinearGaussian
from .quadratic import Quadratic
from .registry import REGISTRY, MechanismChoice, register
from .vae import ConditionalVAE

__all__ = [
    "ABDUCTION_KINDS",
    "AdditiveNoise",
    "Adversarial",
    "BoostedAdditive",
    "Categorical",
    "ConditionalFlow",
    "ConditionalVAE",
    "Diffusion",
    "HierarchicalVAE",
    "LinearGaussian",
    "Mechanism",
    "MechanismChoice",
    "MechanismSpec",
    "Quadratic",
    "REGISTRY",
    "register",
]
