"""deepscm: deep structural causal models."""

from .errors import (
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
from . import mechanisms
from .graph import CausalGraph
from .identification import identify
from .interventions import FromParents, Set, Shift
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
    "identify",
    "mechanisms",
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
