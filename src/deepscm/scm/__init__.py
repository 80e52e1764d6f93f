"""The SCM engine: the :class:`DeepSCM` facade (:mod:`.model`), its public noise-first
primitives (:mod:`.engine`) and the rung-3 queries built on them (:mod:`.queries`)."""

from . import engine
from .engine import FromWorld, Independent, Noise, World
from .model import DeepSCM

__all__ = ["DeepSCM", "FromWorld", "Independent", "Noise", "World", "engine"]
