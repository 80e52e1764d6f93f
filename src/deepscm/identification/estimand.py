"""The result of identification: a readable formula that can be evaluated on discrete data.

Example:
    >>> from deepscm.identification import identify
    >>> est = identify("z -> x -> y; z -> y", "p(y | do(x))")
    >>> print(est)
    P(y | do(x)) = Σ_z P(y|x,z) P(z)
    >>> est.shortcut, sorted(est.adjustment_set)
    ('backdoor', ['z'])

    ``est.evaluate(df)`` then gives a table with columns ``x``, ``y`` and ``p``.
"""

from __future__ import annotations

import itertools
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import DataError
from ..graph import CausalGraph
from .expression import Algebra, Expression, Probability, Product, Ratio, Sum, latex_name
from .query import Query

__all__ = ["Estimand"]

MAX_LEVELS = 64
"""Columns with more distinct values than this are not treated as discrete."""
MAX_CELLS = 20_000_000
"""Largest probability table the plug-in evaluator builds."""


class Estimand:
    """An identified causal query and its expression in observational probabilities.

    Attributes:
        query: the query that was identified.
        graph: the causal graph.
        expression: the formula, in terms of observational (conditional) probabilities.
        free_variables: variables that stay free in the formula beyond the query's own (the
            napkin's ``w2``): the formula holds for every value of each.
    """

    def __init__(self, query: Query, graph: CausalGraph, expression: Expression) -> None:
        self.query = query
        self.graph = graph
        self.expression = expression
        extra = expression.free_variables - set(query.variables())
        self.free_variables: tuple[str, ...] = tuple(n for n in graph.nodes if n in extra)

    # ------------------------------------------------------------------ shortcuts
    @cached_property
    def _shortcut(self) -> tuple[str | None, frozenset[str] | None, frozenset[str] | None]:
        q = self.query
        if q.given or not q.treatment:
            return None, None, None
        adjustment = self.graph.adjustment_set(q.treatment, q.outcome)
        if adjustment is not None:
            return "backdoor", frozenset(adjustment), None
        if len(q.treatment) == len(q.outcome) == 1:
            mediators = self.graph.frontdoor_set(q.treatment[0], q.outcome[0])
            if mediators is not None:
                return "frontdoor", None, frozenset(mediators)
        return None, None, None

    @property
    def shortcut(self) -> str | None:
        """``"backdoor"`` or ``"frontdoor"`` when Pearl's criterion applies, else ``None``."""
        return self._shortcut[0]

    @property
    def adjustment_set(self) -> frozenset[str] | None:
        """A minimal back-door adjustment set (empty: no confounding), or ``None``."""
        return self._shortcut[1]

    @property
    def mediators(self) -> frozenset[str] | None:
        """A front-door mediator set, or ``None``."""
        return self._shortcut[2]

    @property
    def shortcut_text(self) -> str | None:
        """One line naming the shortcut and its textbook formula (Pearl 2009, Thm. 3.3.2 and
        3.3.4), or ``None``."""
        algebra = Algebra(self.graph, first=self.query.treatment)
        x, y = self.query.treatment, self.query.outcome
        if self.shortcut == "backdoor":
            z = algebra.order(self.adjustment_set)
            formula = (
                Sum(z, Product((Probability(y, x + z), Probability(z))))
                if z
                else (Probability(y, x))
            )
            criterion = f"back-door criterion with adjustment set {{{', '.join(z)}}}"
        elif self.shortcut == "frontdoor":
            m = algebra.order(self.mediators)
            inner = Sum(x, Product((Probability(y, x + m), Probability(x))))
            formula = Sum(m, Product((Probability(m, x), inner)))
            criterion = f"front-door criterion with mediators {{{', '.join(m)}}}"
        else:
            return None
        return f"{criterion}: {self.query} = {formula}"

    # ------------------------------------------------------------------ printing
    def __str__(self) -> str:
        text = f"{self.query} = {self.expression.render(reserved=self.query.variables())}"
        if self.free_variables:
            text += f"    (holds for every value of {', '.join(self.free_variables)})"
        return text

    def __repr__(self) -> str:
        return f"<Estimand {self}>"

    def to_latex(self) -> str:
        """LaTeX source of ``query = formula`` (math mode, without delimiters)."""
        q = self.query

        def names(vs: tuple[str, ...]) -> str:
            return ", ".join(map(latex_name, vs))

        parts = [r"\mathrm{do}(" + names(q.treatment) + ")"] if q.treatment else []
        parts += [names(q.given)] if q.given else []
        cond = r" \mid " + ", ".join(parts) if parts else ""
        formula = self.expression.render(latex=True, reserved=q.variables())
        text = f"P({names(q.outcome)}{cond}) = {formula}"
        if self.free_variables:
            text += r" \quad \text{for every value of } " + names(self.free_variables)
        return text

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, df: pd.DataFrame, *, weight: str | None = None, average_free: bool = True
    ) -> pd.DataFrame:
        """Plug-in estimate of the query from discrete data: every probability in the formula
        is replaced by its observed relative frequency.

        Args:
            df: observational data with a column per variable the formula uses.
            weight: optional column of non-negative row weights (e.g. counts of an aggregated
                table).
            average_free: when the formula has :attr:`free_variables`, return the average of
                its values over them, weighted by their observed frequencies; the largest
                difference between values (zero in the population) is in
                ``result.attrs["spread"]``. With ``False``, return one row per value of the
                free variables instead.

        Returns:
            A DataFrame with a column per treatment, given and outcome variable, then ``p``:
            one row per combination of observed values.

        Raises:
            DataError: a missing or non-discrete column, bad weights, or a probability the
                data cannot estimate (a conditioning combination that never occurs).
        """
        if "p" in self.query.variables():
            raise DataError("a query variable named 'p' clashes with the result's column 'p'")
        needed = set(self.query.variables()) | _mentioned(self.expression)
        codes, domains, w = _encode(df, [n for n in self.graph.nodes if n in needed], weight)
        evaluator = _Evaluator(codes, domains, w)
        out_vars = self.query.variables() + self.free_variables
        values = evaluator.expand(evaluator.eval(self.expression), out_vars)
        spread = 0.0
        free_axes = tuple(range(len(self.query.variables()), len(out_vars)))
        if self.free_variables and average_free:
            freq = evaluator.expand(evaluator.eval(Probability(self.free_variables)), out_vars)
            ok = ~np.isnan(values) & (freq > 0)
            with np.errstate(invalid="ignore"):
                hi = np.where(ok, values, -np.inf).max(axis=free_axes)
                lo = np.where(ok, values, np.inf).min(axis=free_axes)
                mass = np.where(ok, freq, 0.0).sum(axis=free_axes)
                values = np.where(ok, values * freq, 0.0).sum(axis=free_axes) / mass
            spread = float(np.nanmax(np.where(mass > 0, hi - lo, np.nan), initial=0.0))
            out_vars = self.query.variables()
        if np.isnan(values).any():
            raise DataError(evaluator.positivity_message())
        grid = list(itertools.product(*(domains[v] for v in out_vars)))
        table = pd.DataFrame(grid, columns=list(out_vars))
        table["p"] = values.reshape(-1)
        if self.free_variables and average_free:
            table.attrs["free_variables"] = list(self.free_variables)
            table.attrs["spread"] = spread
        return table


