"""Binary ground-truth SCMs with hidden confounders: the graphs of the NCM paper.

Xia, Lee, Kersting & Bareinboim (2021, "The Causal-Neural Connection", Fig. 5 and the graphs
of ``CausalAILab/NeuralCausalModels/dat/cg``) evaluate neural identification on eight binary
graphs; each is here a ground-truth SCM whose latent confounders are simulated and hidden:

=============  ======================================  ==============================
name           graph                                   ``P(y | do(x))`` identifiable
=============  ======================================  ==============================
backdoor       z -> x -> y; z -> y                     yes (adjust for z)
frontdoor      x -> m -> y; x <-> y                    yes (front-door through m)
m              x -> y; m <-> x; m <-> y                yes (``P(y | x)``)
napkin         w -> z -> x -> y; w <-> x; w <-> y      yes (napkin formula)
bow            x -> y; x <-> y                         no
iv             z -> x -> y; x <-> y                    no (Balke–Pearl bounds)
bad_m          z -> x -> y; x <-> z; z <-> y           no
extended_bow   x -> z -> y; x <-> z                    no
=============  ======================================  ==============================

Every bidirected edge ``a <-> b`` is one hidden binary variable ``U_ab ~ Bernoulli(q)`` that
enters both ``a`` and ``b``. Each observed node ``v`` has a conditional probability table
``p(v = 1 | pa_v, u_v)`` over its observed parents and its latents, drawn per seed (entries
uniform in ``[0.05, 0.95]``), and the threshold mechanism ``v = 1[ε_v < p(v = 1 | pa_v, u_v)]``
with ``ε_v ~ Uniform(0, 1)`` independent per node. Exact answers come from enumerating every
configuration of latents and observed nodes (truncated factorisation for interventions; for
the effect of treatment on the treated, the non-descendants of ``x`` and the latents are shared
between the factual and the counterfactual world, Pearl 2009 §7.1).

Example:
    >>> from deepscm.datasets.confounded import load_confounded
    >>> scm = load_confounded("bow", seed=0)
    >>> df = scm.sample(1000, seed=1)          # columns x, y only; u_xy is hidden
    >>> truth = scm.ate()                      # P(y=1 | do(x=1)) - P(y=1 | do(x=0))
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..graph import CausalGraph

__all__ = ["CONFOUNDED_GRAPHS", "ConfoundedSCM", "list_confounded", "load_confounded"]

CONFOUNDED_GRAPHS: dict[str, tuple[str, str]] = {
    "backdoor": ("z -> x; z -> y; x -> y", "back-door: z confounds x and y, observed"),
    "frontdoor": ("x -> m; m -> y; x <-> y", "front-door: a hidden x-y confounder, mediator m"),
    "m": ("x -> y; m <-> x; m <-> y", "M: m is a collider of two hidden confounders"),
    "napkin": ("w -> z; z -> x; x -> y; w <-> x; w <-> y", "napkin (Pearl & Mackenzie)"),
    "bow": ("x -> y; x <-> y", "bow: a hidden x-y confounder and nothing else"),
    "iv": ("z -> x; x -> y; x <-> y", "instrument z for a confounded x -> y"),
    "bad_m": ("z -> x; x -> y; x <-> z; z <-> y", "bad M: z also causes x"),
    "extended_bow": ("x -> z; z -> y; x <-> z", "extended bow: x -> z confounded"),
}
"""name -> (edge string, description) of the eight NCM-paper graphs (treatment x, outcome y)."""


def list_confounded() -> list[str]:
    """Names of the confounded ground-truth SCMs, for :func:`load_confounded`."""
    return list(CONFOUNDED_GRAPHS)


def load_confounded(name: str, seed: int = 0) -> ConfoundedSCM:
    """The binary SCM ``name`` (see :data:`CONFOUNDED_GRAPHS`) with parameters drawn from ``seed``.

    Raises:
        ConfigError: for an unknown name (the known ones are listed).
    """
    if name not in CONFOUNDED_GRAPHS:
        raise ConfigError(
            f"unknown confounded SCM {name!r}; choose one of {', '.join(CONFOUNDED_GRAPHS)}"
        )
    edges, description = CONFOUNDED_GRAPHS[name]
    return ConfoundedSCM.random(name, CausalGraph(edges), seed=seed, description=description)


@dataclass(frozen=True)
class _Latent:
    name: str
    children: tuple[str, str]
    prob: float


class ConfoundedSCM:
    """A binary SCM with one hidden binary confounder per bidirected edge of ``graph``.

    Args:
        name: a label.
        graph: the observed graph; each ``a <-> b`` becomes a hidden ``U_ab``.
        cpts: node -> array of ``p(v = 1 | ...)`` with one axis of size 2 per observed parent
            (in ``graph.parents(v)`` order) and then per latent of ``v`` (in
            :attr:`latents` order).
        latent_probs: ``P(U_ab = 1)`` for each bidirected edge, in ``graph.bidirected_edges``
            order.
        treatment, outcome: the nodes that :meth:`ate` and :meth:`ett` use by default.
    """

    def __init__(
        self,
        name: str,
        graph: CausalGraph,
        cpts: Mapping[str, np.ndarray],
        latent_probs: list[float],
        treatment: str = "x",
        outcome: str = "y",
        description: str = "",
    ) -> None:
        self.name, self.graph, self.description = name, graph, description
        self.treatment, self.outcome = treatment, outcome
        graph.check_nodes({treatment, outcome}, "treatment/outcome")
        edges = graph.bidirected_edges
        if len(latent_probs) != len(edges):
            raise ConfigError(f"{len(edges)} bidirected edges need {len(edges)} latent probabilities")
        self.latents = [_Latent(f"u_{a}{b}", (a, b), float(q)) for (a, b), q in zip(edges, latent_probs)]
        self.cpts = {v: np.asarray(cpts[v], dtype=float) for v in graph.nodes}
        for v in graph.nodes:
            want = (2,) * (len(graph.parents(v)) + len(self._latents_of(v)))
            if self.cpts[v].shape != want:
                raise ConfigError(f"cpt of {v!r} has shape {self.cpts[v].shape}, expected {want}")

    @classmethod
    def random(
        cls, name: str, graph: CausalGraph, seed: int = 0, description: str = ""
    ) -> ConfoundedSCM:
        """Tables with entries ``~ Uniform(0.05, 0.95)`` and ``P(U = 1) ~ Uniform(0.2, 0.8)``."""
        rng = np.random.default_rng(seed)
        latent_probs = list(rng.uniform(0.2, 0.8, size=len(graph.bidirected_edges)))
        cpts = {}
        for v in graph.nodes:
            k = len(graph.parents(v)) + sum(v in e for e in graph.bidirected_edges)
            cpts[v] = rng.uniform(0.05, 0.95, size=(2,) * k)
        return cls(name, graph, cpts, latent_probs, description=description)

    def __repr__(self) -> str:
        return f"ConfoundedSCM({self.name!r}, {str(self.graph)!r}, latents={[u.name for u in self.latents]})"

    # ------------------------------------------------------------------ structure
    def _latents_of(self, v: str) -> list[int]:
        return [i for i, u in enumerate(self.latents) if v in u.children]

    def _p1(self, v: str, values: Mapping[str, np.ndarray | int], u: np.ndarray) -> np.ndarray:
        """``p(v = 1 | pa_v, u_v)``; ``values`` holds the parents, ``u[..., k]`` latent ``k``."""
        idx = [np.asarray(values[p], dtype=int) for p in self.graph.parents(v)]
        idx += [np.asarray(u[..., k], dtype=int) for k in self._latents_of(v)]
        return self.cpts[v][tuple(idx)] if idx else self.cpts[v][()]

    def _configs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (latent, observed) configuration: ``u`` (K, L), ``v`` (K, n), weight ``P(u)``."""
        n_u, n_v = len(self.latents), len(self.graph)
        grid = np.array(list(itertools.product((0, 1), repeat=n_u + n_v)), dtype=int).reshape(-1, n_u + n_v)
        u, v = grid[:, :n_u], grid[:, n_u:]
        pu = np.ones(len(grid))
        for k, lat in enumerate(self.latents):
            pu = pu * np.where(u[:, k] == 1, lat.prob, 1 - lat.prob)
        return u, v, pu

    def _weights(self, u: np.ndarray, v: np.ndarray, nodes: list[str], do: Mapping[str, int]) -> np.ndarray:
        """``Π_{i in nodes} P(v_i | pa_i, u_i)`` per configuration; an intervened node contributes
        ``1[v_i = do_i]`` (truncated factorisation)."""
        cols = {n: v[:, j] for j, n in enumerate(self.graph.nodes)}
        w = np.ones(len(v))
        for n in nodes:
            if n in do:
                w = w * (cols[n] == do[n])
            else:
                p1 = self._p1(n, cols, u)
                w = w * np.where(cols[n] == 1, p1, 1 - p1)
        return w

    def _check_do(self, do: Mapping[str, int] | None) -> dict[str, int]:
        do = dict(do or {})
        self.graph.check_nodes(set(do), "do")
        for k, val in do.items():
            if val not in (0, 1):
                raise ConfigError(f"do({k}={val!r}): the nodes are binary, set them to 0 or 1")
        return {k: int(val) for k, val in do.items()}

    # ------------------------------------------------------------------ exact answers
    def distribution(self, do: Mapping[str, int] | None = None) -> pd.DataFrame:
        """The exact ``P(v)`` (or ``P(v | do(...))``): one row per observed configuration, column ``p``."""
        do = self._check_do(do)
        u, v, pu = self._configs()
        w = pu * self._weights(u, v, self.graph.nodes, do)
        table = pd.DataFrame(v, columns=self.graph.nodes).assign(p=w)
        return table.groupby(self.graph.nodes, as_index=False)["p"].sum()

    def p_do(self, outcome: str | None = None, do: Mapping[str, int] | None = None) -> float:
        """Exact ``P(outcome = 1 | do(...))``; default ``P(y = 1 | do(x = 1))``."""
        outcome = outcome or self.outcome
        self.graph.check_nodes(outcome, "outcome")
        table = self.distribution(do if do is not None else {self.treatment: 1})
        return float(table.loc[table[outcome] == 1, "p"].sum())

    def ate(self, treatment: str | None = None, outcome: str | None = None) -> float:
        """Exact ``P(y = 1 | do(x = 1)) - P(y = 1 | do(x = 0))``."""
        x, y = treatment or self.treatment, outcome or self.outcome
        return self.p_do(y, {x: 1}) - self.p_do(y, {x: 0})

    def p_counterfactual(
        self, treatment: str | None = None, outcome: str | None = None, *, observed: int = 1, do: int = 0
    ) -> float:
        """Exact ``P(Y_{x = do} = 1 | X = observed)``.

        The latents and every non-descendant of ``x`` keep their factual values; the
        descendants of ``x`` are re-drawn under ``do(x)`` with their own noise, which the
        evidence ``X = observed`` says nothing about.
        """
        x, y = treatment or self.treatment, outcome or self.outcome
        self.graph.check_nodes({x, y}, "counterfactual")
        nodes = self.graph.nodes
        desc = self.graph.descendants(x) - {x}
        u, v, pu = self._configs()
        factual = pu * self._weights(u, v, nodes, {}) * (v[:, nodes.index(x)] == observed)
        desc_nodes = [n for n in nodes if n in desc]
        # P(Y_{x=do} = 1 | u, nd): enumerate the descendants under do(x), non-descendants fixed
        grid = np.array(list(itertools.product((0, 1), repeat=len(desc_nodes))), dtype=int)
        num = 0.0
        for k in np.flatnonzero(factual > 0):
            cf = np.tile(v[k], (len(grid), 1))
            cf[:, nodes.index(x)] = do
            for j, n in enumerate(desc_nodes):
                cf[:, nodes.index(n)] = grid[:, j]
            uk = np.tile(u[k], (len(cf), 1))
            w = self._weights(uk, cf, desc_nodes, {})
            num += factual[k] * float(np.sum(w * (cf[:, nodes.index(y)] == 1)))
        return num / float(factual.sum())

    def ett(self, treatment: str | None = None, outcome: str | None = None) -> float:
        """Exact effect of treatment on the treated, ``P(Y_1 = 1 | X = 1) - P(Y_0 = 1 | X = 1)``."""
        return self.p_counterfactual(treatment, outcome, observed=1, do=1) - self.p_counterfactual(
            treatment, outcome, observed=1, do=0
        )

    # ------------------------------------------------------------------ sampling
    def sample(
        self, n: int, seed: int | None = None, do: Mapping[str, int] | None = None, *, return_latents: bool = False
    ) -> pd.DataFrame:
        """``n`` rows of the observed nodes (int 0/1), observational or under ``do``.

        With ``return_latents=True`` the hidden ``u_ab`` columns are appended (for checks only:
        a method under test must never see them).
        """
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n={n!r}: pass a non-negative number of rows")
        do = self._check_do(do)
        rng = np.random.default_rng(seed)
        u = (rng.random((n, len(self.latents))) < np.array([lat.prob for lat in self.latents])).astype(int)
        values: dict[str, np.ndarray] = {}
        for v in self.graph.nodes:
            eps = rng.random(n)
            if v in do:
                values[v] = np.full(n, do[v], dtype=int)
            else:
                values[v] = (eps < self._p1(v, values, u)).astype(int)
        out = pd.DataFrame(values, columns=self.graph.nodes)
        if return_latents:
            for k, lat in enumerate(self.latents):
                out[lat.name] = u[:, k]
        return out
