"""Ground-truth structural causal models with known equations and noise, for benchmarks.

A :class:`GroundTruthSCM` holds one structural equation per node, ``x_i := f_i(pa_i, u_i)``,
with independent exogenous noise ``u_i`` (one scalar noise column per node). It samples the
three rungs of the causal ladder exactly:

- observational and interventional samples (:meth:`GroundTruthSCM.sample`,
  :meth:`GroundTruthSCM.from_noise`);
- counterfactuals by abduction, action and prediction (:meth:`GroundTruthSCM.counterfactual`),
  from the true noise or from noise recovered exactly by :meth:`GroundTruthSCM.abduct`.

Value conventions: continuous nodes are ``float64`` columns. Categorical nodes are pandas
``category`` columns whose categories are the node's labels (ints or strings), in the declared
order. Inside the equations a categorical parent is passed as its float code (the index of its
label), so a binary node labelled ``[0, 1]`` reads as 0.0 / 1.0.

Interventions (``do=``) have the one meaning of :mod:`deepscm.interventions`, shared with
:class:`~deepscm.DeepSCM`: a constant or one value per unit sets the node; **any bare callable
is a function of the node's natural value** (``do={"x2": lambda v: v + 1}`` shifts ``x2``,
whatever the parameter is called); ``FromParents(lambda x1: ...)`` sets the node from its
parents, passed by name in user units (a categorical parent as its labels). Values are in user
units (labels for categorical nodes).

Categorical nodes use the threshold (inverse-CDF) mechanism: ``u ~ Uniform(0, 1)`` and
``x = min{k : p_0 + ... + p_k > u}`` with ``p = p(x | pa)``. The noise is not identifiable from
``x``; :meth:`GroundTruthSCM.abduct` returns the midpoint of the consistent noise interval for a
categorical *root* (a root is never re-computed in a counterfactual, so any consistent noise is
exact) and raises ``NotImplementedError`` for a categorical node with parents.

Example:
    >>> scm = GroundTruthSCM(
    ...     "textbook",
    ...     {"x1": additive([], lambda v: 1.0, normal()),
    ...      "x2": additive(["x1"], lambda v: 3 * v["x1"], normal())},
    ...     family="linear-gaussian", description="x1 := u1 + 1, x2 := 3 x1 + u2")
    >>> obs = pd.DataFrame({"x1": [2.0], "x2": [4.0]})
    >>> float(scm.counterfactual(obs, do={"x1": 5.0})["x2"].iloc[0])
    13.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, GraphError
from ..graph import CausalGraph
from ..interventions import Intervention as _Intervention
from ..interventions import Set, as_intervention, evaluate

__all__ = [
    "FAMILIES",
    "GroundTruthSCM",
    "Node",
    "NoiseSampler",
    "additive",
    "categorical",
    "equation",
    "gamma",
    "laplace",
    "laplace_cdf",
    "laplace_icdf",
    "logit",
    "mixture_of_gaussians",
    "normal",
    "sigmoid",
    "softplus",
    "softplus_inverse",
    "student_t",
    "uniform",
]

Values = Mapping[str, np.ndarray]
Equation = Callable[[Values, np.ndarray], np.ndarray]
Inverse = Callable[[Values, np.ndarray], np.ndarray]
NoiseSampler = Callable[[np.random.Generator, int], np.ndarray]
#: what ``do=`` accepts per node, read by :func:`deepscm.interventions.as_intervention` exactly
#: as :class:`~deepscm.DeepSCM` reads it: a constant or per-unit values (``Set``), any bare
#: callable of the node's natural value (``Shift``), or ``FromParents(fn)``.
Intervention = Any | Callable[[np.ndarray], Any] | _Intervention
Seed = int | np.random.Generator | None

FAMILIES = ("linear-gaussian", "nonlinear additive", "non-additive", "non-gaussian", "mixed")
"""Equation families (:attr:`GroundTruthSCM.family`); an SCM gets the first that applies of:
``mixed`` (has a categorical node), ``non-additive`` (some noise enters non-additively),
``non-gaussian`` (additive, some noise non-Gaussian), ``nonlinear additive`` (Gaussian noise),
``linear-gaussian``."""


# --------------------------------------------------------------------------- numeric helpers
def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-x))``, overflow-free."""
    return np.exp(-np.logaddexp(0.0, -x))


