"""Causal graphs: directed edges plus bidirected edges ``a <-> b`` for latent confounders.

A :class:`CausalGraph` is an acyclic directed mixed graph (ADMG). Its directed part must be a
DAG; a bidirected edge ``a <-> b`` stands for an unobserved common cause of ``a`` and ``b``.
The graph is immutable: every operation that changes it returns a new graph.

Node names are any non-empty strings (the DataFrame's column names). In the edge-string syntax
a bare name is a run of characters other than whitespace, ``;``, quotes, ``<`` and ``>``, and
it may hold dashes that do not start an arrow (``x-1 -> y``); quote any other name with double
or single quotes, ``"blood pressure" -> y`` (``\\"`` and ``\\\\`` escape inside quotes).
``str(graph)`` quotes the names that need it, so it parses back to the same graph. Node
labels that are not strings (e.g. integers in a networkx graph) are refused with a
:class:`GraphError`: relabel them with ``nx.relabel_nodes(G, str)`` and name the data's
columns alike.

Example:
    >>> g = CausalGraph("z -> x; x -> m; m -> y; x <-> y")
    >>> g.parents("y")
    ['m']
    >>> g.is_frontdoor_set("x", "y", {"m"})
    True
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Union

import networkx as nx

from .errors import GraphError

__all__ = ["CausalGraph", "GraphLike"]

_BARE = r"(?:(?!->)[^\s;\"'<>])+"
_BARE_RE = re.compile(_BARE)
_TOKEN_RE = re.compile(
    rf"""[^\S\n]*(?:(?P<sep>[;\n])|(?P<arrow><->|->|<-)|"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)'|(?P<bare>{_BARE}))""",
    re.DOTALL,
)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)

GraphLike = Union["CausalGraph", str, nx.DiGraph]
Nodes = Union[str, Iterable[str]]


def _as_set(nodes: Nodes) -> set[str]:
    return {nodes} if isinstance(nodes, str) else set(nodes)


