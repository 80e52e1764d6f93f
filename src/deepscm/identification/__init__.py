"""Identification: can the graph and observational data answer ``P(y | do(x), z)``, and how?

:func:`identify` runs the ID / IDC algorithms of Shpitser & Pearl (2006) and returns an
:class:`Estimand` (a readable formula you can print, render as LaTeX and evaluate on discrete
data) or raises :class:`HedgeError` (a ``NotIdentifiableError``) naming the hedge.

Example:
    >>> from deepscm.identification import identify
    >>> print(identify("s -> t -> c; s <-> c", "p(c | do(s))"))
    P(c | do(s)) = Σ_t P(t|s) Σ_s' P(c|s',t) P(s')
"""

from .estimand import Estimand
from .expression import ONE, Algebra, Expression, Probability, Product, Ratio, Sum
from .hedge import Hedge, HedgeError
from .id_algorithm import identify
from .query import Query, QueryError, parse_query

__all__ = [
    "ONE",
    "Algebra",
    "Estimand",
    "Expression",
    "Hedge",
    "HedgeError",
    "Probability",
    "Product",
    "Query",
    "QueryError",
    "Ratio",
    "Sum",
    "identify",
    "parse_query",
]
