"""deepscm: deep structural causal models."""

from .errors import (
    DataError,
    DeepSCMError,
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
from .scm import DeepSCM
from .variables import Variable

__version__ = "0.1.0"

__all__ = [
    "CausalGraph",
    "DeepSCM",
    "FromParents",
    "Set",
    "Shift",
    "Variable",
    "identify",
    "mechanisms",
    "DataError",
    "DeepSCMError",
    "GraphError",
    "ModelFileError",
    "NotFittedError",
    "NotIdentifiableError",
    "TrainingError",
    "UnsupportedGraphError",
]
