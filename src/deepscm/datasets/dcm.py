"""SCMs of the DCM paper: Chao, Blöbaum, Patel, Kasiviswanathan, "Modeling Causal Mechanisms with
Diffusion Models for Interventional and Counterfactual Queries" (arXiv:2302.00860).

Equations are those of the paper's ``experiments/structural_equations.py`` (triangle, chain,
diamond, Y, ladder), each in a ``nonlinear`` (additive) and a ``nonadditive`` form, with the
paper's normalising divisors (2.41, 0.65, ...) and ``U_i ~ N(0, 1)``. ``a / (1 + exp(-t))`` is
written as ``a * sigmoid(t)`` (same function, no overflow). Protocol: intervene on every node
with descendants (ladder: ``x01`` and ``x04``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import GroundTruthSCM, Node, additive, equation, normal, sigmoid

__all__ = ["LADDER_SEED", "SCMS"]

LADDER_SEED = 2302
"""Seed of the ladder's random weight matrices (fixed, so every load gives the same SCM)."""

_SOURCE = "DCM, Chao et al. 2023"
_N = normal()


def _root() -> Node:
    return additive([], lambda v: 0.0, _N)


def _scm(name: str, eqs: dict[str, Node], nonadditive: bool, **kwargs) -> GroundTruthSCM:
    family = "non-additive" if nonadditive else "nonlinear additive"
    structure = name.split("_")[1]
    return GroundTruthSCM(
        name,
        eqs,
        family=family,
        description=f"{structure} SCM, {'nonadditive' if nonadditive else 'nonlinear'} "
        f"equations, U ~ N(0,1) ({_SOURCE}; {family})",
        **kwargs,
    )


# ------------------------------------------------------------------------------ triangle
def triangle_nonlinear() -> GroundTruthSCM:
    """x1=u1; x2=(u2 + 2 x1²)/3; x3=(u3 + 20/(1+exp(-x2² + x1)))/2.41."""
    return _scm("dcm_triangle_nonlinear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: 2 * v["x1"] ** 2, _N, divisor=3.0),
        "x3": additive(["x1", "x2"], lambda v: 20 * sigmoid(v["x2"] ** 2 - v["x1"]), _N,
                       divisor=2.41),
    }, nonadditive=False)


def triangle_nonadditive() -> GroundTruthSCM:
    """x1=u1; x2=(x1/((u2+x1)²+1) + u2/4)/0.47; x3=((|u3|+0.3)(-x1 + x2/2 + |u3|/5)²)/0.93."""
    return _scm("dcm_triangle_nonadditive", {
        "x1": _root(),
        "x2": equation(["x1"], lambda v, u: (v["x1"] / ((u + v["x1"]) ** 2 + 1) + u / 4) / 0.47,
                       _N),
        "x3": equation(
            ["x1", "x2"],
            lambda v, u: (np.abs(u) + 0.3) * (-v["x1"] + v["x2"] / 2 + np.abs(u) / 5) ** 2 / 0.93,
            _N,
        ),
    }, nonadditive=True)


# ------------------------------------------------------------------------------ chain
def chain_nonlinear() -> GroundTruthSCM:
    """x1=u1; x2=(exp(x1/2) + u2/4)/0.65; x3=((x2-5)³/15 + u3)/2.13."""
    return _scm("dcm_chain_nonlinear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: np.exp(v["x1"] / 2), _N, coef=0.25, divisor=0.65),
        "x3": additive(["x2"], lambda v: (v["x2"] - 5) ** 3 / 15, _N, divisor=2.13),
    }, nonadditive=False)


def chain_nonadditive() -> GroundTruthSCM:
    """x1=u1; x2=1/((u2+x1)² + 0.5)/0.63; x3=sqrt(x2 + |u3|)/(0.1 + x2)."""
    return _scm("dcm_chain_nonadditive", {
        "x1": _root(),
        "x2": equation(["x1"], lambda v, u: 1 / ((u + v["x1"]) ** 2 + 0.5) / 0.63, _N),
        "x3": equation(["x2"], lambda v, u: np.sqrt(v["x2"] + np.abs(u)) / (0.1 + v["x2"]), _N),
    }, nonadditive=True)


# ------------------------------------------------------------------------------ diamond
def diamond_nonlinear() -> GroundTruthSCM:
    """x2=(x1² + u2/2)/1.5; x3=(x2² - 2/(1+exp(-x1)) + u3/2)/1.27;
    x4=(x3/(|x2+x3|+0.5) + u4/5)/0.54."""
    return _scm("dcm_diamond_nonlinear", {
        "x1": _root(),
        "x2": additive(["x1"], lambda v: v["x1"] ** 2, _N, coef=0.5, divisor=1.5),
        "x3": additive(["x1", "x2"], lambda v: v["x2"] ** 2 - 2 * sigmoid(v["x1"]), _N,
                       coef=0.5, divisor=1.27),
        "x4": additive(["x2", "x3"], lambda v: v["x3"] / (np.abs(v["x2"] + v["x3"]) + 0.5), _N,
                       coef=0.2, divisor=0.54),
    }, nonadditive=False)


def diamond_nonadditive() -> GroundTruthSCM:
    """x2=(sqrt|x1| (|u2|+0.1)/2 + |x1| + u2/5)/0.83; x3=6/(1 + (|u3|+0.5) exp(-x2 + x1));
    x4=((x3 + x2 + u4/4 - 7)² - 20)/7.27."""
    return _scm("dcm_diamond_nonadditive", {
        "x1": _root(),
        "x2": equation(
            ["x1"],
            lambda v, u: (np.sqrt(np.abs(v["x1"])) * (np.abs(u) + 0.1) / 2 + np.abs(v["x1"])
                          + u / 5) / 0.83,
            _N,
        ),
        # 6 / (1 + a exp(x1 - x2)) == 6 sigmoid(x2 - x1 - log a), a = |u3| + 0.5
        "x3": equation(["x1", "x2"],
                       lambda v, u: 6 * sigmoid(v["x2"] - v["x1"] - np.log(np.abs(u) + 0.5)), _N),
        "x4": equation(["x2", "x3"],
                       lambda v, u: ((v["x3"] + v["x2"] + u / 4 - 7) ** 2 - 20) / 7.27, _N),
    }, nonadditive=True)


