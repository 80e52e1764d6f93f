"""Falsification of a causal graph from observational data alone (Eulig et al. 2023).

A DAG ``G`` implies the local Markov conditions ``X ⟂ Y | pa(X)`` for every node ``X`` and
every non-descendant ``Y`` of ``X`` that is not a parent. :func:`falsify` tests each with a
regression-residual conditional-independence test:

- regress ``X`` and ``Y`` on ``Z = pa(X)`` with a flexible regressor and keep the residuals
  ``r_X = X − Ê[X | Z]``, ``r_Y = Y − Ê[Y | Z]`` (discrete columns one-hot encoded, one
  residual column per category); the default regressor is kernel ridge regression on random
  Fourier features of a Gaussian kernel (median-heuristic bandwidth, 200 features plus the
  linear terms) with the ridge ``λ`` chosen by exact leave-one-out error and *leave-one-out*
  residuals ``e_i / (1 − h_ii)``, so the residuals are not over-fitted;
  ``regressor="hgb"`` uses scikit-learn's ``HistGradientBoostingRegressor`` with 2-fold
  cross-fitted residuals instead;
- test ``r_X ⟂ r_Y`` with the HSIC permutation test of
  :func:`~deepscm.evaluation.validation.hsic_test` (Gretton et al. 2008); ``Z = ∅`` (a root)
  tests ``X ⟂ Y`` directly. A condition is *violated* when its p-value is below ``alpha_ci``.

This is a test of conditional mean independence of ``X, Y`` given ``Z`` followed by full
independence of the residuals — it detects dependence that survives regression on ``Z``
(the common nonlinear-additive case), not every possible conditional dependence.

**Permutation baseline** (Eulig et al. 2023, as in DoWhy's ``gcm.falsify_graph``): the same
count of violations is computed for graphs whose node labels are permuted at random. With
``v`` the given graph's violations and ``v_π`` those of the permuted graphs,

``p_LMC = #{π : v_π / t_π ≤ v / t} / N``   (``t`` the number of tests)

and ``p_MEC`` the share of permuted graphs in the same Markov equivalence class (same skeleton
and v-structures) as the given one. As in DoWhy's ``EvaluationResult``, the graph is
**rejected** iff ``p_LMC > alpha > p_MEC``: it is falsifiable (few random relabellings entail
the same independences) and it is *not* significantly better than a random relabelling, i.e.
its violations are not below the ``alpha``-quantile of the permuted graphs'. One deviation
from DoWhy: the ``N`` permuted graphs are *distinct* labelled DAGs different from the given
one (drawn without replacement; all of them when fewer exist), so that an automorphism of the
graph is not counted as a "random" graph with the same violations.
"""

from __future__ import annotations

import itertools
import math
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx
import numpy as np
import pandas as pd

from ..errors import DataError
from ..graph import CausalGraph, GraphLike
from .validation import _median_bandwidth, _standardise, hsic_test

__all__ = ["FalsificationResult", "falsify", "local_markov_conditions"]

Regressor = Literal["kernel", "hgb", "linear"]
_RIDGE_GRID = np.logspace(-4, 2, 13)
_FEATURES = 200


@dataclass
class FalsificationResult:
    """What :func:`falsify` returns.

    Attributes:
        rejected: the graph is falsified at level ``alpha`` (``p_lmc > alpha > p_mec``).
        falsifiable: ``p_mec < alpha``: few permuted graphs entail the same independences.
        table: one row per implied independence ``node ⟂ other | given``: ``statistic``
            (HSIC of the residuals), ``p_value``, ``violated`` (``p < alpha_ci``).
        n_violations, n_tests: of the given graph.
        permuted_violations: the violation count of each permuted graph.
        p_lmc: share of permuted graphs with no larger fraction of violations.
        p_mec: share of permuted graphs in the given graph's Markov equivalence class.
        alpha, alpha_ci: level of the permutation test and of each CI test.
        seconds: wall time.
    """

    rejected: bool
    falsifiable: bool
    table: pd.DataFrame
    n_violations: int
    n_tests: int
    permuted_violations: list[int]
    p_lmc: float
    p_mec: float
    alpha: float
    alpha_ci: float
    seconds: float

    @property
    def violations(self) -> pd.DataFrame:
        """The implied independences that fail."""
        return self.table[self.table["violated"]]

    def __repr__(self) -> str:
        verdict = "REJECTED" if self.rejected else "not rejected"
        return (
            f"FalsificationResult({verdict}: {self.n_violations}/{self.n_tests} implied independences "
            f"violated; p_LMC={self.p_lmc:.3g} over {len(self.permuted_violations)} permuted graphs, "
            f"p_MEC={self.p_mec:.3g}, falsifiable={self.falsifiable})"
        )


