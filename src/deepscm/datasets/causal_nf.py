"""SCMs of Causal NF: Javaloy, Sanchez-Martin, Valera, "Causal normalizing flows: from theory to
practice" (NeurIPS 2023), ``causal_nf/sem_equations/*.py``.

``U ~ N(0, I)`` (raw, unscaled) except the 9-node large backdoor, where ``U ~ Uniform(1e-6, 1)``.
The intervention nodes are the paper's ``intervention_index_list``. Every equation is additive
in (a transform of) its noise, so every SCM here supports exact abduction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import (
    GroundTruthSCM,
    Node,
    additive,
    equation,
    laplace_cdf,
    laplace_icdf,
    normal,
    sigmoid,
    softplus,
    softplus_inverse,
    uniform,
)

__all__ = ["SCMS"]

_SOURCE = "Causal NF, Javaloy et al. 2023"
_N = normal()
_U = uniform(1e-6, 1.0)


def _root(mean: float = 0.0) -> Node:
    return additive([], lambda v: mean, _N)


def _scm(name: str, eqs: dict[str, Node], family: str, interventions: list[str],
         what: str) -> GroundTruthSCM:
    return GroundTruthSCM(name, eqs, family=family, intervention_nodes=interventions,
                          description=f"{what} ({_SOURCE}; {family})")


# ------------------------------------------------------------------------------ chains
def chain_linear() -> GroundTruthSCM:
    """x1=u1; x2=10 x1 - u2; x3=0.25 x2 + 2 u3."""
    return _scm("causal_nf_chain_linear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: 10 * v["x1"], _N, coef=-1.0),
        "x3": additive(["x2"], lambda v: 0.25 * v["x2"], _N, coef=2.0),
    }, "linear-gaussian", ["x1", "x2"], "3-node linear chain")


def chain_nonlinear() -> GroundTruthSCM:
    """x1=u1; x2=exp(x1/2) + u2/4; x3=(x2-5)³/15 + u3 (DCM's chain without divisors)."""
    return _scm("causal_nf_chain_nonlinear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: np.exp(v["x1"] / 2), _N, coef=0.25),
        "x3": additive(["x2"], lambda v: (v["x2"] - 5) ** 3 / 15, _N),
    }, "nonlinear additive", ["x1", "x2"], "3-node non-linear chain")


def chain4_linear() -> GroundTruthSCM:
    """x1=u1; x2=5 x1 - u2; x3=-0.5 x2 - 1.5 u3; x4=x3 + u4."""
    return _scm("causal_nf_chain4_linear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: 5 * v["x1"], _N, coef=-1.0),
        "x3": additive(["x2"], lambda v: -0.5 * v["x2"], _N, coef=-1.5),
        "x4": additive(["x3"], lambda v: v["x3"], _N),
    }, "linear-gaussian", ["x1", "x2", "x3"], "4-node linear chain")


def chain5_linear() -> GroundTruthSCM:
    """x1=u1; x2=10 x1 - u2; x3=0.25 x2 + 2 u3; x4=x3 + u4; x5=-x4 + u5."""
    return _scm("causal_nf_chain5_linear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: 10 * v["x1"], _N, coef=-1.0),
        "x3": additive(["x2"], lambda v: 0.25 * v["x2"], _N, coef=2.0),
        "x4": additive(["x3"], lambda v: v["x3"], _N),
        "x5": additive(["x4"], lambda v: -v["x4"], _N),
    }, "linear-gaussian", ["x1", "x2", "x3"], "5-node linear chain")


# ------------------------------------------------------------------------------ triangle
def triangle_linear() -> GroundTruthSCM:
    """x1=u1 + 1; x2=10 x1 - u2; x3=0.5 x2 + x1 + u3."""
    return _scm("causal_nf_triangle_linear", {
        "x1": _root(1.0),
        "x2": additive(["x1"], lambda v: 10 * v["x1"], _N, coef=-1.0),
        "x3": additive(["x1", "x2"], lambda v: 0.5 * v["x2"] + v["x1"], _N),
    }, "linear-gaussian", ["x1", "x2"], "linear triangle")


