r"""Sharp bounds on binary causal queries by linear programming over response functions.

Every SCM over binary nodes is equivalent, for interventional queries, to a *canonical* one
(Balke & Pearl 1994, 1997; Zhang, Tian & Bareinboim 2022): each node ``v`` picks a response
function ``r_v : {0,1}^{|pa_v|} -> {0,1}`` of its observed parents, and the latents only choose
the response functions. Latents of different c-components are independent, so the model is a
joint distribution ``q_C(r_C)`` per c-component ``C``. A node alone in its c-component has
independent noise: for interventional queries only its kernel ``P(v | pa_v)`` matters, and
that kernel is identified.

With one c-component ``C*`` of two or more nodes (true of every NCM-paper graph), the data fix
``Q_{C*}(v) = P(v) / Π_{i ∉ C*} P(v_i | pa_i)`` (Tian & Pearl 2002), which is linear in
``q = q_{C*}``:

    Q_{C*}(v) = Σ_r q(r) Π_{i ∈ C*} 1[r_i(pa_i(v)) = v_i],

and so is the query ``P(y = 1 | do(x = a)) = Σ_{v: x=a, y=1} Π_{i ∉ C*, i ≠ x} P(v_i | pa_i)
Σ_r q(r) Π_{i ∈ C* \ x} 1[r_i(pa_i(v)) = v_i]`` (truncated factorisation). Minimising and
maximising it over ``q ≥ 0, Σ q = 1`` gives the sharp bounds; for the instrument graph
``z -> x -> y; x <-> y`` this is the LP of Balke & Pearl (1997).

The LP lets ``q`` be *any* joint distribution over the component's response functions. That
is exactly the model class when the component is a bidirected clique (bow, instrument,
front-door, extended bow): the bounds are then sharp (:attr:`LPBounds.sharp`). When the
component is connected but not complete (M, napkin, bad M: ``x <-> z <-> y`` without
``x <-> y``), the graph also makes some response functions independent, a non-linear
constraint the LP drops: its interval is then a valid *outer* bound, not necessarily sharp.

Finite samples can put ``P̂(v)`` slightly outside the model class (e.g. violate the
instrumental inequality). The LP therefore first finds the smallest L1 misfit ``s*`` of the
constraints (reported as :attr:`LPBounds.slack`, 0 for population tables) and then bounds the
query over the distributions within that misfit.

Example:
    >>> from deepscm.datasets.confounded import load_confounded
    >>> scm = load_confounded("iv", seed=0)
    >>> b = lp_bounds(scm.graph, scm.distribution(), "ate(x, y)", weight="p")
    >>> b.lower <= scm.ate() <= b.upper
    True
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from ..errors import ConfigError, DataError, TrainingError, UnsupportedGraphError
from ..graph import CausalGraph
from .queries import BinaryQuery, as_graph, binary_table, parse_binary_query

__all__ = ["LPBounds", "lp_bounds"]

MAX_TYPES = 1 << 16
"""Largest number of joint response-function types the LP enumerates."""


@dataclass(frozen=True)
class LPBounds:
    """Sharp bounds ``[lower, upper]`` on a binary query from the response-function LP.

    Attributes:
        query: the query, readable.
        lower, upper: the bounds.
        slack: smallest L1 distance between the data's ``Q_{C*}`` and the model class (0 for
            an exact population table; small positive values are sampling noise).
        n_types: number of joint response-function types of the confounded component.
        component: the confounded c-component ``C*`` (empty for a graph with no ``<->``).
        sharp: whether ``C*`` is a bidirected clique (or empty), so that the LP's model class
            is exactly the graph's and the bounds are sharp; otherwise they are outer bounds.
    """

    query: str
    lower: float
    upper: float
    slack: float
    n_types: int
    component: tuple[str, ...]
    sharp: bool

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def contains(self, value: float, tol: float = 1e-9) -> bool:
        """Whether ``value`` lies in ``[lower - tol, upper + tol]``."""
        return self.lower - tol <= value <= self.upper + tol

    def __repr__(self) -> str:
        return (
            f"LPBounds({self.query}: [{self.lower:.4f}, {self.upper:.4f}], width "
            f"{self.width:.4f}, {'sharp' if self.sharp else 'outer'}, slack {self.slack:.2g}, "
            f"{self.n_types} types)"
        )


def lp_bounds(
    graph: CausalGraph | str, data: pd.DataFrame, query: str | BinaryQuery, *, weight: str | None = None
) -> LPBounds:
    """Sharp bounds on ``query`` (``"p(y | do(x))"``, ``"p(y | do(x=0))"`` or ``"ate(x, y)"``).

    Args:
        graph: the causal graph over binary nodes, ``<->`` for hidden confounders.
        data: binary samples, or a probability table with the probabilities in ``weight``
            (e.g. :meth:`ConfoundedSCM.distribution`, ``weight="p"``).
        weight: optional column of row weights or probabilities.

    Raises:
        UnsupportedGraphError: more than one c-component with two or more nodes (the
            problem is then bilinear, not an LP).
        ConfigError: an ``ett`` query, or too many response-function types.
        DataError: non-binary or missing columns, or a kernel ``P(v | pa)`` the query needs
            at a parent configuration the data never shows (positivity).
    """
    g = as_graph(graph)
    q = parse_binary_query(query).check(g)
    if q.kind == "ett":
        raise ConfigError("lp_bounds handles 'p(y | do(x))' and 'ate(x, y)'; 'ett' is not implemented")
    nodes = g.nodes
    table = binary_table(g, data, weight)
    joint = np.zeros((2,) * len(nodes))
    joint[tuple(table[n].to_numpy() for n in nodes)] = table["__w"].to_numpy()
    joint /= joint.sum()
    grid = np.array(list(itertools.product((0, 1), repeat=len(nodes))), dtype=int)  # (V, n)
    p_v = joint.reshape(-1)

    big = [c for c in g.c_components() if len(c) > 1]
    if len(big) > 1:
        raise UnsupportedGraphError(
            f"lp_bounds needs at most one c-component with two or more nodes; this graph has "
            f"{len(big)} ({'; '.join(', '.join(sorted(c)) for c in big)}), which makes the "
            "bound a bilinear program"
        )
    comp = [n for n in nodes if big and n in big[0]]
    singles = [n for n in nodes if n not in comp]
    kernels = {n: _kernel(g, n, grid, p_v) for n in singles}  # P(v_i | pa_i(v)) per row of grid
    types, indicator = _indicators(g, comp, grid)  # (T, |C*|), (T, V, |C*|)
    if len(types) > MAX_TYPES:
        raise ConfigError(f"{len(types)} response-function types exceed the limit {MAX_TYPES}")

    # constraints Σ_r q(r) Π_{i∈C*} 1[...] = P(v) / Π_{i∉C*} P(v_i | pa_i)
    single_all = np.ones(len(grid))
    for n in singles:
        single_all = single_all * np.nan_to_num(kernels[n], nan=0.0)
    rows = np.flatnonzero(single_all > 0) if comp else np.array([], dtype=int)
    a_eq = indicator[:, rows, :].prod(axis=2).T  # (K, T)
    b_eq = p_v[rows] / single_all[rows]

    def coefficients(value: int) -> np.ndarray:
        keep = (grid[:, nodes.index(q.treatment)] == value) & (grid[:, nodes.index(q.outcome)] == 1)
        weight_v = np.ones(len(grid))
        for n in singles:
            if n != q.treatment:
                weight_v = weight_v * kernels[n]
        weight_v = weight_v[keep]
        cols = [j for j, n in enumerate(comp) if n != q.treatment]
        ind = indicator[:, keep][:, :, cols].prod(axis=2)  # (T, V_keep)
        used = ind.any(axis=0)
        if np.isnan(weight_v[used]).any():
            raise DataError(
                f"the query {q} needs P(v | pa) at a parent configuration the data never shows "
                "(positivity violation); collect data covering every parent configuration"
            )
        return np.nan_to_num(ind * weight_v).sum(axis=1)

    c = coefficients(q.value) if q.kind == "p" else coefficients(1) - coefficients(0)
    lower, upper, slack = _solve(c, a_eq, b_eq)
    clique = all(frozenset((a, b)) in {frozenset(e) for e in g.bidirected_edges}
                 for a, b in itertools.combinations(comp, 2))
    return LPBounds(str(q), lower, upper, slack, len(types), tuple(comp), clique)


def _kernel(g: CausalGraph, node: str, grid: np.ndarray, p_v: np.ndarray) -> np.ndarray:
    """``P(v_i | pa_i)`` evaluated at each row of ``grid``; NaN where ``P(pa_i) = 0``."""
    nodes = g.nodes
    pa = [nodes.index(p) for p in g.parents(node)]
    i = nodes.index(node)
    key = [tuple(r) for r in grid[:, pa]]
    num: dict[tuple, float] = {}
    den: dict[tuple, float] = {}
    for k, r, p in zip(key, grid, p_v):
        den[k] = den.get(k, 0.0) + p
        num[k + (r[i],)] = num.get(k + (r[i],), 0.0) + p
    return np.array([num[k + (r[i],)] / den[k] if den[k] > 0 else np.nan for k, r in zip(key, grid)])


def _indicators(g: CausalGraph, comp: list[str], grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joint response types of ``comp`` and ``1[r_i(pa_i(v)) = v_i]`` per (type, row, node)."""
    nodes = g.nodes
    per_node = [list(itertools.product((0, 1), repeat=2 ** len(g.parents(n)))) for n in comp]
    types = np.array(list(itertools.product(*[range(len(t)) for t in per_node])), dtype=int)
    types = types.reshape(len(types), len(comp))
    ind = np.ones((len(types), len(grid), len(comp)), dtype=bool)
    for j, n in enumerate(comp):
        pa = [nodes.index(p) for p in g.parents(n)]
        pa_idx = (grid[:, pa] * (2 ** np.arange(len(pa))[::-1])).sum(axis=1) if pa else np.zeros(len(grid), int)
        table = np.array(per_node[j])  # (types of n, 2^k) -> output
        out = table[types[:, j]][:, pa_idx]  # (T, V)
        ind[:, :, j] = out == grid[:, nodes.index(n)][None, :]
    return types, ind


def _solve(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """``min / max c·q`` over the distributions ``q`` whose L1 misfit ``|a q - b|_1`` is minimal."""
    t, k = a.shape[1], a.shape[0]
    a_eq = np.vstack([np.hstack([a, np.eye(k), -np.eye(k)]), np.hstack([np.ones(t), np.zeros(2 * k)])])
    b_eq = np.append(b, 1.0)
    cost_fit = np.concatenate([np.zeros(t), np.ones(2 * k)])
    fit = linprog(cost_fit, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if fit.status != 0:
        raise TrainingError(f"the bounding LP failed to find a feasible point: {fit.message}")
    slack = float(fit.fun)
    a_ub = cost_fit[None, :]
    out = []
    for sign in (1.0, -1.0):
        obj = np.concatenate([sign * c, np.zeros(2 * k)])
        res = linprog(obj, A_ub=a_ub, b_ub=[slack + 1e-9 + 1e-7 * slack], A_eq=a_eq, b_eq=b_eq,
                      bounds=(0, None), method="highs")
        if res.status != 0:
            raise TrainingError(f"the bounding LP failed: {res.message}")
        out.append(sign * float(res.fun))
    return out[0], out[1], slack