def local_markov_conditions(graph: CausalGraph) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every ``(X, Y, pa(X))`` with ``Y`` a non-descendant, non-parent of ``X`` (topological
    order of ``X``, then of ``Y``)."""
    out = []
    for x in graph.nodes:
        parents = tuple(graph.parents(x))
        desc = graph.descendants(x)
        for y in graph.nodes:
            if y not in desc and y not in parents:
                out.append((x, y, parents))
    return out


def falsify(
    graph: GraphLike,
    df: pd.DataFrame,
    alpha: float = 0.05,
    n_permutations: int = 200,
    n_graph_permutations: int = 20,
    seed: int = 0,
    alpha_ci: float = 0.05,
    regressor: Regressor = "kernel",
    max_rows: int = 1000,
    discrete: Iterable[str] | None = None,
) -> FalsificationResult:
    """Test every local Markov condition of ``graph`` on ``df`` and compare the violation
    count with node-permuted graphs (Eulig et al. 2023).

    Args:
        graph: a DAG (edge string, :class:`CausalGraph` or networkx DiGraph); every node a
            column of ``df``.
        df: observational data; a column of object/category/bool dtype (or named in
            ``discrete``) is one-hot encoded, every other column standardised.
        alpha: level of the permutation test on the violation count.
        n_permutations: row permutations of each HSIC test.
        n_graph_permutations: permuted graphs of the baseline.
        seed: seeds everything; each CI test is seeded by its own (X, Y, Z), so the same test
            in the given and a permuted graph gives the same p-value.
        alpha_ci: level of each CI test (a violation is ``p < alpha_ci``; uncorrected, since
            only the counts are compared).
        regressor: ``"kernel"`` (RFF kernel ridge, leave-one-out residuals), ``"hgb"``
            (HistGradientBoosting, 2-fold cross-fitted residuals) or ``"linear"``.
        max_rows: rows of each HSIC test (random subset). Regressions use all rows.
        discrete: columns to treat as discrete in addition to the non-numeric ones.
    """
    start = time.perf_counter()
    g = graph if isinstance(graph, CausalGraph) else CausalGraph(graph)
    if g.has_latent_confounders:
        raise DataError("falsify tests DAGs; the graph has bidirected edges")
    if regressor not in ("kernel", "hgb", "linear"):
        raise DataError(f"regressor must be 'kernel', 'hgb' or 'linear', got {regressor!r}")
    if not (0 < alpha < 1 and 0 < alpha_ci < 1):
        raise DataError(f"alpha and alpha_ci must be in (0, 1), got {alpha!r}, {alpha_ci!r}")
    if not isinstance(df, pd.DataFrame):
        raise DataError("falsify needs a pandas DataFrame")
    missing = [v for v in g.nodes if v not in df.columns]
    if missing:
        raise DataError(f"falsify: no column for node(s) {missing}; columns are {list(df.columns)}")
    if len(df) < 20:
        raise DataError(f"falsify needs at least 20 rows, got {len(df)}")
    cols = _encode(df, g.nodes, set(discrete or ()))

    cache_res: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
    cache_p: dict[tuple[frozenset, tuple[str, ...]], tuple[float, float]] = {}

    def residual(v: str, z: tuple[str, ...]) -> np.ndarray:
        key = (v, z)
        if key not in cache_res:
            if not z:
                cache_res[key] = cols[v]
            else:
                zz = np.column_stack([cols[w] for w in z])
                cache_res[key] = _residuals(cols[v], zz, regressor, _seed(seed, "reg", v, *z))
        return cache_res[key]

    def test(x: str, y: str, z: tuple[str, ...]) -> tuple[float, float]:
        z = tuple(sorted(z))
        key = (frozenset((x, y)), z)
        if key not in cache_p:
            a, b = sorted((x, y))
            stat, p, _ = hsic_test(residual(a, z), residual(b, z), n_permutations,
                                   _seed(seed, "hsic", a, b, *z), max_rows)
            cache_p[key] = (stat, p)
        return cache_p[key]

    def count(h: CausalGraph) -> tuple[int, int]:
        conds = local_markov_conditions(h)
        return sum(test(*c)[1] < alpha_ci for c in conds), len(conds)

    records = []
    for x, y, z in local_markov_conditions(g):
        stat, p = test(x, y, z)
        records.append({"node": x, "independent_of": y, "given": ", ".join(z), "statistic": stat,
                        "p_value": p, "violated": p < alpha_ci})
    table = pd.DataFrame(records, columns=["node", "independent_of", "given", "statistic", "p_value", "violated"])
    n_tests = len(table)
    n_viol = int(table["violated"].sum()) if n_tests else 0

    permuted = _permuted_graphs(g, n_graph_permutations, np.random.default_rng([seed, 7]))
    perm_counts, same_mec, below = [], 0, 0
    mec = _mec_key(g)
    for h in permuted:
        v, t = count(h)
        perm_counts.append(v)
        same_mec += _mec_key(h) == mec
        below += (v / max(t, 1)) <= (n_viol / max(n_tests, 1))
    n_perm = len(permuted)
    p_lmc = below / n_perm if n_perm else 1.0
    p_mec = same_mec / n_perm if n_perm else 1.0
    falsifiable = bool(n_perm > 0 and p_mec < alpha)
    rejected = bool(falsifiable and p_lmc > alpha)
    return FalsificationResult(rejected, falsifiable, table, n_viol, n_tests, perm_counts, p_lmc, p_mec,
                               alpha, alpha_ci, time.perf_counter() - start)


# ---------------------------------------------------------------------- helpers
def _seed(seed: int, *parts: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32("\x1f".join(parts).encode())])


def _encode(df: pd.DataFrame, nodes: list[str], discrete: set[str]) -> dict[str, np.ndarray]:
    out = {}
    for v in nodes:
        s = df[v]
        if s.isna().any():
            raise DataError(f"falsify: column {v!r} has missing values; drop or impute them first")
        is_discrete = v in discrete or not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)
        if is_discrete:
            dummies = pd.get_dummies(s.astype("category"), dtype=float).to_numpy()
            out[v] = dummies[:, 1:] if dummies.shape[1] == 2 else dummies
        else:
            x = s.to_numpy(dtype=np.float64)
            if not np.isfinite(x).all():
                raise DataError(f"falsify: column {v!r} has non-finite values")
            out[v] = _standardise(x)
    return out


def _residuals(y: np.ndarray, z: np.ndarray, regressor: str, rng: np.random.Generator) -> np.ndarray:
    """Out-of-sample residuals of ``y`` (n × k) regressed on ``z`` (n × c)."""
    y = y.reshape(len(y), -1)
    z = _standardise(z)
    if regressor == "hgb":
        from sklearn.ensemble import HistGradientBoostingRegressor

        fold = rng.permutation(len(y)) % 2 == 0
        out = np.empty_like(y)
        for j in range(y.shape[1]):
            for train in (fold, ~fold):
                model = HistGradientBoostingRegressor(max_iter=100, early_stopping=False, random_state=0)
                model.fit(z[train], y[train, j])
                out[~train, j] = y[~train, j] - model.predict(z[~train])
        return out
    if regressor == "linear":
        feats = z
    else:
        sigma = _median_bandwidth(z, rng)
        w = rng.normal(scale=1.0 / sigma, size=(z.shape[1], _FEATURES))
        b = rng.uniform(0, 2 * math.pi, _FEATURES)
        feats = np.hstack([z, math.sqrt(2.0 / _FEATURES) * np.cos(z @ w + b) * math.sqrt(z.shape[1])])
    return _loo_ridge(y, feats)


def _loo_ridge(y: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Leave-one-out residuals ``e_i / (1 − h_ii)`` of ridge regression (intercept by
    centring), with ``λ`` from a grid minimising the leave-one-out squared error:
    ``h_ii = 1/n + Σ_j U_ij² s_j² / (s_j² + λ)`` from the thin SVD ``F = U S Vᵀ``."""
    f = feats - feats.mean(0)
    yc = y - y.mean(0)
    # thin SVD F = U S Vᵀ through the small Gram matrix FᵀF = V S² Vᵀ (n·D² instead of SVD)
    s2, v = np.linalg.eigh(f.T @ f)
    keep = s2 > s2.max(initial=0.0) * 1e-10
    s2, v = s2[keep], v[:, keep]
    u = (f @ v) / np.sqrt(s2)
    uy = u.T @ yc
    u_sq = u**2
    best, best_err = None, np.inf
    scale = float(s2.max()) if len(s2) else 1.0
    for lam in _RIDGE_GRID * scale * 1e-2:
        shrink = s2 / (s2 + lam)
        fitted = u @ (shrink[:, None] * uy)
        h = u_sq @ shrink + 1.0 / len(y)
        loo = (yc - fitted) / np.clip(1 - h, 1e-6, None)[:, None]
        err = float((loo**2).mean())
        if err < best_err:
            best, best_err = loo, err
    return best


