"""Hedges: the graphical certificate that a causal effect is not identifiable.

Shpitser & Pearl (2006), Def. 4-5: an ``R``-rooted C-forest is a set of nodes that is one
c-component (connected by bidirected edges) in which every node has a directed path to the
root set ``R``. A hedge for ``P(Y | do(X))`` is a pair of ``R``-rooted C-forests ``F' ⊂ F``
with ``F ∩ X ≠ ∅``, ``F' ∩ X = ∅`` and ``R ⊆ An(Y)`` in ``G`` without the edges into ``X``.
``P(Y | do(X))`` is identifiable iff no hedge exists (Thm. 4); ID's failure line returns one.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from ..errors import NotIdentifiableError
from ..graph import CausalGraph
from .query import Query

__all__ = ["Hedge", "HedgeError"]


@dataclass(frozen=True)
class Hedge:
    """A hedge ``(F, F')`` for ``P(outcome | do(treatment))`` in ``graph``.

    Attributes:
        forest: ``F``, which contains some treatment variables.
        subforest: ``F' ⊂ F``, which contains none.
        roots: ``R``, the common root set.
        treatment, outcome: the interventional query the hedge blocks (for a conditional
            query, the one IDC reduced it to).
        graph: the graph the hedge lives in.
    """

    forest: frozenset[str]
    subforest: frozenset[str]
    roots: frozenset[str]
    treatment: frozenset[str]
    outcome: frozenset[str]
    graph: CausalGraph

    @property
    def confounders(self) -> list[tuple[str, str]]:
        """The bidirected edges joining ``F \\ F'`` to ``F'``: latent common causes of treated
        and untreated parts of the hedge. Observing all of them breaks this hedge."""
        treated = self.forest - self.subforest
        return [
            (a, b)
            for a, b in self.graph.bidirected_edges
            if {a, b} <= self.forest and ({a, b} & treated) and ({a, b} & self.subforest)
        ]

    def _set(self, nodes: frozenset[str]) -> str:
        return "{" + ", ".join(n for n in self.graph.nodes if n in nodes) + "}"

    def describe(self) -> str:
        """A plain-words account of the hedge and of what would remove it."""
        treated = self._set(self.forest & self.treatment)
        edges = ", ".join(f"{a} <-> {b}" for a, b in self.confounders)
        why = (
            f"Hedge (Shpitser & Pearl 2006): F = {self._set(self.forest)} and "
            f"F' = {self._set(self.subforest)}, both rooted at {self._set(self.roots)}. Each is "
            "held together by latent confounders, and each of its nodes reaches the roots along "
            f"directed edges; F contains the treatment {treated}, F' contains no treatment. "
            "Observational data cannot tell the causal effect apart from confounding through "
            f"the latent common cause(s) {edges}."
        )
        fix = (
            "To identify the effect, measure those confounders (replace 'a <-> b' by an observed "
            "node 'u -> a; u -> b'), or measure a mediator that carries the whole effect of the "
            "treatment (front-door), then ask again."
        )
        return textwrap.fill(why, width=90) + "\n" + textwrap.fill(fix, width=90)


class HedgeError(NotIdentifiableError):
    """``NotIdentifiableError`` carrying the :class:`Hedge` that proves non-identifiability."""

    def __init__(self, query: Query, hedge: Hedge, reduced: Query | None = None) -> None:
        self.query = query
        self.hedge = hedge
        via = (
            f" (IDC reduces it to {reduced}, which is not identifiable)"
            if reduced is not None and reduced != query
            else ""
        )
        headline = f"{query} is not identifiable from observational data in this graph{via}."
        super().__init__(textwrap.fill(headline, width=90) + "\n" + hedge.describe())
