"""Mechanism families. Adding one means a new module plus a line in :data:`REGISTRY`."""

from .additive import AdditiveNoise
from .base import Mechanism, MechanismSpec
from .categorical import Categorical
from .flow import ConditionalFlow
from .vae import ConditionalVAE

__all__ = ["AdditiveNoise", "Categorical", "ConditionalFlow", "ConditionalVAE", "Mechanism", "MechanismSpec", "REGISTRY"]

#: Mechanism classes that a saved model may name; loading instantiates nothing else.
REGISTRY: dict[str, type[Mechanism]] = {
    cls.__name__: cls for cls in (ConditionalFlow, ConditionalVAE, Categorical, AdditiveNoise)
}
