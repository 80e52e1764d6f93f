"""Ground-truth structural causal models for benchmarks: exact samples, interventions and
counterfactuals from known equations (DCM, Causal NF and VACA benchmark SCMs, basic structures,
a mixed categorical SCM and the demo's medical SCM).

Example:
    >>> from deepscm.datasets import load_scm
    >>> scm = load_scm("dcm_chain_nonlinear")
    >>> data, noise = scm.sample(100, seed=0, return_noise=True)
    >>> cf = scm.counterfactual(data, do={"x1": 1.0}, noise=noise)
"""

from .base import FAMILIES, GroundTruthSCM
from .suite import KINDS, list_scms, load_scm, suite

__all__ = ["FAMILIES", "KINDS", "GroundTruthSCM", "list_scms", "load_scm", "suite"]