class CausalGraph:
    """An acyclic directed mixed graph over named variables.

    Args:
        spec: an edge string such as ``"a -> b; b -> c; a <-> c"`` (statements separated by
            ``;`` or new lines; chains ``a -> b -> c``, reversed arrows ``b <- a`` and lone
            node names are allowed), a networkx ``DiGraph`` (see :meth:`from_networkx`), or
            another ``CausalGraph``.
        nodes: extra isolated nodes to include.

    Raises:
        GraphError: on a malformed statement (the fragment is shown), a self-loop or a
            directed cycle (the cycle is shown).
    """

    def __init__(self, spec: GraphLike = "", nodes: Iterable[str] = ()) -> None:
        if isinstance(spec, CausalGraph):
            directed, bidirected, all_nodes = spec.directed_edges, spec.bidirected_edges, spec.nodes
        elif isinstance(spec, nx.Graph):
            other = CausalGraph.from_networkx(spec)
            directed, bidirected, all_nodes = (
                other.directed_edges,
                other.bidirected_edges,
                other.nodes,
            )
        elif isinstance(spec, str):
            directed, bidirected, all_nodes = _parse(spec)
        else:
            raise GraphError(
                f"cannot build a CausalGraph from {type(spec).__name__}; pass an edge string "
                "like 'a -> b; a <-> c', a networkx.DiGraph or a CausalGraph"
            )
        self._dag = nx.DiGraph()
        self._dag.add_nodes_from(all_nodes)
        self._dag.add_nodes_from(_checked_names(nodes))
        self._dag.add_edges_from(directed)
        self._bidirected: frozenset[frozenset[str]] = frozenset(frozenset(e) for e in bidirected)
        for a, b in bidirected:
            self._dag.add_nodes_from((a, b))
        self._validate()
        self._order = list(nx.lexicographical_topological_sort(self._dag))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_networkx(
        cls, graph: nx.DiGraph, bidirected: Iterable[tuple[str, str]] = ()
    ) -> CausalGraph:
        """Build from a networkx ``DiGraph``.

        Bidirected edges come from ``bidirected``, from ``graph.graph["bidirected"]`` (the
        format :meth:`to_networkx` writes), or from edges carrying the attribute
        ``bidirected=True``. The caller's graph is never modified.
        """
        if not isinstance(graph, nx.DiGraph):
            raise GraphError(
                f"expected a networkx.DiGraph, got {type(graph).__name__}; an undirected graph "
                "has no causal direction"
            )
        bi = [tuple(_checked_names(e)) for e in bidirected]
        bi += [tuple(_checked_names(e)) for e in graph.graph.get("bidirected", ())]
        directed = []
        for a, b, attrs in graph.edges(data=True):
            if attrs.get("bidirected", False):
                bi.append((a, b))
            else:
                directed.append((a, b))
        for a, b in bi:
            if a == b:
                raise GraphError(f"self-loop '{a} <-> {a}': a bidirected edge needs two nodes")
        g = cls.__new__(cls)
        g._dag = nx.DiGraph()
        g._dag.add_nodes_from(_checked_names(graph.nodes))
        g._dag.add_edges_from(directed)
        g._bidirected = frozenset(frozenset(e) for e in bi)
        for a, b in bi:
            g._dag.add_nodes_from((a, b))
        g._validate()
        g._order = list(nx.lexicographical_topological_sort(g._dag))
        return g

    def to_networkx(self) -> nx.DiGraph:
        """A new ``DiGraph`` of the directed edges; bidirected edges in ``G.graph["bidirected"]``."""
        out = nx.DiGraph(bidirected=sorted(self.bidirected_edges))
        out.add_nodes_from(self._order)
        out.add_edges_from(self.directed_edges)
        return out

    def _validate(self) -> None:
        for a, b in self._dag.edges:
            if a == b:
                raise GraphError(f"self-loop '{a} -> {a}': a variable cannot cause itself")
        try:
            cycle = nx.find_cycle(self._dag)
        except nx.NetworkXNoCycle:
            return
        path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise GraphError(f"the directed edges contain a cycle: {path}; a causal graph must be acyclic")

    # ------------------------------------------------------------------ basic structure
    @property
    def nodes(self) -> list[str]:
        """All nodes in a topological order (ties broken alphabetically)."""
        return list(self._order)

    def topological_order(self) -> list[str]:
        """All nodes so that every parent precedes its children."""
        return list(self._order)

    @property
    def directed_edges(self) -> list[tuple[str, str]]:
        return sorted(self._dag.edges)

    @property
    def bidirected_edges(self) -> list[tuple[str, str]]:
        return sorted(tuple(sorted(e)) for e in self._bidirected)

    @property
    def has_latent_confounders(self) -> bool:
        return bool(self._bidirected)

    def __contains__(self, node: object) -> bool:
        return node in self._dag

    def __len__(self) -> int:
        return len(self._order)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CausalGraph)
            and set(self._order) == set(other._order)
            and set(self._dag.edges) == set(other._dag.edges)
            and self._bidirected == other._bidirected
        )

    def __hash__(self) -> int:
        return hash((frozenset(self._order), frozenset(self._dag.edges), self._bidirected))

    def __str__(self) -> str:
        parts = [f"{_quote(a)} -> {_quote(b)}" for a, b in self.directed_edges]
        parts += [f"{_quote(a)} <-> {_quote(b)}" for a, b in self.bidirected_edges]
        touched = {n for e in self.directed_edges + self.bidirected_edges for n in e}
        parts += [_quote(n) for n in self._order if n not in touched]
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"CausalGraph({str(self)!r})"

    def check_nodes(self, nodes: Nodes, role: str = "query") -> set[str]:
        """Return ``nodes`` as a set; raise :class:`GraphError` naming any unknown node."""
        found = _as_set(nodes)
        unknown = sorted(found - set(self._order))
        if unknown:
            raise GraphError(
                f"unknown node{'s' if len(unknown) > 1 else ''} in {role}: "
                f"{', '.join(map(repr, unknown))}; the graph has {', '.join(self._order)}"
            )
        return found

    def parents(self, node: str) -> list[str]:
        """Directed parents of ``node``, in topological order."""
        self.check_nodes(node)
        return self._in_order(self._dag.predecessors(node))

    def children(self, node: str) -> list[str]:
        self.check_nodes(node)
        return self._in_order(self._dag.successors(node))

    def spouses(self, node: str) -> list[str]:
        """Nodes joined to ``node`` by a bidirected edge (a shared latent confounder)."""
        self.check_nodes(node)
        return self._in_order(n for e in self._bidirected if node in e for n in e if n != node)

    def ancestors(self, nodes: Nodes, include_self: bool = True) -> set[str]:
        """Nodes with a directed path into ``nodes`` (``nodes`` themselves by default)."""
        start = self.check_nodes(nodes)
        out = set(start) if include_self else set()
        for n in start:
            out |= nx.ancestors(self._dag, n)
        return out

    def descendants(self, nodes: Nodes, include_self: bool = True) -> set[str]:
        """Nodes reachable from ``nodes`` by a directed path (``nodes`` themselves by default)."""
        start = self.check_nodes(nodes)
        out = set(start) if include_self else set()
        for n in start:
            out |= nx.descendants(self._dag, n)
        return out

    def roots(self) -> list[str]:
        return [n for n in self._order if self._dag.in_degree(n) == 0]

    def c_components(self) -> list[set[str]]:
        """Partition of the nodes into confounded components (connected by bidirected edges)."""
        bi = nx.Graph()
        bi.add_nodes_from(self._order)
        bi.add_edges_from(tuple(e) for e in self._bidirected)
        comps = [set(c) for c in nx.connected_components(bi)]
        return sorted(comps, key=lambda c: min(self._order.index(n) for n in c))

    # ------------------------------------------------------------------ graph surgery
    def subgraph(self, nodes: Nodes) -> CausalGraph:
        """The induced subgraph on ``nodes`` (both edge kinds)."""
        keep = self.check_nodes(nodes)
        return self._rebuild(
            keep,
            [(a, b) for a, b in self._dag.edges if a in keep and b in keep],
            [tuple(e) for e in self._bidirected if e <= keep],
        )

    def remove_incoming(self, nodes: Nodes) -> CausalGraph:
        """``G_{\\bar X}``: drop every edge (directed or bidirected) pointing into ``nodes``."""
        x = self.check_nodes(nodes)
        return self._rebuild(
            set(self._order),
            [(a, b) for a, b in self._dag.edges if b not in x],
            [tuple(e) for e in self._bidirected if not (e & x)],
        )

    def remove_outgoing(self, nodes: Nodes) -> CausalGraph:
        """``G_{\\underline X}``: drop every directed edge leaving ``nodes``."""
        x = self.check_nodes(nodes)
        return self._rebuild(
            set(self._order),
            [(a, b) for a, b in self._dag.edges if a not in x],
            [tuple(e) for e in self._bidirected],
        )

    def without_edge(self, source: str, target: str) -> CausalGraph:
        """A copy with the directed edge ``source -> target`` removed."""
        self.check_nodes({source, target})
        if not self._dag.has_edge(source, target):
            raise GraphError(f"the graph has no edge {source} -> {target}")
        return self._rebuild(
            set(self._order),
            [e for e in self._dag.edges if e != (source, target)],
            [tuple(e) for e in self._bidirected],
        )

    def _rebuild(self, nodes: set[str], directed: list, bidirected: list) -> CausalGraph:
        g = CausalGraph.__new__(CausalGraph)
        g._dag = nx.DiGraph()
        g._dag.add_nodes_from(n for n in self._order if n in nodes)
        g._dag.add_edges_from(directed)
        g._bidirected = frozenset(frozenset(e) for e in bidirected)
        g._order = [n for n in self._order if n in nodes]
        return g

    def _in_order(self, nodes: Iterable[str]) -> list[str]:
        found = set(nodes)
        return [n for n in self._order if n in found]

    def latent_dag(self) -> nx.DiGraph:
        """The DAG with each bidirected edge ``a <-> b`` replaced by a latent ``U[a,b] -> a, b``."""
        dag = self._dag.copy()
        for a, b in self.bidirected_edges:
            u = f"U[{a},{b}]"
            while u in dag:  # never merge with an observed node of that name
                u = f"_{u}"
            dag.add_edges_from([(u, a), (u, b)])
        return dag

    # ------------------------------------------------------------------ d-separation
    def d_separated(self, x: Nodes, y: Nodes, z: Nodes = ()) -> bool:
        """Whether ``x`` and ``y`` are d-separated given ``z`` (m-separation with ``<->`` edges).

        Uses the moralised ancestral graph (Lauritzen et al. 1990): ``X ⟂ Y | Z`` iff ``X``
        and ``Y`` are disconnected in the moral graph of ``An(X ∪ Y ∪ Z)`` after removing ``Z``.
        Bidirected edges are treated as latent common parents.
        """
        xs, ys, zs = self.check_nodes(x), self.check_nodes(y), self.check_nodes(z)
        if xs & ys:
            return False
        dag = self.latent_dag()
        relevant = set(xs | ys | zs)
        for n in list(relevant):
            relevant |= nx.ancestors(dag, n)
        moral = nx.Graph()
        moral.add_nodes_from(relevant)
        for n in relevant:
            pas = [p for p in dag.predecessors(n) if p in relevant]
            moral.add_edges_from((p, n) for p in pas)
            moral.add_edges_from(itertools.combinations(pas, 2))
        moral.remove_nodes_from(zs - xs - ys)
        reach: set[str] = set()
        for n in xs:
            if n not in reach:
                reach |= nx.node_connected_component(moral, n)
        return not (reach & ys)

    # ------------------------------------------------------------------ adjustment
    def is_backdoor_set(self, x: Nodes, y: Nodes, z: Nodes) -> bool:
        """Pearl's back-door criterion for ``(X, Y)`` relative to ``Z``.

        ``Z`` contains no descendant of ``X`` and blocks every path between ``X`` and ``Y``
        that starts with an arrow into ``X``, i.e. ``Y ⟂ X | Z`` in ``G_{\\underline X}``.
        """
        xs, ys, zs = self.check_nodes(x), self.check_nodes(y), self.check_nodes(z)
        if zs & (xs | ys) or zs & self.descendants(xs):
            return False
        return self.remove_outgoing(xs).d_separated(xs, ys, zs)

    def adjustment_set(self, x: Nodes, y: Nodes) -> set[str] | None:
        """A minimal back-door adjustment set for the effect of ``X`` on ``Y``, or ``None``.

        Searches observed non-descendants of ``X`` (latent confounders cannot be adjusted
        for) with the minimal d-separator algorithm of van der Zander et al. (2019) in
        ``G_{\\underline X}``; the result is minimal (no proper subset works).
        """
        xs, ys = self.check_nodes(x), self.check_nodes(y)
        if xs & ys:
            raise GraphError("treatment and outcome must be different nodes")
        allowed = set(self._order) - self.descendants(xs) - ys
        if self.is_backdoor_set(xs, ys, set()):
            return set()
        dag = self.remove_outgoing(xs).latent_dag()
        found = nx.find_minimal_d_separator(dag, xs, ys, restricted=allowed)
        if found is None:
            return None
        return set(found)

    def is_frontdoor_set(self, x: str, y: str, m: Nodes) -> bool:
        """Pearl's front-door criterion for ``(x, y)`` relative to mediators ``M``.

        (i) ``M`` intercepts every directed path from ``x`` to ``y``; (ii) there is no
        unblocked back-door path from ``x`` to ``M``; (iii) every back-door path from ``M``
        to ``y`` is blocked by ``x``.
        """
        self.check_nodes({x, y})
        ms = self.check_nodes(m)
        if not ms or x in ms or y in ms:
            return False
        cut = self.subgraph(set(self._order) - ms)
        if y in cut.descendants(x):
            return False
        if not self.is_backdoor_set(x, ms, set()):
            return False
        return self.remove_outgoing(ms).d_separated(ms, {y}, {x})

    def frontdoor_set(self, x: str, y: str, max_size: int = 4) -> set[str] | None:
        """The smallest mediator set satisfying the front-door criterion, or ``None``.

        Candidates are nodes on directed paths from ``x`` to ``y``; subsets are tried in
        increasing size up to ``max_size``.
        """
        self.check_nodes({x, y})
        candidates = sorted((self.descendants(x) & self.ancestors(y)) - {x, y})
        for size in range(1, min(max_size, len(candidates)) + 1):
            for subset in itertools.combinations(candidates, size):
                if self.is_frontdoor_set(x, y, set(subset)):
                    return set(subset)
        return None


