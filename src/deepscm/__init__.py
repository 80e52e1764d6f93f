"""deepscm: deep structural causal models."""

from .errors import (
    AbductionWarning,
    ConfigError,
    DataError,
    DeepSCMError,
    DeepSCMWarning,
    ExtrapolationWarning,
    GraphError,
    ModelFileError,
    NotFittedError,
    NotIdentifiableError,
    TrainingError,
    UnsupportedGraphError,
)
from . import fairness, mechanisms, models
from .graph import CausalGraph
from .identification import identify
from .interventions import FromParents, Set, Shift
from .ncm import NeuralCausalModel, lp_bounds, neural_identify
from ._version import __version__
from .scm import DeepSCM, FromWorld, Independent, World
from .variables import Variable


__all__ = [
    "CausalGraph",
    "DeepSCM",
    "FromWorld",
    "Independent",
    "World",
    "__version__",
    "FromParents",
    "Set",
    "Shift",
    "Variable",
    "NeuralCausalModel",
    "fairness",
    "identify",
    "lp_bounds",
    "mechanisms",
    "models",
    "neural_identify",
    "AbductionWarning",
    "ConfigError",
    "DataError",
    "DeepSCMError",
    "DeepSCMWarning",
    "ExtrapolationWarning",
    "GraphError",
    "ModelFileError",
    "NotFittedError",
    "NotIdentifiableError",
    "TrainingError",
    "UnsupportedGraphError",
]
