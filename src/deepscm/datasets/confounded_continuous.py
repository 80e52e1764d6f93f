r"""Continuous ground-truth SCMs with hidden confounders, with high-precision causal answers.

Every bidirected edge ``a <-> b`` is one hidden variable ``U_ab ~ N(0, 1)`` that enters the
equations of both ``a`` and ``b``; every observed node ``v`` has its own noise
``ε_v ~ N(0, 1)``; all exogenous variables are independent. The equations are smooth and
nonlinear (several non-additive in the latent):

====================  =========================================================  ==============
name                  graph and equations                                        ``E[y|do(x)]``
====================  =========================================================  ==============
backdoor              z -> x -> y, z -> y, z <-> y (observed confounder ``z``,    identifiable
                      hidden ``U`` on the pair z, y):
                      ``z = U + ½ε``, ``x = tanh(1.5z) + ½ε``,
                      ``y = 1.5 tanh(x) + ½xz + ½U² + 0.3ε``;
                      ``E[y | do(x=a)] = 1.5 tanh(a) + ½``
backdoor_observed     z -> x -> y, z -> y, no hidden confounder: ``z = ε``,      identifiable
                      ``x = 0.6z + 0.8ε``, ``y = 1.5 tanh(x) + 0.8 sin(z) + 0.3ε``;
                      ``E[y | do(x=a)] = 1.5 tanh(a)``
frontdoor             x -> m -> y, x <-> y: ``x = U + ½ε``,                       identifiable
                      ``m = x + ½ sin(2x) + 0.3ε``,
                      ``y = tanh(m) + 0.8U + 0.3mU + 0.3ε``
iv                    z -> x -> y, x <-> y: ``z = ε``,                            not (bounds)
                      ``x = 1.2 tanh(1.5z) + 0.8U + 0.3ε``,
                      ``y = sin(1.5x) + ½x + U(1 + 0.3x) + 0.3ε``;
                      ``E[y | do(x=a)] = sin(1.5a) + ½a``
bow                   x -> y, x <-> y: ``x = U + ½ε``,                            not
                      ``y = tanh(1.5x) + 0.8U + 0.2U² + 0.3ε``;
                      ``E[y | do(x=a)] = tanh(1.5a) + 0.2``
scalar_beside_block   x -> y, x -> h1..h16, h1 <-> h2: ``x = ε``,                 identifiable
                      ``y = tanh(2x) + 0.2ε`` (a scalar of scale 0.8) beside a
                      16-node block ``h_j = 3 sin(c_j x + φ_j) + ε (+ U)``;
                      ``E[y | do(x=a)] = tanh(2a)`` (the modular-training case)
====================  =========================================================  ==============

**Answers.** ``μ(a) = E[y | do(x = a)]`` is computed by tensor-product Gauss–Hermite
quadrature (``quad`` nodes per exogenous variable, default 24) over the exogenous variables
of the ancestors of ``y`` in the mutilated graph ``G_{\bar x}`` (truncated factorisation).
The integrands are smooth, so the quadrature error is below 1e-9 (checked in the tests
against 32 nodes and against the closed forms above). The **average treatment derivative**
``ATD = E_{X ~ P(X)}[μ'(X)]`` (Balazadeh, Syrgkanis & Krishnan 2022) uses a central
difference of ``μ`` (step 1e-4, error ~1e-8) inside a second quadrature over the exogenous
ancestors of ``x`` (:data:`ATD_BUDGET`); its error is below 5e-4 (iv, the least smooth case,
against a finer grid and against Monte Carlo in the tests; the others below 5e-5). The ATE is
``μ(a₁) − μ(a₀)`` (default ``a₁ = 1, a₀ = 0``).

**Counterfactuals.** Every equation is affine in its own noise, so given a full unit the node
noises are functions of the latents, and :meth:`ContinuousConfoundedSCM.counterfactual_mean`
gives the exact ``E[V_{do} | V = v]`` per unit by a grid over the (at most 2) latents'
posterior; :meth:`ContinuousConfoundedSCM.latent_posterior_mean` gives ``E[U | V = v]``.

In ``backdoor`` ``x`` depends strongly on ``z`` (``corr ≈ 0.8``), so ``μ`` and the ATD, which
average ``E[y | x, z]`` over ``P(x)·P(z)``, lean on pairs ``(x, z)`` that the data rarely show
(weak overlap); ``backdoor_observed`` is the well-overlapped identified case.

Example:
    >>> from deepscm.datasets.confounded_continuous import load_confounded_continuous
    >>> scm = load_confounded_continuous("backdoor")
    >>> df = scm.sample(1000, seed=1)        # columns z, x, y; U is hidden
    >>> round(scm.mean_do(0.0), 6)           # 1.5 tanh(0) + 0.5
    0.5
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..graph import CausalGraph

__all__ = [
    "ATD_BUDGET",
    "CONFOUNDED_CONTINUOUS",
    "ContinuousConfoundedSCM",
    "list_confounded_continuous",
    "load_confounded_continuous",
]

Values = Mapping[str, np.ndarray]
#: an equation ``v = f(values)``: ``values`` holds the node's parents and latents by name and
#: its own noise under ``"eps"`` (arrays, broadcast elementwise).
Equation = Callable[[Values], np.ndarray]

#: the fixed frequencies and phases of the block ``h_j = 3 sin(c_j x + φ_j) + ε`` (seed 0).
_BLOCK = 16
_rng = np.random.default_rng(0)
_FREQ = _rng.uniform(0.5, 1.5, _BLOCK)
_PHASE = _rng.uniform(0.0, 2 * np.pi, _BLOCK)
del _rng


#: the latents' grid of the exact counterfactual posterior spans ``[−_GRID_WIDTH, _GRID_WIDTH]``
#: (prior mass outside: 1e-15).
_GRID_WIDTH = 8.0

ATD_BUDGET = 40_000_000
"""Integrand evaluations of one ATD: the outer quadrature takes ``min(150, (budget/inner)^(1/d))``
nodes per each of its ``d`` dimensions, ``inner`` the points of the inner quadrature of ``μ``
(the integrand ``μ'(x(e))`` is less smooth than ``μ``; the tests bound the error)."""


def _block_node(j: int) -> Equation:
    latent = {0: "u_h1h2", 1: "u_h1h2"}.get(j)
    return lambda v: 3 * np.sin(_FREQ[j] * v["x"] + _PHASE[j]) + v["eps"] + (v[latent] if latent else 0.0)


def _specs() -> dict[str, tuple[str, str, dict[str, Equation]]]:
    block = "; ".join(f"x -> h{j + 1}" for j in range(_BLOCK))
    return {
        "backdoor": (
            "z -> x; z -> y; x -> y; z <-> y",
            "back-door: observed confounder z of x and y, hidden confounder U of z and y",
            {
                "z": lambda v: v["u_yz"] + 0.5 * v["eps"],
                "x": lambda v: np.tanh(1.5 * v["z"]) + 0.5 * v["eps"],
                "y": lambda v: 1.5 * np.tanh(v["x"]) + 0.5 * v["x"] * v["z"] + 0.5 * v["u_yz"] ** 2 + 0.3 * v["eps"],
            },
        ),
        "backdoor_observed": (
            "z -> x; z -> y; x -> y",
            "back-door with the observed confounder z only (good overlap of x given z)",
            {
                "z": lambda v: v["eps"],
                "x": lambda v: 0.6 * v["z"] + 0.8 * v["eps"],
                "y": lambda v: 1.5 * np.tanh(v["x"]) + 0.8 * np.sin(v["z"]) + 0.3 * v["eps"],
            },
        ),
        "frontdoor": (
            "x -> m; m -> y; x <-> y",
            "front-door: hidden x-y confounder, mediator m",
            {
                "x": lambda v: v["u_xy"] + 0.5 * v["eps"],
                "m": lambda v: v["x"] + 0.5 * np.sin(2 * v["x"]) + 0.3 * v["eps"],
                "y": lambda v: np.tanh(v["m"]) + 0.8 * v["u_xy"] + 0.3 * v["m"] * v["u_xy"] + 0.3 * v["eps"],
            },
        ),
        "iv": (
            "z -> x; x -> y; x <-> y",
            "instrument z for x -> y, hidden x-y confounder",
            {
                "z": lambda v: v["eps"],
                "x": lambda v: 1.2 * np.tanh(1.5 * v["z"]) + 0.8 * v["u_xy"] + 0.3 * v["eps"],
                "y": lambda v: np.sin(1.5 * v["x"]) + 0.5 * v["x"] + v["u_xy"] * (1 + 0.3 * v["x"]) + 0.3 * v["eps"],
            },
        ),
        "bow": (
            "x -> y; x <-> y",
            "bow: hidden x-y confounder and nothing else",
            {
                "x": lambda v: v["u_xy"] + 0.5 * v["eps"],
                "y": lambda v: np.tanh(1.5 * v["x"]) + 0.8 * v["u_xy"] + 0.2 * v["u_xy"] ** 2 + 0.3 * v["eps"],
            },
        ),
        "scalar_beside_block": (
            f"x -> y; {block}; h1 <-> h2",
            "a scalar outcome y (scale 0.8) beside a 16-node block of scale 3 (modular training)",
            {
                "x": lambda v: v["eps"],
                "y": lambda v: np.tanh(2 * v["x"]) + 0.2 * v["eps"],
                **{f"h{j + 1}": _block_node(j) for j in range(_BLOCK)},
            },
        ),
    }


CONFOUNDED_CONTINUOUS: dict[str, str] = {name: spec[1] for name, spec in _specs().items()}
"""name -> description of the continuous confounded SCMs (treatment ``x``, outcome ``y``)."""


def list_confounded_continuous() -> list[str]:
    """Names for :func:`load_confounded_continuous`."""
    return list(CONFOUNDED_CONTINUOUS)


def load_confounded_continuous(name: str) -> ContinuousConfoundedSCM:
    """The continuous SCM ``name`` (module docstring; its equations are fixed).

    Raises:
        ConfigError: an unknown name (the known ones are listed).
    """
    specs = _specs()
    if name not in specs:
        raise ConfigError(
            f"unknown continuous confounded SCM {name!r}; choose one of {', '.join(specs)}"
        )
    edges, description, equations = specs[name]
    return ContinuousConfoundedSCM(name, CausalGraph(edges), equations, description=description)


class ContinuousConfoundedSCM:
    """A continuous SCM with one hidden ``U_ab ~ N(0, 1)`` per bidirected edge of ``graph``.

    Args:
        name: a label.
        graph: the observed graph; each ``a <-> b`` becomes a hidden ``u_ab`` (``a < b``).
        equations: node -> ``f(values)`` (see :data:`Equation`), elementwise in numpy.
        treatment, outcome: the nodes the queries use by default.
        description: one line.
    """

    def __init__(
        self,
        name: str,
        graph: CausalGraph,
        equations: Mapping[str, Equation],
        treatment: str = "x",
        outcome: str = "y",
        description: str = "",
    ) -> None:
        self.name, self.graph, self.description = name, graph, description
        self.treatment, self.outcome = treatment, outcome
        graph.check_nodes({treatment, outcome}, "treatment/outcome")
        missing = [n for n in graph.nodes if n not in equations]
        if missing:
            raise ConfigError(f"no equation for node(s) {missing}")
        self.equations = dict(equations)
        self.latents = {f"u_{a}{b}": (a, b) for a, b in graph.bidirected_edges}

    def __repr__(self) -> str:
        return f"ContinuousConfoundedSCM({self.name!r}, {str(self.graph)!r}, latents={list(self.latents)})"

    # ------------------------------------------------------------------ evaluation
    def _latents_of(self, nodes: set[str]) -> list[str]:
        return [u for u, pair in self.latents.items() if set(pair) & nodes]

    def _evaluate(
        self, exog: Mapping[str, np.ndarray], do: Mapping[str, np.ndarray], nodes: set[str]
    ) -> dict[str, np.ndarray]:
        """Compute ``nodes`` in topological order from the exogenous values ``exog``
        (latents by name, node noises as ``eps_<node>``); intervened nodes take ``do``."""
        values: dict[str, np.ndarray] = {}
        for v in self.graph.nodes:
            if v not in nodes:
                continue
            if v in do:
                values[v] = do[v]
                continue
            inputs = {p: values[p] for p in self.graph.parents(v)}
            inputs.update({u: exog[u] for u in self._latents_of({v})})
            inputs["eps"] = exog[f"eps_{v}"]
            values[v] = np.asarray(self.equations[v](inputs), dtype=float)
        return values

    def _quadrature(self, names: list[str], quad: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Gauss–Hermite nodes (probabilists') for independent ``N(0, 1)`` variables ``names``:
        ``({name: (Q^d,)}, weights (Q^d,))`` with weights summing to 1."""
        x, w = np.polynomial.hermite_e.hermegauss(quad)
        w = w / w.sum()
        if not names:
            return {}, np.ones(1)
        grid = np.array(list(itertools.product(range(quad), repeat=len(names))))
        weights = np.prod(w[grid], axis=1)
        return {n: x[grid[:, k]] for k, n in enumerate(names)}, weights

    def _exogenous(self, nodes: set[str], skip: set[str] = frozenset()) -> list[str]:
        return self._latents_of(nodes - set(skip)) + [f"eps_{v}" for v in self.graph.nodes if v in nodes - set(skip)]

    # ------------------------------------------------------------------ answers
    def mean_do(
        self, value: float | np.ndarray, *, treatment: str | None = None, outcome: str | None = None,
        quad: int = 24,
    ) -> float | np.ndarray:
        """``E[outcome | do(treatment = value)]`` by Gauss–Hermite quadrature (vectorised over
        ``value``)."""
        x, y = treatment or self.treatment, outcome or self.outcome
        self.graph.check_nodes({x, y}, "query")
        scalar = np.ndim(value) == 0
        a = np.atleast_1d(np.asarray(value, dtype=float))
        anc = self.graph.remove_incoming(x).ancestors(y)
        exog, w = self._quadrature(self._exogenous(anc, {x}), quad)
        out = np.empty(len(a))
        chunk = max(1, 2_000_000 // len(w))
        for s in range(0, len(a), chunk):
            ak = a[s:s + chunk, None]
            vals = self._evaluate({k: v[None, :] for k, v in exog.items()}, {x: ak}, anc)
            out[s:s + chunk] = np.broadcast_to(vals[y], (len(ak), len(w))) @ w
        return float(out[0]) if scalar else out

    def ate(
        self, treated: float = 1.0, control: float = 0.0, *, treatment: str | None = None,
        outcome: str | None = None,
    ) -> float:
        """``E[y | do(x = treated)] − E[y | do(x = control)]``."""
        m = self.mean_do(np.array([treated, control]), treatment=treatment, outcome=outcome)
        return float(m[0] - m[1])

    def atd(self, *, treatment: str | None = None, outcome: str | None = None, quad: int | None = None) -> float:
        """Average treatment derivative ``E_{X ~ P(X)}[μ'(X)]``, ``μ(a) = E[y | do(x = a)]``
        (central difference, step 1e-4, of ``μ`` with 16 nodes per dimension, inside a
        quadrature over ``x``'s ``d`` exogenous ancestors with ``quad`` nodes each, by default
        as many as :data:`ATD_BUDGET` allows)."""
        x, y = treatment or self.treatment, outcome or self.outcome
        anc = self.graph.ancestors(x)
        names = self._exogenous(anc)
        inner = 16 ** len(self._exogenous(self.graph.remove_incoming(x).ancestors(y), {x}))
        quad = quad or int(min(150, (ATD_BUDGET / (2 * inner)) ** (1 / max(1, len(names)))))
        exog, w = self._quadrature(names, quad)
        xs = self._evaluate(exog, {}, anc)[x]
        h = 1e-4
        d = (self.mean_do(xs + h, treatment=x, outcome=y, quad=16)
             - self.mean_do(xs - h, treatment=x, outcome=y, quad=16)) / (2 * h)
        return float(d @ w)

    # ------------------------------------------------------------------ counterfactuals
    def _abduct(self, evidence: pd.DataFrame, grid: int | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The exact posterior of the exogenous variables given full units (see
        :meth:`counterfactual_mean`): ``(exog, weights)`` with the latents on a tensor grid
        ``(1, G)``, every ``eps_<node>`` solved per unit ``(n, G)``, and normalised posterior
        weights ``(n, G)``."""
        if not isinstance(evidence, pd.DataFrame):
            raise DataError(f"evidence must be a DataFrame of full units, got {type(evidence).__name__}")
        missing = [v for v in self.graph.nodes if v not in evidence.columns]
        if missing:
            raise DataError(f"evidence lacks node(s) {missing}; a counterfactual unit needs every node")
        obs = {v: evidence[v].to_numpy(dtype=float)[:, None] for v in self.graph.nodes}
        if not all(np.isfinite(a).all() for a in obs.values()):
            raise DataError("evidence holds NaN or infinite values; give fully observed units")
        names = list(self.latents)
        if len(names) > 2:
            raise ConfigError(f"{len(names)} latents: the grid posterior handles at most 2")
        g = grid or (1601 if len(names) <= 1 else 241)
        axis = np.linspace(-_GRID_WIDTH, _GRID_WIDTH, g)
        mesh = np.meshgrid(*([axis] * len(names)), indexing="ij")
        exog: dict[str, np.ndarray] = {u: m.reshape(1, -1) for u, m in zip(names, mesh)}
        logw = sum((-0.5 * exog[u] ** 2 for u in names), np.zeros((1, axis.size ** len(names))))
        for v in self.graph.nodes:
            inputs = {p: obs[p] for p in self.graph.parents(v)}
            inputs.update({u: exog[u] for u in self._latents_of({v})})
            f = {e: np.asarray(self.equations[v]({**inputs, "eps": np.float64(e)}), dtype=float) for e in (0.0, 1.0, 2.0)}
            scale = f[1.0] - f[0.0]
            if not np.allclose(f[2.0] - f[0.0], 2 * scale, atol=1e-9) or (np.abs(scale) < 1e-12).any():
                raise ConfigError(f"the equation of {v!r} is not affine in its noise; no exact abduction")
            exog[f"eps_{v}"] = (obs[v] - f[0.0]) / scale
            logw = logw - 0.5 * exog[f"eps_{v}"] ** 2 - np.log(np.abs(scale))
        w = np.exp(logw - logw.max(axis=1, keepdims=True))
        return exog, w / w.sum(axis=1, keepdims=True)

    def latent_posterior_mean(self, evidence: pd.DataFrame, *, grid: int | None = None) -> pd.DataFrame:
        """``E[U_ab | V = v]`` per unit (row of ``evidence``, every node), by the grid posterior of
        :meth:`counterfactual_mean`; one column per hidden ``u_ab``."""
        exog, w = self._abduct(evidence, grid)
        return pd.DataFrame({u: (np.broadcast_to(exog[u], w.shape) * w).sum(1) for u in self.latents},
                            index=evidence.index, columns=list(self.latents))

    def counterfactual_mean(
        self, evidence: pd.DataFrame, do: Mapping[str, float | np.ndarray], *, grid: int | None = None,
    ) -> pd.DataFrame:
        r"""The exact counterfactual mean ``E[V_{do} | V = v]`` of every node, per unit.

        Abduction, action, prediction (Pearl 2009, Thm. 7.1.7) on the true SCM: every equation
        here is affine in its own noise, ``v = g_v(pa_v, u) + s_v(pa_v, u)·ε_v`` (checked), so
        given the unit ``v`` and the latents ``u`` each ``ε_v = (v − g_v)/s_v`` is determined and
        ``p(u | v) ∝ φ(u) Π_v φ(ε_v(u)) / |s_v(u)|``. The latents (at most 2) are integrated on a
        uniform grid over ``[−8, 8]`` (1601 points, or 241² for two; trapezoidal, spectrally
        accurate for these smooth, Gaussian-tailed integrands: the tests compare it with a finer
        grid, closed forms and importance sampling). The counterfactual world re-evaluates the
        mutilated equations with the abducted ``(u, ε)``.

        Args:
            evidence: one row per unit, a column for every node (floats).
            do: ``{node: value}``, a constant or one value per unit.
            grid: points per latent (default above).

        Raises:
            DataError: evidence missing a node, or holding NaN.
            GraphError: an unknown ``do`` node.
            ConfigError: an equation not affine in its noise, or more than 2 latents.
        """
        if not isinstance(do, Mapping):
            raise ConfigError(f"do must be a dict {{node: value}}, got {type(do).__name__}")
        self.graph.check_nodes(set(do), "do")
        exog, w = self._abduct(evidence, grid)
        n = len(evidence)
        fixed = {k: np.broadcast_to(np.asarray(val, dtype=float), (n,)).reshape(n, 1) for k, val in do.items()}
        values = self._evaluate(exog, fixed, set(self.graph.nodes))
        out = {v: (np.broadcast_to(values[v], w.shape) * w).sum(1) for v in self.graph.nodes}
        return pd.DataFrame(out, index=evidence.index, columns=self.graph.nodes)

    # ------------------------------------------------------------------ sampling
    def sample(
        self, n: int, seed: int | None = None, do: Mapping[str, float] | None = None, *,
        return_latents: bool = False,
    ) -> pd.DataFrame:
        """``n`` rows of the observed nodes (float), observational or under ``do={node: value}``
        (a constant or one value per row). ``return_latents=True`` appends the hidden ``u_ab``
        columns (for checks only: a method under test must never see them)."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n={n!r}: pass a non-negative number of rows")
        do = dict(do or {})
        self.graph.check_nodes(set(do), "do")
        rng = np.random.default_rng(seed)
        exog = {u: rng.standard_normal(n) for u in self.latents}
        exog.update({f"eps_{v}": rng.standard_normal(n) for v in self.graph.nodes})
        fixed = {k: np.broadcast_to(np.asarray(val, dtype=float), (n,)).copy() for k, val in do.items()}
        values = self._evaluate(exog, fixed, set(self.graph.nodes))
        out = pd.DataFrame({v: values[v] for v in self.graph.nodes}, columns=self.graph.nodes)
        if return_latents:
            for u in self.latents:
                out[u] = exog[u]
        return out