def _permuted_graphs(g: CausalGraph, k: int, rng: np.random.Generator) -> list[CausalGraph]:
    """Up to ``k`` distinct node-relabelled copies of ``g``, all different from ``g``."""
    nodes = list(g.nodes)
    edges = g.directed_edges
    seen = {frozenset(edges)}
    out: list[CausalGraph] = []

    def add(perm: Any) -> None:
        mapping = dict(zip(nodes, perm))
        new = frozenset((mapping[a], mapping[b]) for a, b in edges)
        if new not in seen:
            seen.add(new)
            dag = nx.DiGraph()
            dag.add_nodes_from(nodes)
            dag.add_edges_from(sorted(new))
            out.append(CausalGraph.from_networkx(dag))

    if math.factorial(len(nodes)) <= max(50 * k, 720):
        perms = list(itertools.permutations(nodes))
        for i in rng.permutation(len(perms)):
            add(perms[i])
            if len(out) == k:
                break
    else:
        tries = 0
        while len(out) < k and tries < 100 * k:
            add(list(rng.permutation(nodes)))
            tries += 1
    return out


def _mec_key(g: CausalGraph) -> tuple[frozenset, frozenset]:
    """Skeleton and v-structures: equal iff Markov equivalent (Verma & Pearl 1990)."""
    skeleton = frozenset(frozenset(e) for e in g.directed_edges)
    v = set()
    for c in g.nodes:
        ps = g.parents(c)
        for a, b in itertools.combinations(sorted(ps), 2):
            if frozenset((a, b)) not in skeleton:
                v.add((a, b, c))
    return skeleton, frozenset(v)