# ------------------------------------------------------------------------------ Y
def y_nonlinear() -> GroundTruthSCM:
    """x3=(-x2² + 4/(1+exp(-x1-x2)) + u3/2)/1.83; x4=(20/(1+exp(x3²/2 - x3)) + u4)/3.26."""
    return _scm("dcm_y_nonlinear", {
        "x1": _root(),
        "x2": _root(),
        "x3": additive(["x1", "x2"], lambda v: -v["x2"] ** 2 + 4 * sigmoid(v["x1"] + v["x2"]),
                       _N, coef=0.5, divisor=1.83),
        "x4": additive(["x3"], lambda v: 20 * sigmoid(v["x3"] - v["x3"] ** 2 / 2), _N,
                       divisor=3.26),
    }, nonadditive=False)


def y_nonadditive() -> GroundTruthSCM:
    """x3=(x1 - 2 x2 - 2)(|u3| + 0.2)/2.87; x4=1/(|u4 + 2 x3| + 0.5)/0.43."""
    return _scm("dcm_y_nonadditive", {
        "x1": _root(),
        "x2": _root(),
        "x3": equation(["x1", "x2"],
                       lambda v, u: (v["x1"] - 2 * v["x2"] - 2) * (np.abs(u) + 0.2) / 2.87, _N),
        "x4": equation(["x3"], lambda v, u: 1 / (np.abs(u + v["x3"] * 2) + 0.5) / 0.43, _N),
    }, nonadditive=True)


# ------------------------------------------------------------------------------ ladder
_LADDER_EDGES = [(1, 2), (1, 3), (2, 4), (3, 4), (3, 5), (4, 6), (5, 6), (5, 7), (6, 8),
                 (7, 8), (7, 9), (8, 10), (9, 10)]


def _silu(x: np.ndarray) -> np.ndarray:
    return x * sigmoid(x)


def _ladder(nonadditive: bool) -> GroundTruthSCM:
    """Ladder of 10 three-dimensional super-nodes (30 scalar nodes ``x01..x30``).

    For a non-root super-node ``k`` with scalar parents ``P`` (all 3x3 pairs of each super-edge),
    ``W1_k ~ U(-1, 1)^(16 x (|P| + nonadditive))`` and ``W2_k ~ U(-1, 1)^(3 x 16)``, drawn in
    super-node order from ``default_rng(LADDER_SEED)``; scalar node ``j`` with ``s = (j-1) % 3``:
    nonlinear ``x_j = 0.75 (W2 silu(W1 P))_s + u_j``, nonadditive
    ``x_j = 0.75 (W2 silu(W1 [P, u_j]))_s``.
    """
    rng = np.random.default_rng(LADDER_SEED)

    def scalar(k: int) -> list[str]:
        return [f"x{3 * (k - 1) + i:02d}" for i in (1, 2, 3)]

    eqs: dict[str, Node] = {}
    for k in range(1, 11):
        parents = [p for a, b in _LADDER_EDGES if b == k for p in scalar(a)]
        if not parents:
            eqs.update({x: _root() for x in scalar(k)})
            continue
        w1 = rng.uniform(-1, 1, (16, len(parents) + int(nonadditive)))
        w2 = rng.uniform(-1, 1, (3, 16))
        for s, x in enumerate(scalar(k)):
            eqs[x] = _ladder_node(parents, w1, w2[s], nonadditive)
    return _scm(f"dcm_ladder_{'nonadditive' if nonadditive else 'nonlinear'}", eqs,
                nonadditive=nonadditive, intervention_nodes=["x01", "x04"])


def _ladder_node(parents: list[str], w1: np.ndarray, w2_row: np.ndarray,
                 nonadditive: bool) -> Node:
    def net(inputs: np.ndarray) -> np.ndarray:
        return 0.75 * _silu(inputs @ w1.T) @ w2_row

    def stack(v: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([v[p] for p in parents], axis=1)

    if nonadditive:
        return equation(parents, lambda v, u: net(np.column_stack([stack(v), u])), _N)
    return additive(parents, lambda v: net(stack(v)), _N)


def ladder_nonlinear() -> GroundTruthSCM:
    """30-node ladder, additive random-MLP mechanisms (see :func:`_ladder`)."""
    return _ladder(nonadditive=False)


def ladder_nonadditive() -> GroundTruthSCM:
    """30-node ladder, noise fed into the random MLP (see :func:`_ladder`)."""
    return _ladder(nonadditive=True)


SCMS: dict[str, Callable[[], GroundTruthSCM]] = {
    "dcm_triangle_nonlinear": triangle_nonlinear,
    "dcm_triangle_nonadditive": triangle_nonadditive,
    "dcm_chain_nonlinear": chain_nonlinear,
    "dcm_chain_nonadditive": chain_nonadditive,
    "dcm_diamond_nonlinear": diamond_nonlinear,
    "dcm_diamond_nonadditive": diamond_nonadditive,
    "dcm_y_nonlinear": y_nonlinear,
    "dcm_y_nonadditive": y_nonadditive,
    "dcm_ladder_nonlinear": ladder_nonlinear,
    "dcm_ladder_nonadditive": ladder_nonadditive,
}
"""Registry entries of this module: name -> builder."""
