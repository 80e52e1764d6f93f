r"""Probability expressions over observed variables: the language of identified estimands.

An expression is built from four node types: :class:`Probability` ``P(A | B)`` (an
observational conditional), :class:`Product`, :class:`Sum` (marginalisation, which binds its
variables) and :class:`Ratio`. ``ONE`` is the empty product. Expressions are immutable and
compare structurally.

:class:`Algebra` builds them with the simplifications that make ID's output readable
(Shpitser & Pearl 2006; Tian & Pearl 2002): ``Σ_a P(a, b | c) = P(b | c)``, sums pushed onto
the factors that mention their variables, common factors cancelled in ratios,
``P(a, b) / P(b) = P(a | b)``, conditioning sets reduced by m-separation in the graph, and
chains ``P(a | c) P(b | a, c)`` merged into ``P(a, b | c)``.

Printing follows the textbook convention that a ``Σ`` extends to the end of its product; a
summation variable that shadows a free one is primed (``Σ_s' P(c|s',t) P(s')``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache

from ..graph import CausalGraph

__all__ = [
    "ONE",
    "Algebra",
    "Expression",
    "Probability",
    "Product",
    "Ratio",
    "Sum",
    "latex_name",
]


class Expression:
    """Base class of probability expressions."""

    @cached_property
    def free_variables(self) -> frozenset[str]:
        """Variables the expression's value depends on (those not bound by a ``Σ``)."""
        raise NotImplementedError

    def render(self, latex: bool = False, reserved: Iterable[str] = ()) -> str:
        """Unicode text (or LaTeX source, math mode); summation variables named like a free
        or ``reserved`` variable are primed."""
        return _render(self, latex, names={}, used=set(self.free_variables) | set(reserved))

    def __str__(self) -> str:
        return self.render()

    def to_latex(self) -> str:
        """LaTeX source (math mode, without delimiters)."""
        return self.render(latex=True)


@dataclass(frozen=True, eq=True)
class Probability(Expression):
    """``P(variables | given)`` under the observational distribution."""

    variables: tuple[str, ...]
    given: tuple[str, ...] = ()

    @cached_property
    def free_variables(self) -> frozenset[str]:
        return frozenset(self.variables) | frozenset(self.given)


@dataclass(frozen=True, eq=True)
class Product(Expression):
    """The product of ``factors``; the empty product is ``ONE``."""

    factors: tuple[Expression, ...]

    @cached_property
    def free_variables(self) -> frozenset[str]:
        return frozenset().union(*(f.free_variables for f in self.factors))


@dataclass(frozen=True, eq=True)
class Sum(Expression):
    """``Σ_{variables} body``: sums ``body`` over every value of ``variables``."""

    variables: tuple[str, ...]
    body: Expression

    @cached_property
    def free_variables(self) -> frozenset[str]:
        return self.body.free_variables - frozenset(self.variables)


@dataclass(frozen=True, eq=True)
class Ratio(Expression):
    """``numerator / denominator``."""

    numerator: Expression
    denominator: Expression

    @cached_property
    def free_variables(self) -> frozenset[str]:
        return self.numerator.free_variables | self.denominator.free_variables


ONE = Product(())


def _factors(expr: Expression) -> list[Expression]:
    return list(expr.factors) if isinstance(expr, Product) else [expr]