def logit(p: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sigmoid`."""
    return np.log(p) - np.log1p(-p)


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))``, overflow-free."""
    return np.logaddexp(0.0, x)


def softplus_inverse(y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`softplus` for ``y > 0``: ``log(exp(y) - 1)``."""
    return y + np.log(-np.expm1(-y))


def laplace_icdf(p: np.ndarray, loc: np.ndarray | float, scale: float) -> np.ndarray:
    """Quantile function of the Laplace distribution."""
    return loc - scale * np.sign(p - 0.5) * np.log1p(-2.0 * np.abs(p - 0.5))


def laplace_cdf(x: np.ndarray, loc: np.ndarray | float, scale: float) -> np.ndarray:
    """Distribution function of the Laplace distribution (inverse of :func:`laplace_icdf`)."""
    z = (x - loc) / scale
    return 0.5 + 0.5 * np.sign(z) * -np.expm1(-np.abs(z))


# --------------------------------------------------------------------------- noise samplers
def normal(std: float = 1.0, mean: float = 0.0) -> NoiseSampler:
    """``N(mean, std²)`` noise (note: a standard deviation, not a variance)."""
    return lambda rng, n: rng.normal(mean, std, n)


def laplace(scale: float = 1.0) -> NoiseSampler:
    """Laplace noise with location 0."""
    return lambda rng, n: rng.laplace(0.0, scale, n)


def uniform(low: float = 0.0, high: float = 1.0) -> NoiseSampler:
    """``Uniform[low, high)`` noise."""
    return lambda rng, n: rng.uniform(low, high, n)


def student_t(df: float, scale: float = 1.0) -> NoiseSampler:
    """Scaled Student-t noise with ``df`` degrees of freedom."""
    return lambda rng, n: scale * rng.standard_t(df, n)


def gamma(shape: float, scale: float) -> NoiseSampler:
    """``Gamma(shape, scale)`` noise (mean ``shape * scale``)."""
    return lambda rng, n: rng.gamma(shape, scale, n)


def mixture_of_gaussians(
    weights: Sequence[float], means: Sequence[float], variances: Sequence[float]
) -> NoiseSampler:
    """Gaussian-mixture noise; components are given by mean and **variance** (VACA's MoG)."""
    w, mu, sd = np.asarray(weights), np.asarray(means), np.sqrt(np.asarray(variances))

    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        k = rng.choice(len(w), size=n, p=w)
        return rng.normal(mu[k], sd[k])

    return sample


# --------------------------------------------------------------------------- node declarations
@dataclass(frozen=True)
class Node:
    """One structural equation ``x := f(pa, u)``.

    ``f(values, u)`` receives the parents' values (a dict of float arrays) and the node's noise.
    ``inverse(values, x)`` returns ``u``; ``None`` where ``f`` is not invertible in ``u``.
    For a categorical node ``f`` returns float codes and ``categories`` holds the labels.
    """

    parents: tuple[str, ...]
    f: Equation
    noise: NoiseSampler
    inverse: Inverse | None = None
    additive: bool = False
    categories: tuple | None = None


def equation(
    parents: Sequence[str],
    f: Equation,
    noise: NoiseSampler,
    inverse: Inverse | None = None,
    additive: bool = False,
) -> Node:
    """A continuous node with an arbitrary equation ``x = f(pa, u)`` (and optional inverse)."""
    return Node(tuple(parents), f, noise, inverse, additive)


def additive(
    parents: Sequence[str],
    mean: Callable[[Values], np.ndarray | float],
    noise: NoiseSampler,
    coef: float = 1.0,
    divisor: float = 1.0,
) -> Node:
    """An additive-noise node ``x = (mean(pa) + coef * u) / divisor``, inverted exactly."""
    return Node(
        tuple(parents),
        lambda v, u: (mean(v) + coef * u) / divisor,
        noise,
        lambda v, x: (divisor * x - mean(v)) / coef,
        additive=True,
    )


def categorical(
    parents: Sequence[str],
    categories: Sequence[Any],
    probs: Callable[[Values], np.ndarray | Sequence[float]],
) -> Node:
    """A categorical node with the threshold mechanism ``x = min{k : cumsum(p)_k > u}``.

    ``probs(pa)`` returns the class probabilities, shape ``(K,)`` or ``(n, K)``; the noise is
    ``Uniform(0, 1)``. A root gets the midpoint of its consistent noise interval as abduction.
    """
    k = len(categories)

    def cdf(v: Values, n: int) -> np.ndarray:
        c = np.cumsum(np.broadcast_to(np.asarray(probs(v), dtype=float), (n, k)), axis=1)
        return c / c[:, -1:]

    def f(v: Values, u: np.ndarray) -> np.ndarray:
        return np.minimum((cdf(v, len(u)) <= u[:, None]).sum(axis=1), k - 1).astype(float)

    def midpoint(v: Values, x: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros((len(x), 1)), cdf(v, len(x))], axis=1)
        i = x.astype(int)
        rows = np.arange(len(x))
        return 0.5 * (c[rows, i] + c[rows, i + 1])

    return Node(tuple(parents), f, uniform(), midpoint if not parents else None, False,
                tuple(categories))


# --------------------------------------------------------------------------- the SCM
class GroundTruthSCM:
    """A structural causal model with known equations, for exact rung-1/2/3 ground truth.

    Args:
        name: registry name, e.g. ``"dcm_triangle_nonlinear"``.
        equations: node name -> :class:`Node`, in a topological order.
        family: one of :data:`FAMILIES`.
        description: one line naming the source (paper) and the family.
        intervention_nodes: nodes the published protocol intervenes on; default: every node
            with descendants.

    Attributes:
        graph: edge string, e.g. ``"x1 -> x2; x2 -> x3"`` (``CausalGraph(scm.graph)`` parses it).
        nodes: node names in topological order.
        parents: node -> parent list.
        categorical: node -> category labels, for categorical nodes.
        additive: every continuous node is ``f(pa) + g(u)`` with ``g`` invertible.
        invertible: :meth:`abduct` recovers the noise of every node.
    """

    def __init__(
        self,
        name: str,
        equations: Mapping[str, Node],
        *,
        family: str,
        description: str,
        intervention_nodes: Sequence[str] | None = None,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"family {family!r} of {name!r} is not one of {FAMILIES}")
        seen: set[str] = set()
        for node, eq in equations.items():
            missing = [p for p in eq.parents if p not in seen]
            if missing:
                raise GraphError(
                    f"{name}: parents {missing} of {node!r} must be declared before it "
                    "(equations are listed in topological order)"
                )
            seen.add(node)
        self.name = name
        self.family = family
        self.description = description
        self._eq = dict(equations)
        self.nodes: list[str] = list(equations)
        self.parents: dict[str, list[str]] = {v: list(eq.parents) for v, eq in self._eq.items()}
        self._children: dict[str, list[str]] = {v: [] for v in self.nodes}
        for v in self.nodes:
            for p in self.parents[v]:
                self._children[p].append(v)
        self.categorical: dict[str, list] = {
            v: list(eq.categories) for v, eq in self._eq.items() if eq.categories is not None
        }
        edges = [f"{p} -> {v}" for v in self.nodes for p in self.parents[v]]
        lone = [v for v in self.nodes if not self.parents[v] and not self._children[v]]
        self.graph: str = "; ".join(edges + lone)
        self._causal_graph = CausalGraph(self.graph)
        if intervention_nodes is None:
            intervention_nodes = [v for v in self.nodes if self._children[v]]
        unknown = [v for v in intervention_nodes if v not in self._eq]
        if unknown:
            raise GraphError(f"{name}: intervention nodes {unknown} are not nodes {self.nodes}")
        self.intervention_nodes: list[str] = list(intervention_nodes)
        self.additive: bool = all(
            eq.additive for eq in self._eq.values() if eq.categories is None
        )
        self.invertible: bool = all(eq.inverse is not None for eq in self._eq.values())

    def __repr__(self) -> str:
        return f"GroundTruthSCM({self.name!r}, graph={self.graph!r})"

    # ------------------------------------------------------------------ graph queries
    def descendants(self, nodes: str | Iterable[str]) -> list[str]:
        """Strict descendants of ``nodes`` (excluding the nodes themselves unless reached)."""
        start = [nodes] if isinstance(nodes, str) else list(nodes)
        self._check_nodes(start, "descendants")
        found = self._causal_graph.descendants(start, include_self=False)
        return [v for v in self.nodes if v in found]

    # ------------------------------------------------------------------ rungs 1 and 2
    def sample_noise(self, n: int, seed: Seed = None) -> pd.DataFrame:
        """Draw ``n`` rows of exogenous noise, one float column per node (topological order)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return pd.DataFrame(
            {v: np.asarray(self._eq[v].noise(rng, int(n)), dtype=float) for v in self.nodes}
        )

    def from_noise(
        self, noise: pd.DataFrame, do: Mapping[str, Intervention] | None = None
    ) -> pd.DataFrame:
        """Run the equations in topological order on ``noise``.

        ``do`` maps a node to a constant (a label for categorical nodes), an array of ``n``
        values, a callable of the node's natural values (e.g. ``lambda t: t + 1``) or a
        ``FromParents`` rule (see the module docstring).
        """
        do = self._check_do(do)
        u = self._noise_arrays(noise)
        values: dict[str, np.ndarray] = {}
        for v in self.nodes:
            natural = None
            if v not in do or do[v].needs_natural:
                natural = self._compute(v, values, u[v])
            if v in do:
                natural = self._apply(v, do[v], natural, values, len(noise))
            values[v] = natural
        return self._to_frame(values, noise.index)

    def sample(
        self,
        n: int,
        seed: Seed = None,
        do: Mapping[str, Intervention] | None = None,
        return_noise: bool = False,
    ) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
        """Observational (``do=None``) or interventional samples; optionally with their noise."""
        noise = self.sample_noise(n, seed)
        data = self.from_noise(noise, do)
        return (data, noise) if return_noise else data

    # ------------------------------------------------------------------ rung 3
    def abduct(self, data: pd.DataFrame) -> pd.DataFrame:
        """Exact noise of every node from observed values (same index as ``data``).

        Raises:
            NotImplementedError: if some node's equation is not invertible in its noise.
        """
        values = self._encode(data)
        return pd.DataFrame(
            {v: self._abduct_node(v, values) for v in self.nodes}, index=data.index
        )

    def counterfactual(
        self,
        data: pd.DataFrame,
        do: Mapping[str, Intervention],
        noise: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Counterfactuals of the units in ``data`` under ``do`` (abduction, action, prediction).

        Noise comes from ``noise`` (the true noise, same index as ``data``) or, when ``None``,
        from exact abduction of the nodes that must be recomputed. Non-descendants of the
        intervened nodes keep their factual values exactly; a callable intervention receives
        the counterfactual natural value. The result has the index of ``data``.
        """
        do = self._check_do(do)
        if not do:
            raise ValueError("counterfactual needs at least one intervention in `do`")
        values = self._encode(data)
        downstream = set(self.descendants(do))
        # a node set without reference to its natural value needs no noise (as in DeepSCM)
        recompute = {v for v in downstream if v not in do or do[v].needs_natural}
        if noise is None:
            u = {v: self._abduct_node(v, values) for v in self.nodes if v in recompute}
        else:
            if not noise.index.equals(data.index):
                raise DataError(
                    "`noise` must have the same index as `data` (one noise row per unit); "
                    "pass the noise rows of exactly these units"
                )
            u = self._noise_arrays(noise)
        out: dict[str, np.ndarray] = {}
        for v in self.nodes:
            natural = self._compute(v, out, u[v]) if v in recompute else values[v]
            out[v] = natural if v not in do else self._apply(v, do[v], natural, out, len(data))
        return self._to_frame(out, data.index)

    # ------------------------------------------------------------------ internals
    def _compute(self, v: str, values: Values, u: np.ndarray) -> np.ndarray:
        eq = self._eq[v]
        x = eq.f({p: values[p] for p in eq.parents}, u)
        return np.broadcast_to(np.asarray(x, dtype=float), u.shape).copy()

    def _abduct_node(self, v: str, values: Values) -> np.ndarray:
        eq = self._eq[v]
        if eq.inverse is None:
            why = (
                "categorical nodes with parents have no unique noise"
                if eq.categories is not None
                else "its equation is not invertible in its noise"
            )
            raise NotImplementedError(
                f"{self.name}: cannot abduct the noise of node {v!r} ({why}); pass the true "
                "noise instead: scm.counterfactual(data, do, noise=true_noise), with true_noise "
                "from scm.sample(n, return_noise=True)"
            )
        u = eq.inverse({p: values[p] for p in eq.parents}, values[v])
        return np.broadcast_to(np.asarray(u, dtype=float), values[v].shape).copy()

    def _apply(
        self, v: str, intervention: _Intervention, natural: np.ndarray | None, values: Values,
        n: int,
    ) -> np.ndarray:
        """The intervened value of ``v`` (float codes for a categorical node), by the rule of
        :mod:`deepscm.interventions`: the natural value and the parents reach the rule in user
        units (labels for categorical nodes)."""
        if isinstance(intervention, Set):
            target = intervention.value_
        else:
            arg = None if natural is None else self._labels(v, natural)
            parents = {p: self._labels(p, values[p]) for p in self.parents[v]}
            target = evaluate(intervention, v, arg, parents)
        cats = self.categorical.get(v)
        target = np.asarray(target, dtype=object if cats is not None else None)
        if cats is not None:
            target = self._codes(v, target.ravel()).reshape(target.shape)
        try:
            return np.broadcast_to(target.astype(float), (n,)).copy()
        except (TypeError, ValueError) as e:
            raise DataError(
                f"intervention on {v!r} gave shape {target.shape}; expected a scalar or "
                f"{n} values"
            ) from e

    def _labels(self, v: str, codes: np.ndarray) -> np.ndarray:
        """A node's values in user units: labels for a categorical node, floats otherwise."""
        cats = self.categorical.get(v)
        if cats is None:
            return codes
        return np.asarray(cats, dtype=object)[codes.astype(int)]

    def _codes(self, v: str, labels: np.ndarray) -> np.ndarray:
        cats = self.categorical[v]
        codes = pd.Index(cats).get_indexer(np.asarray(labels, dtype=object))
        if (codes < 0).any():
            bad = sorted({str(x) for x in np.asarray(labels)[codes < 0]})[:5]
            raise DataError(f"node {v!r}: values {bad} are not among its categories {cats}")
        return codes

    def _check_nodes(self, nodes: Iterable[str], what: str) -> None:
        unknown = [v for v in nodes if v not in self._eq]
        if unknown:
            raise GraphError(f"{self.name}: {what} names unknown nodes {unknown}; "
                             f"nodes are {self.nodes}")

    def _check_do(self, do: Mapping[str, Intervention] | None) -> dict[str, _Intervention]:
        if do is not None and not isinstance(do, Mapping):
            raise DataError(
                f"do= must be a mapping from node to value, e.g. do={{'x1': 1.0}}; got "
                f"{type(do).__name__}"
            )
        do = dict(do or {})
        self._check_nodes(do, "do")
        return {v: as_intervention(spec, v) for v, spec in do.items()}

    def _noise_arrays(self, noise: pd.DataFrame) -> dict[str, np.ndarray]:
        if not isinstance(noise, pd.DataFrame):
            raise DataError(f"noise must be a DataFrame with columns {self.nodes}")
        missing = [v for v in self.nodes if v not in noise.columns]
        if missing:
            raise DataError(f"noise lacks columns {missing}; expected one column per node")
        u = {v: noise[v].to_numpy(dtype=float) for v in self.nodes}
        bad = [v for v, a in u.items() if not np.isfinite(a).all()]
        if bad:
            raise DataError(f"noise columns {bad} contain NaN or inf")
        return u

    def _encode(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"data must be a DataFrame with columns {self.nodes}")
        missing = [v for v in self.nodes if v not in data.columns]
        if missing:
            raise DataError(f"data lacks columns {missing} of SCM {self.name!r}")
        values: dict[str, np.ndarray] = {}
        for v in self.nodes:
            if v in self.categorical:
                values[v] = self._codes(v, data[v].to_numpy(dtype=object)).astype(float)
            else:
                try:
                    values[v] = data[v].to_numpy(dtype=float)
                except (TypeError, ValueError) as e:
                    raise DataError(f"column {v!r} must be numeric") from e
                if not np.isfinite(values[v]).all():
                    raise DataError(f"column {v!r} contains NaN or inf")
        return values

    def _to_frame(self, values: Values, index: pd.Index) -> pd.DataFrame:
        cols: dict[str, Any] = {}
        for v in self.nodes:
            if v in self.categorical:
                cols[v] = pd.Categorical.from_codes(
                    values[v].astype(int), categories=self.categorical[v]
                )
            else:
                cols[v] = values[v]
        return pd.DataFrame(cols, index=index)