def triangle_nonlinear() -> GroundTruthSCM:
    """x1=u1; x2=2 x1² + u2; x3=20/(1+exp(-x2² + x1)) + u3 (DCM's triangle without divisors)."""
    return _scm("causal_nf_triangle_nonlinear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: 2 * v["x1"] ** 2, _N),
        "x3": additive(["x1", "x2"], lambda v: 20 * sigmoid(v["x2"] ** 2 - v["x1"]), _N),
    }, "nonlinear additive", ["x1", "x2"], "non-linear triangle")


# ------------------------------------------------------------------------------ collider, fork
def collider_linear() -> GroundTruthSCM:
    """x1=u1; x2=2 - u2; x3=0.25 x2 - 0.5 x1 + 0.5 u3."""
    return _scm("causal_nf_collider_linear", {
        "x1": _root(),
        "x2": additive([], lambda v: 2.0, _N, coef=-1.0),
        "x3": additive(["x1", "x2"], lambda v: 0.25 * v["x2"] - 0.5 * v["x1"], _N, coef=0.5),
    }, "linear-gaussian", ["x2"], "linear collider x1 -> x3 <- x2")


def fork_linear() -> GroundTruthSCM:
    """x1=u1; x2=2 - u2; x3=0.25 x2 - 1.5 x1 + 0.5 u3; x4=x3 + 0.25 u4."""
    return _scm("causal_nf_fork_linear", {
        "x1": _root(),
        "x2": additive([], lambda v: 2.0, _N, coef=-1.0),
        "x3": additive(["x1", "x2"], lambda v: 0.25 * v["x2"] - 1.5 * v["x1"], _N, coef=0.5),
        "x4": additive(["x3"], lambda v: v["x3"], _N, coef=0.25),
    }, "linear-gaussian", ["x2", "x3"], "linear 'fork' x1, x2 -> x3 -> x4")


def fork_nonlinear() -> GroundTruthSCM:
    """x3=4/(1+exp(-x1-x2)) - x2² + u3/2; x4=20/(1+exp(x3²/2 - x3)) + u4 (DCM's Y, undivided)."""
    return _scm("causal_nf_fork_nonlinear", {
        "x1": _root(),
        "x2": _root(),
        "x3": additive(["x1", "x2"], lambda v: 4 * sigmoid(v["x1"] + v["x2"]) - v["x2"] ** 2, _N,
                       coef=0.5),
        "x4": additive(["x3"], lambda v: 20 * sigmoid(v["x3"] - v["x3"] ** 2 / 2), _N),
    }, "nonlinear additive", ["x2", "x3"], "non-linear 'fork' x1, x2 -> x3 -> x4")


# ------------------------------------------------------------------------------ diamond
def diamond_nonlinear() -> GroundTruthSCM:
    """x2=x1² + u2/2; x3=x2² - 2/(1+exp(-x1)) + u3/2; x4=x3/(|x2+2| + x3 + 0.5) + u4/10."""
    return _scm("causal_nf_diamond_nonlinear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: v["x1"] ** 2, _N, coef=0.5),
        "x3": additive(["x1", "x2"], lambda v: v["x2"] ** 2 - 2 * sigmoid(v["x1"]), _N, coef=0.5),
        "x4": additive(["x2", "x3"],
                       lambda v: v["x3"] / (np.abs(v["x2"] + 2) + v["x3"] + 0.5), _N, coef=0.1),
    }, "nonlinear additive", ["x1", "x2", "x3"], "non-linear diamond")


# ------------------------------------------------------------------------------ simpson
def simpson_nonlinear() -> GroundTruthSCM:
    """x2=softplus(1 - x1) + sqrt(3/20) u2; x3=tanh(2 x2) + 1.5 x1 - 1 + tanh(u3);
    x4=(x3 - 4)/5 + 3 + u4/sqrt(10)."""
    return _scm("causal_nf_simpson_nonlinear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: softplus(1 - v["x1"]), _N, coef=np.sqrt(3 / 20)),
        "x3": equation(
            ["x1", "x2"],
            lambda v, u: np.tanh(2 * v["x2"]) + 1.5 * v["x1"] - 1 + np.tanh(u),
            _N,
            inverse=lambda v, x: np.arctanh(x - np.tanh(2 * v["x2"]) - 1.5 * v["x1"] + 1),
            additive=True,
        ),
        "x4": additive(["x3"], lambda v: (v["x3"] - 4) / 5 + 3, _N, coef=1 / np.sqrt(10)),
    }, "nonlinear additive", ["x1", "x2", "x3"],
        "Simpson's-paradox SCM x1 -> x2 -> x3 -> x4, x1 -> x3, non-linear")