class Algebra:
    """Builds simplified expressions for one graph.

    Args:
        graph: the causal graph; conditioning sets are reduced by its m-separations, which
            hold in every observational distribution the graph generates.
        first: variables listed first inside ``P( )`` (the treatment), the rest follow in
            topological order.
    """

    def __init__(self, graph: CausalGraph, first: Iterable[str] = ()) -> None:
        self.graph = graph
        lead = [n for n in graph.nodes if n in set(first)]
        rest = [n for n in graph.nodes if n not in set(lead)]
        self._rank = {n: i for i, n in enumerate(lead + rest)}
        self._topo = {n: i for i, n in enumerate(graph.nodes)}
        self._separated = lru_cache(maxsize=None)(self._d_separated)

    def order(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(set(names), key=self._rank.__getitem__))

    def _d_separated(self, a: frozenset[str], b: str, rest: frozenset[str]) -> bool:
        return self.graph.d_separated(a, {b}, rest)

    # ------------------------------------------------------------------ constructors
    def prob(self, variables: Iterable[str], given: Iterable[str] = ()) -> Expression:
        """``P(variables | given)`` with ``given`` reduced: ``b`` is dropped while
        ``variables ⟂ b | given \\ {b}`` (global Markov property of the ADMG)."""
        heads = frozenset(variables)
        if not heads:
            return ONE
        cond = set(given) - heads
        for b in self.order(cond):
            if self._separated(heads, b, frozenset(cond - {b})):
                cond.discard(b)
        return Probability(self.order(heads), self.order(cond))

    def product(self, factors: Iterable[Expression]) -> Expression:
        flat = [g for f in factors for g in _factors(f)]
        if len(flat) == 1:
            return flat[0]
        return Product(tuple(sorted(flat, key=self._factor_key)))

    def _factor_key(self, f: Expression) -> tuple:
        # Textbook order: latest head first (P(y|x,z) P(z)), compound factors last.
        if isinstance(f, Probability):
            return (0, -max(self._topo[v] for v in f.variables), repr(f))
        return (1, 0, repr(f))

    def sum(self, body: Expression, variables: Iterable[str]) -> Expression:
        bound = frozenset(variables) & body.free_variables
        return Sum(self.order(bound), body) if bound else body

    # ------------------------------------------------------------------ operations
    def marginalize(self, expr: Expression, variables: Iterable[str]) -> Expression:
        """``Σ_{variables} expr``, simplified; variables ``expr`` does not mention are ignored."""
        drop = frozenset(variables) & expr.free_variables
        if not drop:
            return expr
        if isinstance(expr, Probability):
            heads = set(expr.variables) - drop
            inner = self.prob(heads, expr.given) if heads else ONE
            return self.sum(inner, drop - set(expr.variables))
        if isinstance(expr, Sum):
            return self.marginalize(expr.body, drop | set(expr.variables))
        if isinstance(expr, Ratio):
            if drop & expr.denominator.free_variables:
                return self.sum(expr, drop)
            return self.ratio(self.marginalize(expr.numerator, drop), expr.denominator)
        return self._marginalize_product(_factors(expr), set(drop))

    def _marginalize_product(self, factors: list[Expression], drop: set[str]) -> Expression:
        # Σ_a P(a, B | C) F = P(B | C) F when no other factor mentions a.
        changed = True
        while changed:
            changed = False
            for i, f in enumerate(factors):
                if not isinstance(f, Probability):
                    continue
                others = frozenset().union(
                    *(g.free_variables for j, g in enumerate(factors) if j != i)
                )
                gone = (set(f.variables) & drop) - others
                if gone:
                    factors[i] = self.prob(set(f.variables) - gone, f.given)
                    factors = [g for g in factors if g != ONE]
                    drop -= gone
                    changed = True
                    break
        # Push each group of summation variables onto the factors that mention it.
        groups: list[tuple[set[str], list[Expression]]] = []
        for f in factors:
            mine = set(f.free_variables & drop)
            merged = [g for g in groups if g[0] & mine]
            group = (mine.union(*(g[0] for g in merged)), [x for g in merged for x in g[1]] + [f])
            groups = [g for g in groups if not any(g is m for m in merged)] + [group]
        out = []
        for vars_, members in groups:
            if not vars_:
                out += members
            elif len(members) == 1:
                out.append(self.marginalize(members[0], vars_))
            else:
                out.append(self.sum(self.product(members), vars_))
        return self.product(out)

    def ratio(self, numerator: Expression, denominator: Expression) -> Expression:
        """``numerator / denominator`` with nested ratios flattened and common factors cancelled."""
        num, den = [], []
        for part, top, bottom in ((numerator, num, den), (denominator, den, num)):
            if isinstance(part, Ratio):
                top += _factors(part.numerator)
                bottom += _factors(part.denominator)
            else:
                top += _factors(part)
        for f in list(num):
            if f in den:
                num.remove(f)
                den.remove(f)
        top, bottom = self.product(num), self.product(den)
        if bottom == ONE:
            return top
        if (
            isinstance(top, Probability)
            and isinstance(bottom, Probability)
            and top.given == bottom.given
            and set(bottom.variables) < set(top.variables)
        ):
            return self.prob(
                set(top.variables) - set(bottom.variables), set(bottom.variables) | set(top.given)
            )
        return Ratio(top, bottom)

    def conditional(
        self, dist: Expression, variable: str, before: Iterable[str], domain: Iterable[str]
    ) -> Expression:
        """``dist(variable | before)`` for a distribution ``dist`` over ``domain``: the ratio of
        its marginals over ``before ∪ {variable}`` and over ``before``."""
        keep = set(before) | {variable}
        num = self.marginalize(dist, set(domain) - keep)
        return self.ratio(num, self.marginalize(num, {variable}))

    def merge_chains(self, expr: Expression) -> Expression:
        """Rewrite ``P(A | C) P(B | A, C)`` as ``P(A, B | C)`` throughout ``expr``."""
        if isinstance(expr, Sum):
            return Sum(expr.variables, self.merge_chains(expr.body))
        if isinstance(expr, Ratio):
            return Ratio(self.merge_chains(expr.numerator), self.merge_chains(expr.denominator))
        if not isinstance(expr, Product):
            return expr
        factors = [self.merge_chains(f) for f in expr.factors]
        merged = True
        while merged:
            merged = False
            probs = [f for f in factors if isinstance(f, Probability)]
            for a in probs:
                for b in probs:
                    if a is not b and set(b.given) == set(a.variables) | set(a.given):
                        factors.remove(a)
                        factors.remove(b)
                        factors.append(Probability(self.order(a.variables + b.variables), a.given))
                        merged = True
                        break
                if merged:
                    break
        return self.product(factors)


