"""SCMs of VACA: Sanchez-Martin, Rateike, Valera, "VACA: Designing Variational Graph Autoencoders
for Causal Queries" (AAAI 2022), ``datasets/*.py``.

``N(m, v)`` in the paper takes a **variance**; ``MoG(p, means, variances)`` is a Gaussian mixture.
The chain is the same in the paper's LIN/NLIN/NADD variants, so it is registered once. Loan is
the 7-node SCM of Karimi et al. (gender, age, education, loan amount, duration, income,
savings), with a binary ``x1`` (labels 0/1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import (
    GroundTruthSCM,
    Node,
    NoiseSampler,
    additive,
    categorical,
    equation,
    gamma,
    logit,
    mixture_of_gaussians,
    normal,
    sigmoid,
)

__all__ = ["SCMS"]

_SOURCE = "VACA, Sanchez-Martin et al. 2022"
_MOG = mixture_of_gaussians([0.5, 0.5], [-2.0, 1.5], [1.5, 1.0])
_MOG_NADD = mixture_of_gaussians([0.5, 0.5], [-2.5, 2.5], [1.0, 1.0])


def _var(variance: float) -> NoiseSampler:
    """``N(0, variance)``, the paper's parametrisation."""
    return normal(float(np.sqrt(variance)))


def _root(noise: NoiseSampler) -> Node:
    return additive([], lambda v: 0.0, noise)


def _scm(name: str, eqs: dict[str, Node], family: str, what: str, **kwargs) -> GroundTruthSCM:
    return GroundTruthSCM(name, eqs, family=family,
                          description=f"{what} ({_SOURCE}; {family})", **kwargs)