# ---------------------------------------------------------------------- parsing
_SYNTAX = "write edges as 'a -> b', 'a <- b' or 'a <-> b', separated by ';'"


def _checked_names(names: Iterable[object]) -> list[str]:
    out = []
    for n in names:
        if not isinstance(n, str):
            raise GraphError(
                f"node {n!r} has type {type(n).__name__}; node names must be strings (the data's "
                "column names): relabel a networkx graph with nx.relabel_nodes(G, str) and the "
                "columns with df.columns = df.columns.astype(str)"
            )
        if not n.strip():
            raise GraphError(f"invalid node name {n!r}: a node name must not be empty")
        out.append(n)
    return out


def _quote(name: str) -> str:
    """``name`` as the edge-string syntax writes it: bare when it can be, else double-quoted."""
    if _BARE_RE.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tokens(spec: str) -> list[tuple[list[tuple[str, str]], str]]:
    """Split ``spec`` into statements: ``([(kind, text), ...], fragment)`` per statement."""
    statements: list[tuple[list[tuple[str, str]], str]] = []
    tokens: list[tuple[str, str]] = []
    start = pos = 0
    while pos < len(spec):
        match = _TOKEN_RE.match(spec, pos)
        if match is None or match.end() == pos:
            if not spec[pos:].strip():
                break
            end = min((i for i in (spec.find(";", pos), spec.find("\n", pos)) if i >= 0), default=len(spec))
            fragment = spec[start:end].strip()
            bad = spec[pos:].lstrip()[:1]
            hint = "close the quote" if bad in "\"'" else "quote a name that holds it"
            raise GraphError(
                f"malformed edge {fragment!r}: unexpected {bad!r} ({hint}, e.g. \"blood "
                f"pressure\" -> y); {_SYNTAX}"
            )
        pos = match.end()
        if match["sep"] is not None:
            statements.append((tokens, spec[start:match.start("sep")].strip()))
            tokens, start = [], pos
        elif match["arrow"] is not None:
            tokens.append(("arrow", match["arrow"]))
        else:
            quoted = match["dq"] if match["dq"] is not None else match["sq"]
            if quoted is not None:
                tokens.append(("name", _UNESCAPE_RE.sub(r"\1", quoted)))
            else:
                tokens.append(("name", match["bare"]))
    statements.append((tokens, spec[start:].strip()))
    return [(t, f) for t, f in statements if t]