# ---------------------------------------------------------------------- rendering
def _render(expr: Expression, latex: bool, names: dict[str, str], used: set[str]) -> str:
    if isinstance(expr, Probability):
        heads = [_name(names.get(v, v), latex) for v in expr.variables]
        given = [_name(names.get(v, v), latex) for v in expr.given]
        sep, bar = (", ", r" \mid ") if latex else (",", "|")
        return f"P({sep.join(heads)}{bar + sep.join(given) if given else ''})"
    if isinstance(expr, Sum):
        names, used, shown = _bind(expr.variables, names, used)
        sub = (", " if latex else ",").join(_name(s, latex) for s in shown)
        body = _render(expr.body, latex, names, used)
        if latex:
            return rf"\sum_{{{sub}}} {body}"
        return f"Σ_{sub if len(shown) == 1 else '{' + sub + '}'} {body}"
    if isinstance(expr, Ratio):
        top = _render(expr.numerator, latex, names, used)
        bottom = _render(expr.denominator, latex, names, used)
        if latex:
            return rf"\frac{{{top}}}{{{bottom}}}"
        top = top if isinstance(expr.numerator, Probability) else f"[{top}]"
        bottom = bottom if isinstance(expr.denominator, Probability) else f"[{bottom}]"
        return f"{top} / {bottom}"
    assert isinstance(expr, Product)
    if not expr.factors:
        return "1"
    parts = []
    for f in expr.factors:
        text = _render(f, latex, names, used)
        if isinstance(f, Ratio) and not latex:
            text = f"({text})"
        if isinstance(f, Sum):
            # A Σ reads as extending to the end of the product: keep its names reserved.
            used = used | set(_bind(f.variables, names, used)[2])
        parts.append(text)
    return " ".join(parts)


def _bind(
    variables: tuple[str, ...], names: dict[str, str], used: set[str]
) -> tuple[dict[str, str], set[str], list[str]]:
    names, used, shown = dict(names), set(used), []
    for v in variables:
        display = v
        while display in used:
            display += "'"
        names[v] = display
        used.add(display)
        shown.append(display)
    return names, used, shown


def _name(display: str, latex: bool) -> str:
    return latex_name(display) if latex else display


def latex_name(display: str) -> str:
    """A variable name for LaTeX math mode: ``x``, ``\\mathit{w1}``, ``\\mathit{age\\_y}'``."""
    base = display.rstrip("'")
    primes = display[len(base) :]
    base = base.replace("_", r"\_")
    return (base if len(base) == 1 else rf"\mathit{{{base}}}") + primes