def _signed_sq_node(noise: NoiseSampler) -> Node:
    """``x3 = -1 + 0.1 sign(u3)(x1² + x2²) + u3``: monotone in ``u3``, hence invertible."""

    def f(v: dict[str, np.ndarray], u: np.ndarray) -> np.ndarray:
        return -1 + 0.1 * np.sign(u) * (v["x1"] ** 2 + v["x2"] ** 2) + u

    def inverse(v: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        y = x + 1
        return y - 0.1 * np.sign(y) * (v["x1"] ** 2 + v["x2"] ** 2)

    return equation(["x1", "x2"], f, noise, inverse=inverse)


# ------------------------------------------------------------------------------ triangle
def triangle_linear() -> GroundTruthSCM:
    """x1=u1 ~ MoG; x2=-x1 + u2; x3=x1 + 0.25 x2 + u3."""
    return _scm("vaca_triangle_linear", {
        "x1": _root(_MOG),
        "x2": additive(["x1"], lambda v: -v["x1"], _var(1)),
        "x3": additive(["x1", "x2"], lambda v: v["x1"] + 0.25 * v["x2"], _var(1)),
    }, "non-gaussian", "triangle LIN, Gaussian-mixture root", intervention_nodes=["x1", "x2"])


def triangle_nonlinear() -> GroundTruthSCM:
    """x2=-1 + 3/(1+exp(-2 x1)) + u2, u2 ~ N(0, 0.1); x3=x1 + 0.25 x2² + u3."""
    return _scm("vaca_triangle_nonlinear", {
        "x1": _root(_MOG),
        "x2": additive(["x1"], lambda v: -1 + 3 * sigmoid(2 * v["x1"]), _var(0.1)),
        "x3": additive(["x1", "x2"], lambda v: v["x1"] + 0.25 * v["x2"] ** 2, _var(1)),
    }, "non-gaussian", "triangle NLIN, Gaussian-mixture root", intervention_nodes=["x1", "x2"])


def triangle_nonadditive() -> GroundTruthSCM:
    """x2=0.25 sign(u2) x1² (1 + u2²), u2 ~ N(0, 0.25); x3=-1 + 0.1 sign(u3)(x1² + x2²) + u3,
    u3 ~ N(0, 0.25²). Both are strictly increasing in the noise, so abduction is exact."""

    def x2_inverse(v: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        s = x / (0.25 * v["x1"] ** 2)  # = sign(u2) (1 + u2²)
        return np.sign(s) * np.sqrt(np.maximum(np.abs(s) - 1, 0.0))

    return _scm("vaca_triangle_nonadditive", {
        "x1": _root(_MOG_NADD),
        "x2": equation(["x1"], lambda v, u: 0.25 * np.sign(u) * v["x1"] ** 2 * (1 + u ** 2),
                       _var(0.25), inverse=x2_inverse),
        "x3": _signed_sq_node(_var(0.25 ** 2)),
    }, "non-additive", "triangle NADD", intervention_nodes=["x1", "x2"])


# ------------------------------------------------------------------------------ chain
def chain_linear() -> GroundTruthSCM:
    """x1=u1 ~ MoG; x2=-x1 + u2; x3=0.25 x2 + u3 (identical in LIN/NLIN/NADD)."""
    return _scm("vaca_chain_linear", {
        "x1": _root(_MOG),
        "x2": additive(["x1"], lambda v: -v["x1"], _var(1)),
        "x3": additive(["x2"], lambda v: 0.25 * v["x2"], _var(1)),
    }, "non-gaussian", "chain (all variants), Gaussian-mixture root")


# ------------------------------------------------------------------------------ collider
def collider_linear() -> GroundTruthSCM:
    """x3=0.05 x1 + 0.25 x2 + u3, x1 ~ MoG."""
    return _scm("vaca_collider_linear", {
        "x1": _root(_MOG),
        "x2": _root(_var(1)),
        "x3": additive(["x1", "x2"], lambda v: 0.05 * v["x1"] + 0.25 * v["x2"], _var(1)),
    }, "non-gaussian", "collider LIN, Gaussian-mixture root")


def collider_nonlinear() -> GroundTruthSCM:
    """x3=0.05 x1 + 0.25 x2² + u3, x1 ~ MoG, u2 ~ N(0, 0.1)."""
    return _scm("vaca_collider_nonlinear", {
        "x1": _root(_MOG),
        "x2": _root(_var(0.1)),
        "x3": additive(["x1", "x2"], lambda v: 0.05 * v["x1"] + 0.25 * v["x2"] ** 2, _var(1)),
    }, "non-gaussian", "collider NLIN, Gaussian-mixture root")


def collider_nonadditive() -> GroundTruthSCM:
    """x3=-1 + 0.1 sign(u3)(x1² + x2²) u3 = -1 + 0.1 |u3| (x1² + x2²): not invertible in u3."""
    return _scm("vaca_collider_nonadditive", {
        "x1": _root(_MOG_NADD),
        "x2": _root(_var(0.25)),
        "x3": equation(
            ["x1", "x2"],
            lambda v, u: -1 + 0.1 * np.sign(u) * (v["x1"] ** 2 + v["x2"] ** 2) * u,
            _var(0.25 ** 2),
        ),
    }, "non-additive", "collider NADD")


# ------------------------------------------------------------------------------ M-graph
_MGRAPH_PARENTS = {"x3": ["x1"], "x4": ["x1", "x2"], "x5": ["x2"]}


def mgraph_linear() -> GroundTruthSCM:
    """x3=x1 + u3; x4=-x2 + 0.5 x1 + u4; x5=-1.5 x2 + u5; all u ~ N(0, 1)."""
    return _scm("vaca_mgraph_linear", {
        "x1": _root(_var(1)),
        "x2": _root(_var(1)),
        "x3": additive(["x1"], lambda v: v["x1"], _var(1)),
        "x4": additive(["x1", "x2"], lambda v: -v["x2"] + 0.5 * v["x1"], _var(1)),
        "x5": additive(["x2"], lambda v: -1.5 * v["x2"], _var(1)),
    }, "linear-gaussian", "M-graph LIN")


def mgraph_nonlinear() -> GroundTruthSCM:
    """x3=x1 + 0.5 x1² + u3; x4=-x2 + 0.5 x1² + u4; x5=-1.5 x2² + u5."""
    return _scm("vaca_mgraph_nonlinear", {
        "x1": _root(_var(1)),
        "x2": _root(_var(1)),
        "x3": additive(["x1"], lambda v: v["x1"] + 0.5 * v["x1"] ** 2, _var(1)),
        "x4": additive(["x1", "x2"], lambda v: -v["x2"] + 0.5 * v["x1"] ** 2, _var(1)),
        "x5": additive(["x2"], lambda v: -1.5 * v["x2"] ** 2, _var(1)),
    }, "nonlinear additive", "M-graph NLIN")


def mgraph_nonadditive() -> GroundTruthSCM:
    """x3=x1 u3; x4=(-x2 + 0.5 x1²) u4; x5=(-1.5 x2²) u5 (inverted by division)."""
    scales = {
        "x3": lambda v: v["x1"],
        "x4": lambda v: -v["x2"] + 0.5 * v["x1"] ** 2,
        "x5": lambda v: -1.5 * v["x2"] ** 2,
    }

    def node(x: str) -> Node:
        g = scales[x]
        return equation(_MGRAPH_PARENTS[x], lambda v, u: g(v) * u, _var(1),
                        inverse=lambda v, y: y / g(v))

    return _scm("vaca_mgraph_nonadditive", {
        "x1": _root(_var(1)),
        "x2": _root(_var(1)),
        **{x: node(x) for x in scales},
    }, "non-additive", "M-graph NADD")


# ------------------------------------------------------------------------------ loan
def loan() -> GroundTruthSCM:
    """Loan SCM (Karimi et al.): x1 gender ~ Bern(0.5); x2 age = -35 + Gamma(10, scale 3.5);
    x3 edu = -0.5 + sigmoid(-1 + 0.5 x1 + sigmoid(0.1 x2) + u3); x4 loan amount; x5 duration;
    x6 income; x7 savings (see the equations below)."""

    def edu_pre(v: dict[str, np.ndarray]) -> np.ndarray:
        return -1 + 0.5 * v["x1"] + sigmoid(0.1 * v["x2"])

    return _scm("vaca_loan", {
        "x1": categorical([], [0, 1], lambda v: [0.5, 0.5]),
        "x2": additive([], lambda v: -35.0, gamma(10, 3.5)),
        "x3": equation(["x1", "x2"], lambda v, u: -0.5 + sigmoid(edu_pre(v) + u), _var(0.25),
                       inverse=lambda v, x: logit(x + 0.5) - edu_pre(v)),
        "x4": additive(["x1", "x2"],
                       lambda v: 1 + 0.01 * (v["x2"] - 5) * (5 - v["x2"]) + v["x1"], _var(4)),
        "x5": additive(["x1", "x2", "x4"],
                       lambda v: -1 + 0.1 * v["x2"] + 2 * v["x1"] + v["x4"], _var(9)),
        "x6": additive(["x1", "x2", "x3"],
                       lambda v: -4 + 0.1 * (v["x2"] + 35) + 2 * v["x1"] + v["x1"] * v["x3"],
                       _var(4)),
        "x7": additive(["x6"], lambda v: -4 + 1.5 * (v["x6"] > 0) * v["x6"], _var(25)),
    }, "mixed", "7-node loan SCM (x1 gender binary, x2 age, x3 education, x4 loan amount, "
                "x5 duration, x6 income, x7 savings)",
        intervention_nodes=["x1", "x2", "x4", "x6"])


SCMS: dict[str, Callable[[], GroundTruthSCM]] = {
    "vaca_triangle_linear": triangle_linear,
    "vaca_triangle_nonlinear": triangle_nonlinear,
    "vaca_triangle_nonadditive": triangle_nonadditive,
    "vaca_chain_linear": chain_linear,
    "vaca_collider_linear": collider_linear,
    "vaca_collider_nonlinear": collider_nonlinear,
    "vaca_collider_nonadditive": collider_nonadditive,
    "vaca_mgraph_linear": mgraph_linear,
    "vaca_mgraph_nonlinear": mgraph_nonlinear,
    "vaca_mgraph_nonadditive": mgraph_nonadditive,
    "vaca_loan": loan,
}
"""Registry entries of this module: name -> builder."""
