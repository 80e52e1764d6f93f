"""Rung-3 queries built on several worlds that share one draw of the noise.

Each query returns a small DataFrame indexed by effect with columns ``estimate``, ``lower``,
``upper``: a Monte-Carlo normal interval at level ``1 − alpha``. Every arm of a contrast is
computed from the same noise (common random numbers), so the interval comes from the
per-row differences ``d_r``. Rows are grouped by unit: with several units the differences
are first averaged within each unit (over its ``n_samples`` draws) and the interval is
``mean ± z·sd/√n_units`` over units — for a population sampled from the priors this is the
Monte-Carlo error of the estimate; for observed units it is the interval for the mean effect
of the population those units are a sample of. With one unit it is the Monte-Carlo error
over that unit's draws (``n_samples``; zero width when its abduction is deterministic).

References:
    Pearl (2001), *Direct and indirect effects*, UAI. — natural direct/indirect effects.
    Avin, Shpitser & Pearl (2005), *Identifiability of path-specific effects*, IJCAI.
    Tian & Pearl (2000), *Probabilities of causation: bounds and identification*, AMAI 28.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DataError, DeepSCMWarning, GraphError
from .engine import FromWorld, World

if TYPE_CHECKING:
    from .model import DeepSCM

__all__ = [
    "CausationBoundsWarning",
    "contrast",
    "ett",
    "mediation",
    "outcome_score",
    "path_effect",
    "probabilities_of_causation",
    "tian_pearl_bounds",
]

_COLUMNS = ["estimate", "lower", "upper"]


class CausationBoundsWarning(DeepSCMWarning):
    """A model's probability of causation lies outside the Tian–Pearl bounds that the data
    alone imply: the fitted model contradicts the observational or interventional data."""


def contrast(model: DeepSCM, treatment: str, treated: Any, control: Any) -> tuple[Any, Any]:
    """The treated and control values of ``treatment``; a missing one comes from
    :meth:`~deepscm.variables.Variable.default_contrast` (a binary node's own labels, second
    vs first; 1 vs 0 for a scalar continuous node; otherwise both must be given)."""
    if treated is not None and control is not None:
        return treated, control
    default_treated, default_control = model.schema[treatment].default_contrast()
    return (
        default_treated if treated is None else treated,
        default_control if control is None else control,
    )


def outcome_score(model: DeepSCM, outcome: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """How an outcome enters an expectation: a continuous scalar as itself, a binary one as
    the indicator of its second label."""
    var = model.schema[outcome]
    if var.kind == "categorical" or var.dim > 1:
        raise DataError(
            f"outcome {outcome!r} is {var.kind} with {var.dim} column(s); effects need a scalar "
            "continuous or binary outcome"
        )
    column = var.columns[0]
    if var.discrete:
        positive = var.categories[1]
        return lambda frame: (frame[column] == positive).to_numpy(dtype=np.float64)
    return lambda frame: frame[column].to_numpy(dtype=np.float64)


# ---------------------------------------------------------------------- helpers
def _z(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise DataError(f"alpha must be in (0, 1), got {alpha!r}")
    return NormalDist().inv_cdf(1 - alpha / 2)


def _interval(diff: np.ndarray, n_units: int, alpha: float) -> tuple[float, float, float]:
    """Mean of the per-row differences (unit-major, ``len(diff) / n_units`` draws per unit)
    and its normal interval (see the module docstring)."""
    diff = np.asarray(diff, dtype=np.float64)
    if len(diff) == 0:
        return (np.nan, np.nan, np.nan)
    estimate = float(diff.mean())
    draws = len(diff) // n_units
    if n_units > 1:
        per_unit = diff.reshape(n_units, draws).mean(axis=1)
        se = float(per_unit.std(ddof=1) / np.sqrt(n_units))
    elif draws > 1:
        se = float(diff.std(ddof=1) / np.sqrt(draws))
    else:
        se = 0.0
    half = _z(alpha) * se
    return (estimate, estimate - half, estimate + half)


def _run(
    model: DeepSCM, worlds: Mapping[str, World], units: pd.DataFrame | None, n: int, n_samples: int,
    seed: int | None,
) -> tuple[dict[str, pd.DataFrame], int]:
    """The worlds' frames (positional index) and the number of units they come from."""
    if units is None:
        frames = model.worlds(worlds, n=n, seed=seed)
        count = n
    else:
        if not isinstance(units, pd.DataFrame):
            raise DataError(
                f"units= must be a DataFrame of observed rows, got {type(units).__name__}"
            )
        if len(units) == 0:
            raise DataError("units= has no rows")
        frames = model.worlds(worlds, units=units, n_samples=n_samples, seed=seed)
        count = len(units)
    return {k: f.reset_index(drop=True) for k, f in frames.items()}, count


