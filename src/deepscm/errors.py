"""Error hierarchy: every error names the offending node, column or value and says how to fix it."""

from __future__ import annotations

__all__ = [
    "DeepSCMError",
    "GraphError",
    "DataError",
    "TrainingError",
    "ModelFileError",
    "NotFittedError",
    "NotIdentifiableError",
    "UnsupportedGraphError",
    "ConfigError",
    "DeepSCMWarning",
    "AbductionWarning",
    "ExtrapolationWarning",
]


class DeepSCMError(Exception):
    """Base class of every error deepscm raises on purpose."""


class GraphError(DeepSCMError, ValueError):
    """A malformed or invalid causal graph, or a query naming an unknown node."""


class UnsupportedGraphError(GraphError):
    """A valid graph that the requested model cannot handle (e.g. latent confounders)."""


class DataError(DeepSCMError, ValueError):
    """Data that does not match the model: missing/extra columns, NaN/inf, unseen categories."""


class TrainingError(DeepSCMError, RuntimeError):
    """Training diverged (non-finite loss) or could not start."""


class ModelFileError(DeepSCMError, OSError):
    """A saved model that is missing, corrupt, truncated or from an incompatible version."""


class NotFittedError(DeepSCMError, RuntimeError):
    """A model used before `fit` was called."""


class NotIdentifiableError(DeepSCMError):
    """A causal query that the graph and the observational distribution do not determine."""


class ConfigError(DeepSCMError, ValueError):
    """An invalid hyper-parameter or option (a mechanism's settings, a device, a fit option)."""


class DeepSCMWarning(UserWarning):
    """Base class of deepscm's warnings; filter them with ``warnings.filterwarnings``."""


class AbductionWarning(DeepSCMWarning):
    """A fitted mechanism with approximate abduction (e.g. DDIM inversion) reconstructs held-out
    rows less exactly than its ``abduction_tolerance`` promises."""


class ExtrapolationWarning(DeepSCMWarning):
    """A query reaches values outside the training data's range, or gives a node a
    combination of parents outside their joint training support (:mod:`deepscm.scm.support`),
    where the learned mechanisms extrapolate and their answers are less reliable."""
