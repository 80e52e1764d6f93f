r"""The ID and IDC algorithms (Shpitser & Pearl 2006a, Fig. 3; 2006b, Fig. 4).

``ID(y, x, P, G)`` returns an expression of ``P(y | do(x))`` in terms of the observational
distribution ``P(v)`` or fails with a hedge; it is complete (Shpitser & Pearl 2006a, Thm. 5).
``IDC`` handles ``P(y | do(x), z)``: it moves every ``z`` with
``(Y ⟂ z | X, Z \ {z})`` in ``G_{\bar X \underline z}`` into the intervention (rule 2 of the
do-calculus) and returns ``P' / Σ_y P'`` with ``P' = ID(y ∪ z, x)``; it is complete as well
(Shpitser & Pearl 2006b, Thm. 8).
"""

from __future__ import annotations

from ..graph import CausalGraph
from .estimand import Estimand
from .expression import Algebra, Expression
from .hedge import Hedge, HedgeError
from .query import Query, QueryError, parse_query

__all__ = ["identify"]

Nodes = frozenset[str]


class _Fail(Exception):
    """ID's line 5: ``G`` is a single c-component and so is ``G \\ X``."""

    def __init__(self, forest: Nodes, subforest: Nodes, roots: Nodes) -> None:
        super().__init__()
        self.forest, self.subforest, self.roots = forest, subforest, roots


def identify(
    graph: CausalGraph | str,
    query: str | Query | None = None,
    *,
    outcome: str | list[str] | None = None,
    treatment: str | list[str] | None = None,
    given: str | list[str] | None = None,
) -> Estimand:
    """Identify ``P(outcome | do(treatment), given)`` from observational data.

    Args:
        graph: a :class:`CausalGraph` or an edge string such as ``"z -> x -> y; z -> y"``.
        query: ``"p(y | do(x), z)"``; or leave it out and pass ``outcome``, ``treatment`` and
            ``given`` (names or lists of names).

    Returns:
        The :class:`Estimand`: print it, render ``to_latex()``, or ``evaluate(df)``.

    Raises:
        NotIdentifiableError: (a :class:`HedgeError`) when the graph does not determine the
            query; the message names the hedge and the latent confounders behind it.
        GraphError: for a malformed graph or query, or variables not in the graph.

    Example:
        >>> print(identify("s -> t -> c; s <-> c", "p(c | do(s))"))
        P(c | do(s)) = Σ_t P(t|s) Σ_s' P(c|s',t) P(s')
    """
    g = graph if isinstance(graph, CausalGraph) else CausalGraph(graph)
    q = _as_query(query, outcome, treatment, given).check(g)
    algebra = Algebra(g, first=q.treatment)
    y, x, z = frozenset(q.outcome), frozenset(q.treatment), frozenset(q.given)

    # IDC: move each z that rule 2 lets us treat as an intervention (2006b, Fig. 4, line 1).
    moved = True
    while moved:
        moved = False
        for zi in algebra.order(z):
            cut = g.remove_incoming(x).remove_outgoing({zi})
            if cut.d_separated(y, {zi}, (x | z) - {zi}):
                x, z, moved = x | {zi}, z - {zi}, True
                break
    reduced = Query(algebra.order(y | z), algebra.order(x))
    joint = algebra.prob(g.nodes)
    try:
        expr = _id(y | z, x, joint, g, algebra)
    except _Fail as fail:
        hedge = Hedge(fail.forest, fail.subforest, fail.roots, x, y | z, g)
        raise HedgeError(q, hedge, reduced if q.given else None) from None
    if z:
        expr = algebra.ratio(expr, algebra.marginalize(expr, y))
    return Estimand(q, g, algebra.merge_chains(expr))


def _as_query(
    query: str | Query | None,
    outcome: str | list[str] | None,
    treatment: str | list[str] | None,
    given: str | list[str] | None,
) -> Query:
    structured = (outcome, treatment, given) != (None, None, None)
    if query is not None and structured:
        raise QueryError("pass either a query string or outcome=/treatment=/given=, not both")
    if query is None:
        if outcome is None:
            raise QueryError("no query: pass query='p(y | do(x))' or outcome='y', treatment='x'")
        return Query.build(outcome, treatment, given)
    return query if isinstance(query, Query) else parse_query(query)


def _id(y: Nodes, x: Nodes, p: Expression, g: CausalGraph, algebra: Algebra) -> Expression:
    """ID(y, x, P, G) of Shpitser & Pearl (2006a, Fig. 3); ``p`` is a distribution over ``G``'s
    nodes (with the values of earlier-fixed variables as context)."""
    v = frozenset(g.nodes)
    # line 1: no intervention left
    if not x:
        return algebra.marginalize(p, v - y)
    # line 2: drop everything that is not an ancestor of y
    ancestors = frozenset(g.ancestors(y))
    if ancestors != v:
        marginal = algebra.marginalize(p, v - ancestors)
        return _id(y, x & ancestors, marginal, g.subgraph(ancestors), algebra)
    # line 3: also intervene on nodes that affect y only through x
    w = (v - x) - g.remove_incoming(x).ancestors(y)
    if w:
        return _id(y, x | w, p, g, algebra)
    # line 4: factorise over the c-components of G \ X
    components = [frozenset(c) for c in g.subgraph(v - x).c_components()]
    if len(components) > 1:
        factors = [_id(s, v - s, p, g, algebra) for s in components]
        return algebra.marginalize(algebra.product(factors), v - (y | x))
    (s,) = components
    g_components = [frozenset(c) for c in g.c_components()]
    # line 5: a hedge
    if len(g_components) == 1:
        raise _Fail(v, s, y)
    order = g.nodes
    # line 6: S is a c-component of G, so Q[S] is a product of conditionals
    if s in g_components:
        factors = [
            algebra.conditional(p, vi, order[:i], v) for i, vi in enumerate(order) if vi in s
        ]
        return algebra.marginalize(algebra.product(factors), s - y)
    # line 7: recurse into the c-component S' of G that contains S
    (s2,) = [c for c in g_components if s < c]
    factors = [algebra.conditional(p, vi, order[:i], v) for i, vi in enumerate(order) if vi in s2]
    return _id(y, x & s2, algebra.product(factors), g.subgraph(s2), algebra)
