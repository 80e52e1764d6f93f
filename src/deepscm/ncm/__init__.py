"""Neural causal models for graphs with hidden confounders (Xia et al. 2021).

- :class:`NeuralCausalModel`: an MLE-NCM over binary nodes, one shared latent per C²-component,
  discrete (exact likelihood, one state per response type) or uniform (Monte Carlo)
  (``deepscm.ncm.model``);
- :func:`neural_identify`: a staged search (MLE fits, then the query maximised and minimised
  subject to ``NLL ≤ NLL* + χ²_{1,0.95}/(2n)``) decides identifiability and bounds a query
  (``deepscm.ncm.identify``);
- :func:`lp_bounds`: sharp bounds by the response-function linear program, Balke & Pearl
  (1997) and its generalisation (``deepscm.ncm.bounds``);
- :func:`parse_binary_query`: ``"p(y | do(x))"``, ``"ate(x, y)"``, ``"ett(x, y)"``;
- :class:`GANNCM`: a GAN-NCM for continuous or mixed data (WGAN-GP on the joint, or per
  c-component with ``modular=True``) (``deepscm.ncm.gan``);
- :func:`continuous_bounds`: bounds on a continuous-treatment query among generators within a
  Sinkhorn-divergence budget of the data (Balazadeh et al. 2022) (``deepscm.ncm.continuous_bounds``).

Example:
    >>> from deepscm.datasets.confounded import load_confounded
    >>> from deepscm.ncm import lp_bounds
    >>> scm = load_confounded("bow", seed=0)
    >>> lp_bounds(scm.graph, scm.sample(2000, seed=1), "ate(x, y)").width  # doctest: +ELLIPSIS
    1.0...
"""

from .bounds import LPBounds, lp_bounds
from .continuous_bounds import ContinuousBounds, continuous_bounds, sinkhorn_divergence
from .gan import GANNCM, training_groups
from .identify import NeuralIDResult, neural_identify
from .model import NeuralCausalModel, c2_components, deviance, response_types
from .queries import BinaryQuery, parse_binary_query

__all__ = [
    "BinaryQuery",
    "ContinuousBounds",
    "GANNCM",
    "LPBounds",
    "NeuralCausalModel",
    "NeuralIDResult",
    "continuous_bounds",
    "sinkhorn_divergence",
    "training_groups",
    "c2_components",
    "deviance",
    "lp_bounds",
    "neural_identify",
    "parse_binary_query",
    "response_types",
]
