"""Binary causal queries for neural causal models and their bounds.

Three forms, every node binary (values 0/1):

- ``"p(y | do(x))"`` is ``P(y = 1 | do(x = 1))``; ``"p(y | do(x=0))"`` sets ``x = 0``;
- ``"ate(x, y)"`` is ``P(y = 1 | do(x = 1)) - P(y = 1 | do(x = 0))``;
- ``"ett(x, y)"`` is the effect of treatment on the treated,
  ``P(Y_{x=1} = 1 | X = 1) - P(Y_{x=0} = 1 | X = 1)`` (a counterfactual, rung 3).

Example:
    >>> q = parse_binary_query("ate(x, y)")
    >>> q.kind, q.treatment, q.outcome
    ('ate', 'x', 'y')
"""

from __future__ import annotations

import re
from typing import Any
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..graph import CausalGraph
from ..identification.query import QueryError, parse_query

__all__ = ["BinaryQuery", "as_graph", "binary_table", "check_observed", "parse_binary_query"]

_PAIR_RE = re.compile(r"^\s*(ate|ett)\s*\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)\s*$", re.IGNORECASE)
_DO_VALUE_RE = re.compile(r"do\s*\(\s*([^()=,]+?)\s*=\s*([01])\s*\)")
_EXAMPLE = "write it like 'p(y | do(x))', 'p(y | do(x=0))', 'ate(x, y)' or 'ett(x, y)'"


@dataclass(frozen=True)
class BinaryQuery:
    """``kind`` is ``"p"`` (``P(outcome = 1 | do(treatment = value))``), ``"ate"`` or ``"ett"``."""

    kind: str
    treatment: str
    outcome: str
    value: int = 1

    def check(self, graph: CausalGraph) -> BinaryQuery:
        """Raise :class:`GraphError` naming any query node the graph lacks."""
        graph.check_nodes([self.treatment, self.outcome], "query")
        return self

    def __str__(self) -> str:
        if self.kind == "p":
            return f"P({self.outcome}=1 | do({self.treatment}={self.value}))"
        return f"{self.kind.upper()}({self.treatment} -> {self.outcome})"

    @property
    def id_text(self) -> str | None:
        """The interventional query for the ID algorithm (``None`` for a counterfactual)."""
        return None if self.kind == "ett" else f"p({self.outcome} | do({self.treatment}))"


def parse_binary_query(query: str | BinaryQuery) -> BinaryQuery:
    """Parse a query string (see the module docstring).

    Raises:
        QueryError: malformed text, several outcomes or treatments, or a conditional query.
    """
    if isinstance(query, BinaryQuery):
        return query
    if not isinstance(query, str):
        raise QueryError(f"a query must be a string, got {type(query).__name__}; {_EXAMPLE}")
    pair = _PAIR_RE.match(query)
    if pair:
        kind, x, y = pair.group(1).lower(), pair.group(2), pair.group(3)
        if x == y:
            raise QueryError(f"{query!r}: treatment and outcome must be different nodes")
        return BinaryQuery(kind, x, y)
    value = 1
    found = _DO_VALUE_RE.search(query)
    text = query
    if found:
        value = int(found.group(2))
        text = query[: found.start()] + f"do({found.group(1)})" + query[found.end() :]
    q = parse_query(text)
    if len(q.outcome) != 1 or len(q.treatment) != 1 or q.given:
        raise QueryError(
            f"{query!r}: neural identification handles one binary outcome under one atomic "
            f"intervention, with no conditioning; {_EXAMPLE}"
        )
    return BinaryQuery("p", q.treatment[0], q.outcome[0], value)


def check_observed(graph: CausalGraph, data: Any) -> None:
    """``data`` is a DataFrame with a column for every node of ``graph``, else :class:`DataError`."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    missing = [n for n in graph.nodes if n not in data.columns]
    if missing:
        raise DataError(
            f"the data has no column for node{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}; every graph node must be observed (a hidden "
            "confounder is written as a bidirected edge a <-> b, not as a node)"
        )


def binary_table(graph: CausalGraph, data: pd.DataFrame, weight: str | None = None) -> pd.DataFrame:
    """The distinct rows of ``data`` over ``graph.nodes`` (int 0/1) with their total ``weight``
    (row counts by default) in a column ``"__w"``.

    Raises:
        DataError: a node missing from the data, NaN, a non-binary column, or bad weights.
    """
    check_observed(graph, data)
    if len(data) == 0:
        raise DataError("the data has no rows")
    cols = {}
    for n in graph.nodes:
        col = data[n]
        if col.isna().any():
            raise DataError(f"column {n!r} holds missing values; drop or impute them first")
        vals = pd.unique(col.to_numpy())
        try:
            ok = set(np.asarray(vals, dtype=float).tolist()) <= {0.0, 1.0}
        except (TypeError, ValueError):
            ok = False
        if not ok:
            shown = ", ".join(map(repr, sorted(map(str, vals))[:5]))
            raise DataError(
                f"column {n!r} is not binary (values {shown}...); neural causal models and LP "
                "bounds here need every node coded 0/1 (recode categories, or threshold a "
                "continuous variable)"
            )
        cols[n] = col.to_numpy().astype(float).astype(int)
    table = pd.DataFrame(cols)
    if weight is None:
        table["__w"] = 1.0
    else:
        if weight not in data.columns:
            raise DataError(f"weight column {weight!r} is not in the data")
        w = data[weight].to_numpy(dtype=float)
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise DataError(f"weight column {weight!r} must be finite, non-negative and not all 0")
        table["__w"] = w
    return table.groupby(graph.nodes, as_index=False)["__w"].sum()


def as_graph(graph: CausalGraph | str) -> CausalGraph:
    """``graph`` as a :class:`CausalGraph` (an edge string is parsed; a cycle is a GraphError)."""
    if isinstance(graph, CausalGraph):
        return graph
    if isinstance(graph, str):
        return CausalGraph(graph)
    raise ConfigError(f"graph must be a CausalGraph or an edge string, got {type(graph).__name__}")