def _table(rows: Mapping[str, tuple[float, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame([list(v) for v in rows.values()], index=list(rows), columns=_COLUMNS)
    frame.index.name = "effect"
    return frame


def _check_distinct(model: DeepSCM, roles: Mapping[str, Sequence[str]], what: str) -> None:
    seen: dict[str, str] = {}
    for role, nodes in roles.items():
        model.graph.check_nodes(list(nodes), what)
        for node in nodes:
            if node in seen:
                raise GraphError(f"{what}: {node!r} is both the {seen[node]} and the {role}")
            seen[node] = role


# ---------------------------------------------------------------------- mediation
def mediation(
    model: DeepSCM,
    treatment: str,
    mediator: str | Sequence[str],
    outcome: str,
    treated: Any = None,
    control: Any = None,
    cde_mediator: Any = None,
    units: pd.DataFrame | None = None,
    n: int = 10_000,
    n_samples: int = 1,
    alpha: float = 0.05,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Total, natural direct, natural indirect and controlled direct effects (Pearl 2001).

    With ``x1 = treated``, ``x0 = control`` and ``M`` the mediator(s) (one node or several,
    treated jointly):

    - ``total = E[Y(x1) − Y(x0)]``;
    - ``nde = E[Y(x1, M(x0)) − Y(x0, M(x0))]`` — natural direct effect: the treatment
      changes, the mediators keep the values they would have had under control;
    - ``nie = E[Y(x1, M(x1)) − Y(x1, M(x0))]`` — natural indirect effect; ``total = nde +
      nie`` row by row;
    - ``cde = E[Y(x1, m) − Y(x0, m)]`` — controlled direct effect at the mediator value
      ``cde_mediator`` (a value for one mediator, or a mapping mediator → value), only when
      one is given.

    The nested counterfactual ``Y(x1, M(x0))`` is one world of a multi-world pass:
    ``World(do={X: x1, M: FromWorld("control")})`` beside ``control = do(X = x0)``, all worlds
    sharing one draw of the noise. Without ``units`` the expectation is over the model's
    population (``n`` draws of the noise from the priors); with ``units`` (observed rows) the
    noise is abducted from them and the effects are averaged over those units (per unit:
    pass one row). The interval is the Monte-Carlo normal interval of the per-row
    differences at level ``1 − alpha`` (common random numbers; see the module docstring).

    Returns:
        DataFrame indexed by effect (``total``, ``nde``, ``nie`` [, ``cde``]) with columns
        ``estimate``, ``lower``, ``upper``.
    """
    model._require_fitted()
    mediators = [mediator] if isinstance(mediator, str) else list(mediator)
    if not mediators:
        raise DataError("mediation needs at least one mediator node")
    roles = {"treatment": [treatment], "mediator": mediators, "outcome": [outcome]}
    _check_distinct(model, roles, "mediation")
    treated, control = contrast(model, treatment, treated, control)
    score = outcome_score(model, outcome)
    worlds = {
        "control": World(do={treatment: control}),
        "treated": World(do={treatment: treated}),
        "nested": World(do={treatment: treated, **{m: FromWorld("control") for m in mediators}}),
    }
    if cde_mediator is not None:
        if isinstance(cde_mediator, Mapping):
            missing = [m for m in mediators if m not in cde_mediator]
            extra = [m for m in cde_mediator if m not in mediators]
            if missing or extra:
                raise DataError(
                    f"cde_mediator= must give a value for each mediator {mediators}; "
                    f"missing {missing}, not mediators {extra}"
                )
            fixed = dict(cde_mediator)
        elif len(mediators) == 1:
            fixed = {mediators[0]: cde_mediator}
        else:
            raise DataError(
                f"there are several mediators {mediators}: give cde_mediator= as a mapping "
                "mediator -> value"
            )
        worlds["cde_treated"] = World(do={treatment: treated, **fixed})
        worlds["cde_control"] = World(do={treatment: control, **fixed})
    frames, count = _run(model, worlds, units, n, n_samples, seed)
    y = {name: score(frame) for name, frame in frames.items()}
    rows = {
        "total": _interval(y["treated"] - y["control"], count, alpha),
        "nde": _interval(y["nested"] - y["control"], count, alpha),
        "nie": _interval(y["treated"] - y["nested"], count, alpha),
    }
    if cde_mediator is not None:
        rows["cde"] = _interval(y["cde_treated"] - y["cde_control"], count, alpha)
    return _table(rows)


# ---------------------------------------------------------------------- path-specific effects
def _active_edges(model: DeepSCM, paths: Iterable[Any]) -> set[tuple[str, str]]:
    """Edges named by ``paths``: each item an edge ``(a, b)`` or a node path ``[x, m, y]``."""
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Iterable):
        raise DataError("paths= must be a list of edges (a, b) or of node paths [x, m, y]")
    edges: set[tuple[str, str]] = set()
    for item in paths:
        nodes = list(item) if not isinstance(item, str) else None
        if nodes is None or len(nodes) < 2 or not all(isinstance(v, str) for v in nodes):
            raise DataError(
                f"paths= item {item!r} is neither an edge (a, b) nor a node path [x, m, y]"
            )
        for a, b in itertools.pairwise(nodes):
            if b not in model.graph or a not in model.graph or a not in model.graph.parents(b):
                raise GraphError(
                    f"{a} -> {b} (from paths= item {item!r}) is not an edge of the graph "
                    f"{model.graph}"
                )
            edges.add((a, b))
    return edges


def path_effect(
    model: DeepSCM,
    treatment: str,
    outcome: str,
    paths: Iterable[Any],
    treated: Any = None,
    control: Any = None,
    units: pd.DataFrame | None = None,
    n: int = 10_000,
    n_samples: int = 1,
    alpha: float = 0.05,
    seed: int | None = 0,
) -> pd.DataFrame:
    """The path-specific effect of ``treatment`` on ``outcome`` along ``paths`` (Avin,
    Shpitser & Pearl 2005).

    ``paths`` lists the *active* edges, as edges ``(a, b)`` or node paths ``[x, m, y]`` (each
    consecutive pair an edge). The treatment changes from ``x0 = control`` to ``x1 =
    treated`` along the active edges only; every other edge out of the treatment or one of
    its descendants transmits the value its parent has in the reference world ``control =
    do(X = x0)``:

        ``pse = E[Y_pse − Y(x0)]``,  world ``pse = do(X = x1)`` with edge interventions
        ``(a, b) ← a_{control}`` for every inactive edge ``a → b``, ``a ∈ De(X) ∪ {X}``.

    With every edge active this is the total effect; with only ``X → Y`` active it is the
    natural direct effect; with the edges of the mediated paths active it is the effect
    transmitted along them (the *pure* indirect effect ``E[Y(x0, M(x1)) − Y(x0, M(x0))]``
    for one mediator). Noise is shared by both worlds; ``units``, ``n``, ``n_samples`` and the
    interval are as for :func:`mediation`.

    Returns:
        DataFrame with one row ``pse`` and columns ``estimate``, ``lower``, ``upper``.
    """
    model._require_fitted()
    _check_distinct(model, {"treatment": [treatment], "outcome": [outcome]}, "path_effect")
    active = _active_edges(model, paths)
    downstream = model.graph.descendants(treatment)
    stray = sorted(e for e in active if e[0] not in downstream)
    if stray:
        raise DataError(
            f"paths= edges {stray} do not start at {treatment!r} or one of its descendants, "
            "so no effect of the treatment travels along them"
        )
    treated, control = contrast(model, treatment, treated, control)
    inactive = {
        (a, b): FromWorld("control")
        for a in model.graph.nodes if a in downstream
        for b in model.graph.children(a)
        if (a, b) not in active
    }
    worlds = {
        "control": World(do={treatment: control}),
        "pse": World(do={treatment: treated}, edges=inactive),
    }
    frames, count = _run(model, worlds, units, n, n_samples, seed)
    score = outcome_score(model, outcome)
    return _table({"pse": _interval(score(frames["pse"]) - score(frames["control"]), count, alpha)})


# ---------------------------------------------------------------------- effect on the treated
def ett(
    model: DeepSCM,
    treatment: str,
    outcome: str,
    treated: Any = None,
    control: Any = None,
    data: pd.DataFrame | None = None,
    n: int = 10_000,
    n_samples: int = 1,
    alpha: float = 0.05,
    seed: int | None = 0,
) -> pd.DataFrame:
    """The effect of treatment on the treated, ``ett = E[Y(x1) − Y(x0) | X = x1]``.

    For a discrete treatment. With ``data``, the treated units are its rows with ``X ==
    x1``: their noise is abducted and ``Y(x1)`` (their factual outcome, by consistency) and
    ``Y(x0)`` are counterfactual worlds of those units. Without, ``n`` units are drawn from
    the model and those whose sampled ``X`` equals ``x1`` are kept; for sampled units the
    sampled noise is their exact noise, so no abduction is involved. The interval is the
    normal interval over treated units (see the module docstring).

    A continuous treatment has no treated group (``X = x1`` has probability zero) and is
    refused with a :class:`DataError`.

    Returns:
        DataFrame with one row ``ett`` and columns ``estimate``, ``lower``, ``upper``;
        ``attrs["n_treated"]`` is the number of treated units used.
    """
    model._require_fitted()
    _check_distinct(model, {"treatment": [treatment], "outcome": [outcome]}, "ett")
    var = model.schema[treatment]
    if not var.discrete:
        raise DataError(
            f"ett needs a discrete treatment, but {treatment!r} is {var.kind}: the treated group "
            f"X = x1 has probability zero. Pass the units you consider treated to "
            f"scm.counterfactual(units, do={{{treatment!r}: x0}}) (or mediation(..., units=units) "
            f"for its 'total' row), or model a binarised treatment node"
        )
    treated, control = contrast(model, treatment, treated, control)
    column = var.columns[0]
    score = outcome_score(model, outcome)
    worlds = {"treated": World(do={treatment: treated}), "control": World(do={treatment: control})}
    if data is not None:
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"data= must be a DataFrame, got {type(data).__name__}")
        if column not in data.columns:
            raise DataError(f"data= lacks the treatment column {column!r}")
        units = data[(data[column] == treated).to_numpy()]
        if len(units) == 0:
            raise DataError(f"data= has no rows with {treatment} == {treated!r}")
        frames, count = _run(model, worlds, units, n, n_samples, seed)
        diff = score(frames["treated"]) - score(frames["control"])
    else:
        frames, count = _run(model, {"factual": World(), **worlds}, None, n, 1, seed)
        mask = (frames["factual"][column] == treated).to_numpy()
        count = int(mask.sum())
        if count == 0:
            raise DataError(
                f"none of the n={n} sampled units has {treatment} == {treated!r}; raise n"
            )
        diff = (score(frames["treated"]) - score(frames["control"]))[mask]
    out = _table({"ett": _interval(diff, count, alpha)})
    out.attrs["n_treated"] = count
    return out


# ---------------------------------------------------------------------- probabilities of causation
def _binary(model: DeepSCM, node: str, role: str) -> list[Any]:
    var = model.schema[node]
    if var.kind != "binary":
        raise DataError(
            f"probabilities of causation need a binary {role}; {node!r} is {var.kind}"
            + (f" with labels {var.categories}" if var.discrete else "")
        )
    return list(var.categories)


def _interventional(
    data: pd.DataFrame, x: np.ndarray, y: np.ndarray, adjust: list[str], schema: Any
) -> tuple[float, float]:
    """``(P(y_x), P(y_x'))`` by back-door adjustment for ``adjust``: stratification when every
    adjustment node is discrete, a logistic regression of ``Y`` on ``(X, Z)`` otherwise."""
    if not adjust:
        if x.all() or not x.any():
            raise DataError("the data have only one treatment value; the bounds need both")
        return float(y[x].mean()), float(y[~x].mean())
    discrete = all(schema[z].discrete for z in adjust)
    cols = [c for z in adjust for c in schema[z].columns]
    if discrete:
        if len(cols) > 1:
            strata = pd.MultiIndex.from_frame(data[cols].astype(str))
        else:
            strata = pd.Index(data[cols[0]].astype(str))
        codes = pd.factorize(strata)[0]
        n_strata = codes.max() + 1
        weight = np.bincount(codes, minlength=n_strata) / len(codes)
        out = []
        for arm in (x, ~x):
            hits = np.bincount(codes[arm], weights=y[arm], minlength=n_strata)
            rows = np.bincount(codes[arm], minlength=n_strata)
            if (rows == 0).any():
                raise DataError(
                    "some stratum of the adjustment set has no treated or no control rows "
                    "(positivity fails), so P(y_x) cannot be estimated by stratification"
                )
            out.append(float((weight * hits / rows).sum()))
        return out[0], out[1]
    from sklearn.linear_model import LogisticRegression

    parts = []
    for z in adjust:
        var = schema[z]
        if var.discrete:
            dummies = pd.get_dummies(data[var.columns[0]].astype(str), drop_first=True)
            parts.append(dummies.to_numpy(np.float64))
        else:
            parts.append(data[var.columns].to_numpy(np.float64))
    features = np.concatenate(parts, axis=1)
    mean, sd = features.mean(axis=0), features.std(axis=0)
    features = (features - mean) / np.where(sd > 0, sd, 1.0)
    design = np.column_stack([x.astype(np.float64), features])
    fit = LogisticRegression(C=1e4, max_iter=1000).fit(design, y.astype(int))
    design[:, 0] = 1.0
    p_x = float(fit.predict_proba(design)[:, 1].mean())
    design[:, 0] = 0.0
    p_xp = float(fit.predict_proba(design)[:, 1].mean())
    return p_x, p_xp


def tian_pearl_bounds(
    p_xy: float, p_xyp: float, p_xpy: float, p_xpyp: float, p_yx: float, p_yxp: float
) -> dict[str, tuple[float, float]]:
    """Tian & Pearl (2000) bounds on PNS, PN and PS from the observational cell
    probabilities ``P(x, y)``, ``P(x, y')``, ``P(x', y)``, ``P(x', y')`` and the
    interventional ``P(y_x)``, ``P(y_x')``:

    - ``max{0, P(y_x)−P(y_x'), P(y)−P(y_x'), P(y_x)−P(y)} ≤ PNS ≤ min{P(y_x), P(y'_x'),
      P(x,y)+P(x',y'), P(y_x)−P(y_x')+P(x,y')+P(x',y)}``;
    - ``max{0, (P(y)−P(y_x'))/P(x,y)} ≤ PN ≤ min{1, (P(y'_x')−P(x',y'))/P(x,y)}``;
    - ``max{0, (P(y_x)−P(y))/P(x',y')} ≤ PS ≤ min{1, (P(y_x)−P(x,y))/P(x',y')}``.
    """
    p_y = p_xy + p_xpy
    p_ypxp = 1.0 - p_yxp
    pns = (
        max(0.0, p_yx - p_yxp, p_y - p_yxp, p_yx - p_y),
        min(p_yx, p_ypxp, p_xy + p_xpyp, p_yx - p_yxp + p_xyp + p_xpy),
    )
    nan = (np.nan, np.nan)
    pn = (
        (max(0.0, (p_y - p_yxp) / p_xy), min(1.0, (p_ypxp - p_xpyp) / p_xy)) if p_xy > 0 else nan
    )
    ps = (
        (max(0.0, (p_yx - p_y) / p_xpyp), min(1.0, (p_yx - p_xy) / p_xpyp)) if p_xpyp > 0 else nan
    )
    return {"pns": pns, "pn": pn, "ps": ps}


def _data_bounds(
    model: DeepSCM, treatment: str, outcome: str, data: pd.DataFrame, treated: Any, positive: Any
) -> tuple[Callable[[np.ndarray | slice], dict[str, tuple[float, float]]], int]:
    """A function of a row selection giving the Tian–Pearl bounds on those rows of ``data``,
    and the number of rows."""
    adjust_set = model.graph.adjustment_set(treatment, outcome)
    if adjust_set is None:
        raise DataError(
            f"no back-door adjustment set identifies P({outcome} | do({treatment})) in the graph; "
            "the Tian–Pearl bounds cannot be computed from the data"
        )
    adjust = [v for v in model.graph.nodes if v in adjust_set]
    x = (data[model.schema[treatment].columns[0]] == treated).to_numpy()
    y = (data[model.schema[outcome].columns[0]] == positive).to_numpy()

    def bounds(rows: np.ndarray | slice) -> dict[str, tuple[float, float]]:
        xr, yr = x[rows], y[rows]
        frame = data.iloc[rows] if not isinstance(rows, slice) else data
        p_yx, p_yxp = _interventional(frame, xr, yr.astype(np.float64), adjust, model.schema)
        return tian_pearl_bounds(
            float(np.mean(xr & yr)), float(np.mean(xr & ~yr)), float(np.mean(~xr & yr)),
            float(np.mean(~xr & ~yr)), p_yx, p_yxp,
        )

    return bounds, len(data)


def probabilities_of_causation(
    model: DeepSCM,
    treatment: str,
    outcome: str,
    data: pd.DataFrame | None = None,
    treated: Any = None,
    control: Any = None,
    n: int = 20_000,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Probabilities of causation for a binary treatment and outcome, beside the Tian–Pearl
    (2000) bounds that the data alone imply.

    With ``x = treated`` (default: the second label), ``x' = control``, ``y`` the outcome's
    second label and ``y'`` its first, the model's values come from its worlds (``n`` draws
    of the noise shared by the factual world and ``do(X = x)``, ``do(X = x')``):

    - ``pn = P(Y_{x'} = y' | X = x, Y = y)`` — probability of necessity;
    - ``ps = P(Y_x = y | X = x', Y = y')`` — probability of sufficiency;
    - ``pns = P(Y_x = y, Y_{x'} = y')`` — probability of necessity and sufficiency.

    ``lower``/``upper`` are normal (binomial) Monte-Carlo intervals at level ``1 − alpha``.
    The bounds (:func:`tian_pearl_bounds`) use only ``data`` (default: ``n`` draws of the
    model's own observational distribution): the cells ``P(x, y)`` and ``P(y_x)``,
    ``P(y_{x'})`` by back-door adjustment for ``model.graph.adjustment_set(treatment,
    outcome)`` — stratification when the set is empty or discrete, a logistic regression of
    ``Y`` on ``(X, Z)`` averaged over the rows otherwise. ``inside_bounds`` is true when the
    model's Monte-Carlo interval meets the bounds widened by their sampling error (the
    ``alpha/2`` and ``1 − alpha/2`` quantiles of ``n_boot`` bootstrap replicates of the
    lower and upper bound; ``n_boot=0``: the point bounds). Where it is false a
    :class:`CausationBoundsWarning` says so: no SCM compatible with the data has that value.

    Returns:
        DataFrame indexed by ``pn``, ``ps``, ``pns`` with columns ``estimate``, ``lower``,
        ``upper``, ``bound_lower``, ``bound_upper``, ``inside_bounds``.
    """
    model._require_fitted()
    roles = {"treatment": [treatment], "outcome": [outcome]}
    _check_distinct(model, roles, "probabilities_of_causation")
    x_labels = _binary(model, treatment, "treatment")
    y_labels = _binary(model, outcome, "outcome")
    treated, control = contrast(model, treatment, treated, control)
    if {treated, control} != set(x_labels):
        raise DataError(f"treated= and control= must be the two labels {x_labels} of {treatment!r}")
    positive = y_labels[1]
    z = _z(alpha)
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 0):
        raise DataError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    frames, _ = _run(
        model,
        {
            "factual": World(),
            "treated": World(do={treatment: treated}),
            "control": World(do={treatment: control}),
        },
        None, n, 1, seed,
    )
    x_col, y_col = model.schema[treatment].columns[0], model.schema[outcome].columns[0]
    fx = (frames["factual"][x_col] == treated).to_numpy()
    fy = (frames["factual"][y_col] == positive).to_numpy()
    y1 = (frames["treated"][y_col] == positive).to_numpy()
    y0 = (frames["control"][y_col] == positive).to_numpy()
    events = {
        "pn": (~y0)[fx & fy],
        "ps": y1[~fx & ~fy],
        "pns": y1 & ~y0,
    }
    if data is None:
        data = frames["factual"]
    else:
        model.schema.check(data, "probabilities_of_causation")
    bounds_of, rows = _data_bounds(model, treatment, outcome, data, treated, positive)
    point = bounds_of(slice(None))
    widened = {k: list(v) for k, v in point.items()}
    if n_boot:
        rng = np.random.default_rng(seed)
        reps: dict[str, list[tuple[float, float]]] = {k: [] for k in point}
        for _ in range(n_boot):
            try:
                b = bounds_of(rng.integers(0, rows, rows))
            except DataError:
                continue
            for k in point:
                reps[k].append(b[k])
        for k, vals in reps.items():
            arr = np.asarray(vals, dtype=np.float64)
            if len(arr):
                widened[k] = [
                    min(point[k][0], float(np.nanquantile(arr[:, 0], alpha / 2))),
                    max(point[k][1], float(np.nanquantile(arr[:, 1], 1 - alpha / 2))),
                ]
    records, outside = {}, []
    for name, hits in events.items():
        k = len(hits)
        p = float(hits.mean()) if k else np.nan
        half = z * np.sqrt(p * (1 - p) / k) if k else np.nan
        lo_b, hi_b = point[name]
        inside = bool(k and p + half >= widened[name][0] and p - half <= widened[name][1])
        if not inside:
            outside.append(f"{name} = {p:.3g} (bounds [{lo_b:.3g}, {hi_b:.3g}])")
        records[name] = [p, p - half, p + half, lo_b, hi_b, inside]
    frame = pd.DataFrame.from_dict(
        records, orient="index",
        columns=_COLUMNS + ["bound_lower", "bound_upper", "inside_bounds"],
    )
    frame["inside_bounds"] = frame["inside_bounds"].astype(bool)
    frame.index.name = "effect"
    if outside:
        warnings.warn(
            "the model's probabilities of causation lie outside the Tian-Pearl bounds implied by "
            "the data: " + "; ".join(outside) + ". No SCM that reproduces the data's P(x, y) and "
            "P(y_x) has these values; the fitted model misfits the data",
            CausationBoundsWarning, stacklevel=3,
        )
    return frame
