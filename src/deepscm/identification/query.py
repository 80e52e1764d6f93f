"""Causal queries ``P(Y | do(X), Z)``: parsing and validation.

Example:
    >>> q = parse_query("p(y | do(x), z)")
    >>> q.outcome, q.treatment, q.given
    (('y',), ('x',), ('z',))
    >>> str(q)
    'P(y | do(x), z)'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import GraphError
from ..graph import CausalGraph

__all__ = ["Query", "QueryError", "parse_query"]

#: a bare name in query text: no whitespace, commas, parentheses, bars, equals or quotes;
#: any other name is quoted, ``"blood pressure"`` or ``'blood pressure'``.
_NAME_RE = re.compile(r"""^[^\s,()|='"]+$""")
_QUOTED_RE = re.compile(r"""^(?:"([^"]+)"|'([^']+)')$""")
_DO_RE = re.compile(r"^do\s*\((.*)\)$", re.IGNORECASE | re.DOTALL)
_WRAPPED_RE = re.compile(r"^[pP]\s*\((.*)\)$", re.DOTALL)
_EXAMPLE = "write it like 'p(y | do(x))' or 'p(y1, y2 | do(x), z)'"


class QueryError(GraphError):
    """A malformed causal query, or one whose variable roles overlap."""


@dataclass(frozen=True)
class Query:
    """The causal query ``P(outcome | do(treatment), given)``.

    The three roles are disjoint tuples of variable names; ``outcome`` is never empty. An empty
    ``treatment`` is an observational query.
    """

    outcome: tuple[str, ...]
    treatment: tuple[str, ...] = ()
    given: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.outcome:
            raise QueryError(f"the query names no outcome variable; {_EXAMPLE}")
        roles = {"outcome": self.outcome, "do": self.treatment, "given": self.given}
        seen: dict[str, str] = {}
        for role, names in roles.items():
            for name in names:
                if name in seen:
                    raise QueryError(
                        f"variable {name!r} appears both as {seen[name]} and as {role} in the "
                        "query; each variable can play one role"
                    )
                seen[name] = role

    @classmethod
    def build(
        cls,
        outcome: str | Iterable[str],
        treatment: str | Iterable[str] | None = None,
        given: str | Iterable[str] | None = None,
    ) -> Query:
        """A query from names or iterables of names (``None`` means none)."""
        return cls(_names(outcome, "outcome"), _names(treatment, "do"), _names(given, "given"))

    def variables(self) -> tuple[str, ...]:
        """Every variable of the query: treatment, given, then outcome."""
        return self.treatment + self.given + self.outcome

    def check(self, graph: CausalGraph) -> Query:
        """The same query with each role in ``graph``'s topological order.

        Raises:
            GraphError: naming every query variable that is not a node of ``graph``.
        """
        graph.check_nodes(self.variables(), "query")
        order = {n: i for i, n in enumerate(graph.nodes)}

        def ordered(names: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(sorted(names, key=order.__getitem__))

        return Query(ordered(self.outcome), ordered(self.treatment), ordered(self.given))

    def __str__(self) -> str:
        parts = [f"do({', '.join(self.treatment)})"] if self.treatment else []
        parts += list(self.given)
        cond = f" | {', '.join(parts)}" if parts else ""
        return f"P({', '.join(self.outcome)}{cond})"


def parse_query(text: str) -> Query:
    """Parse ``"p(y | do(x), z)"``-style text into a :class:`Query`.

    The ``p( )`` wrapper is optional; ``do( )`` may appear several times and anywhere after
    ``|``; several outcomes are separated by commas.

    Raises:
        QueryError: on malformed text, quoting the offending fragment.
    """
    if not isinstance(text, str):
        raise QueryError(f"a query must be a string, got {type(text).__name__}; {_EXAMPLE}")
    body = text.strip()
    wrapped = _WRAPPED_RE.match(body)
    if wrapped:
        body = wrapped.group(1)
    head, bar, tail = body.partition("|")
    if "|" in tail:
        raise QueryError(f"query {text!r} has more than one '|'; {_EXAMPLE}")
    outcome = _parse_names(head, text)
    treatment: list[str] = []
    given: list[str] = []
    if bar:
        for term in _split_top_level(tail, text):
            do = _DO_RE.match(term)
            if do:
                treatment += _parse_names(do.group(1), text)
            else:
                given += _parse_names(term, text)
    return Query(tuple(outcome), tuple(treatment), tuple(given))


def _split_top_level(text: str, query: str) -> list[str]:
    """Split on commas that are not inside parentheses or quotes."""
    terms, depth, start, quote = [], 0, 0, ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise QueryError(f"unbalanced ')' in query {query!r}; {_EXAMPLE}")
        elif ch == "," and depth == 0:
            terms.append(text[start:i].strip())
            start = i + 1
    if depth:
        raise QueryError(f"unbalanced '(' in query {query!r}; {_EXAMPLE}")
    if quote:
        raise QueryError(f"unclosed {quote} in query {query!r}; {_EXAMPLE}")
    terms.append(text[start:].strip())
    return terms


def _parse_names(fragment: str, query: str) -> list[str]:
    names = []
    for name in _split_top_level(fragment, query):
        quoted = _QUOTED_RE.match(name)
        if quoted:
            names.append(quoted.group(1) or quoted.group(2))
            continue
        if "=" in name:
            raise QueryError(
                f"{name!r} in query {query!r} fixes a value; a query names variables only "
                "(the estimand covers every value, and evaluate() tabulates them all)"
            )
        if not _NAME_RE.match(name):
            raise QueryError(
                f"{name!r} in query {query!r} is not a variable name; {_EXAMPLE} (quote names "
                "with spaces or punctuation: 'p(\"blood pressure\" | do(dose))')"
            )
        names.append(name)
    return names


def _names(value: str | Iterable[str] | None, role: str) -> tuple[str, ...]:
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise QueryError(f"{name!r} given as {role} is not a variable name (a non-empty string)")
    return names