def _parse(spec: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    directed: list[tuple[str, str]] = []
    bidirected: list[tuple[str, str]] = []
    nodes: list[str] = []
    for tokens, fragment in _tokens(spec):
        kinds = [kind for kind, _ in tokens]
        expected = ["name", "arrow"] * (len(tokens) // 2) + ["name"]
        if kinds != expected:
            at = next((i for i, (k, e) in enumerate(zip(kinds, expected)) if k != e), len(kinds))
            if at < len(kinds) and kinds[at] == "name":
                problem = (
                    f"{tokens[at - 1][1]!r} and {tokens[at][1]!r} are two names without an arrow "
                    "between them (quote a name with spaces: \"blood pressure\" -> y)"
                )
            else:
                problem = "an arrow needs a node name on both sides"
            raise GraphError(f"malformed edge {fragment!r}: {problem}; {_SYNTAX}")
        names = [text for _, text in tokens[0::2]]
        arrows = [text for _, text in tokens[1::2]]
        _checked_names(names)
        nodes.extend(names)
        for (a, b), arrow in zip(itertools.pairwise(names), arrows):
            if a == b:
                raise GraphError(f"self-loop {fragment!r}: a variable cannot cause itself")
            if arrow == "->":
                directed.append((a, b))
            elif arrow == "<-":
                directed.append((b, a))
            else:
                bidirected.append((a, b))
    return directed, bidirected, list(dict.fromkeys(nodes))