def simpson_symprod() -> GroundTruthSCM:
    """x2=2 tanh(2 x1) + u2/sqrt(10); x3=0.5 x1 x2 + u3/sqrt(2); x4=tanh(1.5 x1) + sqrt(3/10) u4."""
    return _scm("causal_nf_simpson_symprod", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: 2 * np.tanh(2 * v["x1"]), _N, coef=1 / np.sqrt(10)),
        "x3": additive(["x1", "x2"], lambda v: 0.5 * v["x1"] * v["x2"], _N, coef=1 / np.sqrt(2)),
        "x4": additive(["x1"], lambda v: np.tanh(1.5 * v["x1"]), _N, coef=np.sqrt(3 / 10)),
    }, "nonlinear additive", ["x1", "x2", "x3"],
        "Simpson sym-prod SCM x1 -> x2 -> x3, x1 -> x3, x1 -> x4, non-linear")


# ------------------------------------------------------------------------------ large backdoor
def _layer(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    return softplus(a + 1) + softplus(0.5 + b) - 3


def _layer_node(parent: str) -> Node:
    """``x = layer(parent, u)``, inverted as ``u = softplus⁻¹(x - softplus(pa + 1) + 3) - 0.5``."""
    return equation(
        [parent],
        lambda v, u: _layer(v[parent], u),
        _U,
        inverse=lambda v, x: softplus_inverse(x - softplus(v[parent] + 1) + 3) - 0.5,
        additive=True,
    )



def large_backdoor() -> GroundTruthSCM:
    """9-node large-backdoor SCM, ``layer(a, b) = softplus(a+1) + softplus(0.5+b) - 3``,
    ``U ~ Uniform(1e-6, 1)``; x9 = LaplaceICDF(loc=-softplus((1.3 x7 + x8)/3 + 1) + 2, 0.6, u9).
    """

    def x9_loc(v: dict[str, np.ndarray]) -> np.ndarray:
        return -softplus((1.3 * v["x7"] + v["x8"]) / 3 + 1) + 2

    return _scm("causal_nf_large_backdoor_nonlinear", {
        "x1": equation([], lambda v, u: softplus(1.8 * u) - 1, _U,
                       inverse=lambda v, x: softplus_inverse(x + 1) / 1.8, additive=True),
        "x2": additive(["x1"], lambda v: 1.5 * _layer(v["x1"], 0.0), _U, coef=0.25),
        "x3": _layer_node("x1"),
        "x4": _layer_node("x2"),
        "x5": _layer_node("x3"),
        "x6": _layer_node("x4"),
        "x7": _layer_node("x5"),
        "x8": additive(["x6"], lambda v: softplus(v["x6"] + 1) - 1, _U, coef=0.3),
        "x9": equation(["x7", "x8"], lambda v, u: laplace_icdf(u, x9_loc(v), 0.6), _U,
                       inverse=lambda v, x: laplace_cdf(x, x9_loc(v), 0.6), additive=True),
    }, "non-gaussian", ["x1", "x2", "x3", "x5"],
        "9-node large-backdoor SCM, non-linear, U ~ Uniform(1e-6, 1)")


SCMS: dict[str, Callable[[], GroundTruthSCM]] = {
    "causal_nf_chain_linear": chain_linear,
    "causal_nf_chain_nonlinear": chain_nonlinear,
    "causal_nf_chain4_linear": chain4_linear,
    "causal_nf_chain5_linear": chain5_linear,
    "causal_nf_triangle_linear": triangle_linear,
    "causal_nf_triangle_nonlinear": triangle_nonlinear,
    "causal_nf_collider_linear": collider_linear,
    "causal_nf_fork_linear": fork_linear,
    "causal_nf_fork_nonlinear": fork_nonlinear,
    "causal_nf_diamond_nonlinear": diamond_nonlinear,
    "causal_nf_simpson_nonlinear": simpson_nonlinear,
    "causal_nf_simpson_symprod": simpson_symprod,
    "causal_nf_large_backdoor_nonlinear": large_backdoor,
}
"""Registry entries of this module: name -> builder."""