def _mentioned(expr: Expression) -> set[str]:
    if isinstance(expr, Probability):
        return set(expr.variables) | set(expr.given)
    if isinstance(expr, Sum):
        return _mentioned(expr.body)
    if isinstance(expr, Ratio):
        return _mentioned(expr.numerator) | _mentioned(expr.denominator)
    assert isinstance(expr, Product)
    return set().union(*(_mentioned(f) for f in expr.factors))


def _encode(
    df: pd.DataFrame, columns: list[str], weight: str | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"evaluate() needs a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns + ([weight] if weight else []) if c not in df.columns]
    if missing:
        raise DataError(
            f"the data lack column(s) {', '.join(map(repr, missing))} that the estimand uses; "
            f"it has {', '.join(map(str, df.columns))}"
        )
    if len(df) == 0:
        raise DataError("the data have no rows; a plug-in estimate needs observations")
    codes, domains = {}, {}
    for c in columns:
        if df[c].isna().any():
            raise DataError(f"column {c!r} has missing values; drop or impute them first")
        code, uniques = pd.factorize(df[c], sort=True)
        if len(uniques) > MAX_LEVELS:
            raise DataError(
                f"column {c!r} has {len(uniques)} distinct values; plug-in evaluation needs "
                f"discrete variables (at most {MAX_LEVELS} values): discretise it, e.g. with "
                "pd.cut"
            )
        codes[c], domains[c] = code, np.asarray(uniques)
    if weight is None:
        w = np.ones(len(df))
    else:
        w = pd.to_numeric(df[weight], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise DataError(
                f"weight column {weight!r} must hold finite non-negative numbers, not all zero"
            )
    return codes, domains, w


Table = tuple[tuple[str, ...], np.ndarray]


class _Evaluator:
    """Evaluates expressions as dense tables with one named axis per free variable."""

    def __init__(
        self, codes: dict[str, np.ndarray], domains: dict[str, np.ndarray], weights: np.ndarray
    ) -> None:
        self.codes, self.domains, self.weights = codes, domains, weights
        self.undefined: list[str] = []

    def size(self, names: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(len(self.domains[n]) for n in names)

    def eval(self, expr: Expression) -> Table:
        if isinstance(expr, Probability):
            return self._probability(expr)
        if isinstance(expr, Product):
            names, arrays = self._align([self.eval(f) for f in expr.factors])
            out = np.ones(self.size(names))
            zero = np.zeros(self.size(names), dtype=bool)
            for a in arrays:
                out = out * a
                zero = zero | (a == 0)
            return names, np.where(zero, 0.0, out)
        if isinstance(expr, Sum):
            names, arr = self.eval(expr.body)
            axes = tuple(names.index(v) for v in expr.variables)
            return tuple(n for n in names if n not in expr.variables), arr.sum(axis=axes)
        assert isinstance(expr, Ratio)
        names, (num, den) = self._align([self.eval(expr.numerator), self.eval(expr.denominator)])
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(num == 0, 0.0, num / den)
        if (den == 0).any() and not self.undefined:
            self.undefined.append(f"the ratio {expr} has a zero denominator")
        return names, np.where(den == 0, np.nan, out)

    def _probability(self, p: Probability) -> Table:
        names = p.variables + p.given
        shape = self.size(names)
        if int(np.prod(shape)) > MAX_CELLS:
            raise DataError(
                f"{p} needs a table of {int(np.prod(shape))} cells; too many for plug-in "
                "evaluation: coarsen the variables"
            )
        if names:
            flat = np.ravel_multi_index([self.codes[n] for n in names], shape)
            counts = np.bincount(flat, weights=self.weights, minlength=int(np.prod(shape)))
            joint = counts.reshape(shape)
        else:
            joint = np.array(self.weights.sum())
        head_axes = tuple(range(len(p.variables)))
        den = joint.sum(axis=head_axes, keepdims=True)
        if p.given and (den == 0).any() and not self.undefined:
            cell = np.argwhere(den.reshape(self.size(p.given)) == 0)[0]
            where = ", ".join(f"{n}={self.domains[n][i]!r}" for n, i in zip(p.given, cell))
            self.undefined.append(f"{p} at {where}, but no row has {where}")
        with np.errstate(divide="ignore", invalid="ignore"):
            return names, joint / den

    def _align(self, tables: list[Table]) -> tuple[tuple[str, ...], list[np.ndarray]]:
        names = tuple(dict.fromkeys(n for t in tables for n in t[0]))
        return names, [self.expand(t, names) for t in tables]

    def expand(self, table: Table, names: tuple[str, ...]) -> np.ndarray:
        """The table's array with axes in the order of ``names``, broadcast over the rest."""
        own, arr = table
        arr = np.transpose(arr, [own.index(n) for n in names if n in own])
        shape = [len(self.domains[n]) if n in own else 1 for n in names]
        return np.broadcast_to(arr.reshape(shape), self.size(names))

    def positivity_message(self) -> str:
        detail = self.undefined[0] if self.undefined else "a probability"
        return (
            f"the plug-in estimate is undefined: it needs {detail} (positivity fails in the "
            "data). Collect data covering every combination of the conditioning variables, "
            "or coarsen them"
        )
