"""Noise-first primitives of a fitted structural causal model.

Every rung is a composition of three steps over the graph (Pearl 2009, §7.1; the shape of
DoWhy-gcm's ``compute_noise_from_data`` / ``compute_data_from_noise``):

- :func:`encode` a DataFrame once into the internal tensors;
- :func:`abduct` the exogenous noise of observed units, or :func:`sample_noise` from the
  priors — a :class:`Noise`, keyed by exogenous variable (``u[x]`` for node ``x``; a shared
  latent of a bidirected edge gets a key of its own later without another redesign);
- :func:`propagate` that one draw of noise through several :class:`World` s at once. A world
  is a set of interventions: on nodes (``do``) and on edges (a child reads one parent through
  one edge at a reference value — a constant, per-unit values, the parent's value in another
  world, or an independent draw — while its other edges stay as they are). All worlds share
  the noise, which is what nested counterfactuals such as ``Y(x, M(x'))`` need (ChiRho's
  twin/multi-world idea).

With ``factual`` values (a counterfactual), a node that no intervention reaches keeps its
factual value bit-for-bit; without (sampling), every node is computed.

These functions take any object with the attributes of :class:`FittedModel`; a fitted
:class:`~deepscm.DeepSCM` is one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from ..errors import DataError, DeepSCMError, ExtrapolationWarning
from ..graph import CausalGraph
from ..interventions import Intervention, Set, as_intervention, evaluate
from ..mechanisms.base import Mechanism
from ..variables import Schema
from .support import ParentSupport, even_rows

__all__ = [
    "FACTUAL",
    "FittedModel",
    "FromWorld",
    "Independent",
    "Noise",
    "World",
    "abduct",
    "changed_nodes",
    "context",
    "decode",
    "encode",
    "exogenous",
    "extrapolated",
    "independent_values",
    "interventions",
    "needed_noise",
    "off_support",
    "off_support_shares",
    "outside_shares",
    "parent_context",
    "propagate",
    "sample_noise",
]

#: name of the world without interventions.
FACTUAL = "factual"
#: a parent value counts as outside the training range beyond this fraction of the range.
_RANGE_SLACK = 0.01
#: share of rows outside the range above which a propagated parent triggers a warning.
_PROPAGATED_SHARE = 0.01
#: share of rows whose parent combination is outside a node's joint support above which a
#: warning is issued (twice the largest share of fresh observational rows flagged on the
#: benchmark SCMs, 1.0 %: benchmarks/results/support_check.md).
_OFF_SUPPORT_SHARE = 0.02
#: the joint-support share is estimated on at most this many rows per world (evenly spaced).
SUPPORT_ROWS = 10_000


class FittedModel(Protocol):
    """What the engine reads from a model."""

    graph: CausalGraph
    schema: Schema
    mechanisms: Mapping[str, Mechanism]
    device: torch.device
    #: per continuous node, the training range ``(low, high)`` of each column in user units.
    ranges: Mapping[str, tuple[list[float], list[float]]]
    #: per node with a multi-column parent context, the summary of its training contexts
    #: (:mod:`deepscm.scm.support`); a node without one is not checked.
    support: Mapping[str, ParentSupport]


def exogenous(node: str) -> str:
    """The name of node ``node``'s own exogenous variable."""
    return f"u[{node}]"


@dataclass(frozen=True)
class Noise:
    """Exogenous noise for ``n`` rows.

    Attributes:
        values: exogenous variable → tensor with one row per row of the batch.
        kinds: exogenous variable → how it was obtained: ``"prior"`` (drawn), or the
            mechanism's abduction kind ``"exact"``, ``"approximate"``, ``"posterior"``.
        units: for each row, the index of the unit it belongs to (a unit has several rows
            when its noise was drawn several times); per-unit intervention values are read
            through it.
        n_units: how many units the rows come from.
    """

    values: Mapping[str, torch.Tensor]
    kinds: Mapping[str, str]
    units: torch.Tensor
    n_units: int

    @property
    def n(self) -> int:
        return len(self.units)

    def of(self, node: str) -> torch.Tensor:
        """The noise of node ``node``'s mechanism."""
        return self.values[exogenous(node)]


@dataclass(frozen=True)
class FromWorld(Intervention):
    """The value a node has in another, named world: as an edge reference, the value the
    child reads from that parent; in ``World.do``, the node's own value (e.g. the mediator
    ``M(x0)`` of a nested counterfactual ``Y(x1, M(x0))``)."""

    world: str


@dataclass(frozen=True)
class Independent:
    """Edge reference: an independent draw of the parent from its observational distribution
    (DECAF's "sample the deleted parent independently", van Breugel et al. 2021, §4)."""


@dataclass(frozen=True)
class World:
    """A set of interventions.

    Attributes:
        do: node → what the user wrote for it (constant, per-unit values, callable of the
            natural value, or an :class:`~deepscm.interventions.Intervention`).
        edges: ``(parent, child)`` → the value the child reads through that edge: a
            :class:`FromWorld`, :class:`Independent`, or a constant / per-unit values in user
            units. The parent itself, and the child's other parents, are not changed.
    """

    do: Mapping[str, Any] = field(default_factory=dict)
    edges: Mapping[tuple[str, str], Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- encoding
def encode(model: FittedModel, frame: pd.DataFrame, role: str = "input") -> dict[str, torch.Tensor]:
    """Validate ``frame`` against the schema and encode every node."""
    model.schema.check(frame, role)
    return {v.name: v.encode(frame, model.device) for v in model.schema}


def context(model: FittedModel, node: str, values: Mapping[str, torch.Tensor], n: int) -> torch.Tensor:
    """The parents of ``node`` as one float tensor ``(n, c)``; ``(n, 0)`` for a root."""
    return parent_context(model.graph, model.schema, node, values, n, model.device)


def parent_context(
    graph: CausalGraph, schema: Schema, node: str, values: Mapping[str, torch.Tensor], n: int,
    device: torch.device,
) -> torch.Tensor:
    """:func:`context` from the parts of a model (used while a model is being fitted)."""
    parents = graph.parents(node)
    if not parents:
        return torch.zeros(n, 0, device=device)
    return torch.cat([schema[p].to_context(values[p]) for p in parents], dim=-1)


def decode(
    model: FittedModel, values: Mapping[str, torch.Tensor], world: World | None = None,
    nodes: Iterable[str] | None = None, noise: Noise | None = None,
) -> pd.DataFrame:
    """Internal values → a DataFrame in user units. Continuous nodes hard-set by ``world`` are
    returned exactly as given (not through the float32 encoding)."""
    keep = set(values if nodes is None else nodes)
    do = interventions(model, world.do) if world is not None else {}
    columns: dict[str, Any] = {}
    for var in model.schema:
        if var.name not in keep:
            continue
        item = do.get(var.name)
        if isinstance(item, Set) and var.kind == "continuous" and noise is not None:
            exact = _per_row(var.name, item.value_, noise, (var.dim,), np.float64)
            columns.update({c: exact[:, j].copy() for j, c in enumerate(var.columns)})
        else:
            columns.update(var.decode(values[var.name]))
    return pd.DataFrame(columns)


# ---------------------------------------------------------------------- noise
def sample_noise(
    model: FittedModel, n: int, generator: torch.Generator, first_unit: int = 0,
    n_units: int | None = None,
) -> Noise:
    """``n`` draws from every mechanism's noise prior. Rows are units ``first_unit …``, out of
    ``n_units`` (default ``n``), so a chunk of a larger sample reads its slice of per-unit
    intervention values."""
    values = {exogenous(node): m.sample_noise(n, generator) for node, m in model.mechanisms.items()}
    units = torch.arange(first_unit, first_unit + n, device=model.device)
    return Noise(values, {k: "prior" for k in values}, units, n_units or n)


def abduct(
    model: FittedModel,
    factual: Mapping[str, torch.Tensor],
    nodes: Iterable[str] | None = None,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Noise:
    """The noise of each unit's ``nodes`` (default: all) from its encoded ``factual`` values.

    Exact and approximate abduction run once per unit and are repeated; posterior abduction
    draws ``n_samples`` times per unit. Rows are unit-major: unit ``i`` owns rows
    ``i·n_samples … (i + 1)·n_samples − 1``.
    """
    nodes = list(model.graph.nodes if nodes is None else nodes)
    n_units = len(next(iter(factual.values())))
    units = torch.arange(n_units, device=model.device).repeat_interleave(n_samples)
    values, kinds = {}, {}
    for node in model.graph.nodes:
        if node not in nodes:
            continue
        mech = model.mechanisms[node]
        ctx = context(model, node, factual, n_units)
        if mech.abduction == "posterior":
            values[exogenous(node)] = mech.abduct(factual[node][units], ctx[units], generator)
        else:
            values[exogenous(node)] = mech.abduct(factual[node], ctx)[units]
        kinds[exogenous(node)] = mech.abduction
    return Noise(values, kinds, units, n_units)


# ---------------------------------------------------------------------- propagation
def changed_nodes(model: FittedModel, world: World) -> set[str]:
    """Nodes whose value in ``world`` may differ from the factual one: the intervened nodes,
    the children of intervened edges, and everything downstream of them."""
    start = set(world.do) | {child for _, child in world.edges}
    return model.graph.descendants(start) if start else set()


def needed_noise(model: FittedModel, worlds: Mapping[str, World]) -> set[str]:
    """Nodes whose noise a counterfactual over ``worlds`` needs: changed nodes that are not
    hard-set without reference to their natural value."""
    needed: set[str] = set()
    for world in worlds.values():
        do = interventions(model, world.do)
        for node in changed_nodes(model, world):
            if node not in do or do[node].needs_natural:
                needed.add(node)
    return needed


def propagate(
    model: FittedModel,
    noise: Noise,
    worlds: Mapping[str, World],
    factual: Mapping[str, torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    independent: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Values of every node in every world (internal encoding), sharing ``noise``.

    With ``factual`` (values with one row per unit), nodes a world does not change keep the
    factual values; otherwise every node is computed from the noise. Nodes run in
    topological order across all worlds, so a world may read a parent from any other.
    The independent parent values that :class:`Independent` asks for are ``independent``
    (from :func:`independent_values`) or, without it, drawn with ``generator``.
    """
    _check_worlds(model, worlds)
    do = {name: interventions(model, w.do) for name, w in worlds.items()}
    recompute = {
        name: set(model.graph.nodes) if factual is None else changed_nodes(model, w)
        for name, w in worlds.items()
    }
    base = {} if factual is None else {n: v[noise.units] for n, v in factual.items()}
    out: dict[str, dict[str, torch.Tensor]] = {name: dict(base) for name in worlds}
    if independent is None:
        independent = independent_values(model, worlds, noise, generator)
    for node in model.graph.nodes:
        for name in _world_order(node, do):
            if node not in recompute[name]:
                continue
            item = do[name].get(node)
            if isinstance(item, FromWorld):
                out[name][node] = out[item.world][node]
                continue
            parents = _parent_values(model, node, name, worlds[name], out, independent, noise)
            out[name][node] = _assign(model, node, item, parents, noise)
    return out


def _world_order(node: str, do: Mapping[str, Mapping[str, Intervention]]) -> list[str]:
    """Worlds in an order where a world that copies ``node`` from another comes after it."""
    order: list[str] = []
    pending = list(do)
    while pending:
        ready = [
            w for w in pending
            if not isinstance(do[w].get(node), FromWorld) or do[w][node].world in order
        ]
        if not ready:
            raise DataError(f"the worlds {pending} copy {node!r} from each other in a cycle")
        order += ready
        pending = [w for w in pending if w not in ready]
    return order


def outside_shares(
    model: FittedModel, worlds: Mapping[str, World], values: Mapping[str, Mapping[str, torch.Tensor]],
) -> dict[str, dict[str, float]]:
    """Per world, the share of rows outside the training range of every continuous node that
    the world sets, or that feeds a node it changes (shares of zero included)."""
    shares: dict[str, dict[str, float]] = {}
    for name, world in worlds.items():
        if not world.do and not world.edges:
            continue
        intervened = set(world.do) | {p for p, _ in world.edges}
        changed = changed_nodes(model, world)
        feeding = {p for c in changed for p in model.graph.parents(c)} & changed
        for node in sorted(intervened | feeding, key=model.graph.nodes.index):
            if node in model.ranges and node in values[name]:
                shares.setdefault(name, {})[node] = _outside_share(model, node, values[name][node])
    return shares


def extrapolated(
    model: FittedModel, worlds: Mapping[str, World], shares: Mapping[str, Mapping[str, float]],
) -> dict[str, dict[str, float]]:
    """The :func:`outside_shares` worth reporting: any share of an intervened value, more than
    :data:`_PROPAGATED_SHARE` of a propagated one; warns once with
    :class:`~deepscm.ExtrapolationWarning` when any is found."""
    found: dict[str, dict[str, float]] = {}
    messages = []
    for name, per_node in shares.items():
        world = worlds[name]
        for node, share in per_node.items():
            set_here = node in world.do and not isinstance(world.do[node], FromWorld)
            if share > (0.0 if set_here else _PROPAGATED_SHARE):
                found.setdefault(name, {})[node] = share
                low, high = model.ranges[node]
                what = "is set to" if set_here else "reaches"
                messages.append(
                    f"{node!r} {what} values outside its training range "
                    f"[{', '.join(f'{a:.4g}' for a in low)}; {', '.join(f'{b:.4g}' for b in high)}] "
                    f"in {share:.1%} of rows" + ("" if name in (FACTUAL, "do") else f" (world {name!r})")
                )
    if messages:
        warnings.warn(
            "extrapolating: " + "; ".join(messages) + ". The mechanisms were fitted on the "
            "training range; answers outside it are less reliable",
            ExtrapolationWarning, stacklevel=4,
        )
    return found


def off_support_shares(
    model: FittedModel, worlds: Mapping[str, World], values: Mapping[str, Mapping[str, torch.Tensor]],
    max_rows: int = SUPPORT_ROWS,
) -> dict[str, dict[str, float]]:
    """Per world, the share of rows in which a node that the world changes — through its
    parents, not by being set — reads a parent combination outside its training support
    (:mod:`deepscm.scm.support`), estimated on at most ``max_rows`` evenly spaced rows. The
    child of an intervened edge reads a reference instead of that parent and is not checked."""
    supports = getattr(model, "support", None) or {}
    shares: dict[str, dict[str, float]] = {}
    for name, world in worlds.items():
        if not world.do and not world.edges:
            continue
        unchecked = set(world.do) | {child for _, child in world.edges}
        n = len(next(iter(values[name].values())))
        rows = even_rows(n, max_rows, model.device)
        for node in sorted(changed_nodes(model, world) - unchecked, key=model.graph.nodes.index):
            if node not in supports:
                continue
            subset = {p: values[name][p][rows] for p in model.graph.parents(node)}
            ctx = context(model, node, subset, len(rows))
            shares.setdefault(name, {})[node] = float(supports[node].outside(ctx).mean())
    return shares


def off_support(
    model: FittedModel, worlds: Mapping[str, World], shares: Mapping[str, Mapping[str, float]],
) -> dict[str, dict[str, float]]:
    """Warn once with :class:`~deepscm.ExtrapolationWarning` when a share of
    :func:`off_support_shares` exceeds :data:`_OFF_SUPPORT_SHARE`; returns every share."""
    messages = []
    for name, per_node in shares.items():
        for node, share in per_node.items():
            if share > _OFF_SUPPORT_SHARE:
                parents = ", ".join(model.graph.parents(node))
                messages.append(
                    f"{node!r} reads a combination of its parents ({parents}) unlike any in the "
                    f"training data in {share:.1%} of rows"
                    + ("" if name in (FACTUAL, "do") else f" (world {name!r})")
                )
    if messages:
        warnings.warn(
            "extrapolating: " + "; ".join(messages) + ". Each parent may lie in its own range, "
            "but the mechanism never saw them together, so these answers are less reliable; "
            "DeepSCM.outside_support(frame) flags the rows",
            ExtrapolationWarning, stacklevel=4,
        )
    return {name: dict(per_node) for name, per_node in shares.items()}


# ---------------------------------------------------------------------- internals
def _check_worlds(model: FittedModel, worlds: Mapping[str, World]) -> None:
    for name, world in worlds.items():
        if not isinstance(world, World):
            raise DataError(f"world {name!r} must be a deepscm World, got {type(world).__name__}")
        for edge, ref in world.edges.items():
            if not (isinstance(edge, tuple) and len(edge) == 2):
                raise DataError(f"world {name!r}: an edge is a (parent, child) pair, got {edge!r}")
            parent, child = edge
            model.graph.check_nodes([parent, child], "an edge intervention")
            if parent not in model.graph.parents(child):
                raise DataError(f"world {name!r}: the graph has no edge {parent} -> {child}")
            if isinstance(ref, FromWorld) and ref.world not in worlds:
                raise DataError(
                    f"world {name!r}: edge {parent} -> {child} reads world {ref.world!r}, which "
                    f"is not among the worlds {sorted(worlds)}"
                )
        for node, spec in world.do.items():
            if isinstance(spec, FromWorld) and spec.world not in worlds:
                raise DataError(
                    f"world {name!r}: {node!r} reads world {spec.world!r}, which is not among "
                    f"the worlds {sorted(worlds)}"
                )


def interventions(model: FittedModel, do: Mapping[str, Any]) -> dict[str, Intervention]:
    """Parse and check a ``do=`` mapping: known nodes, values by :func:`as_intervention`."""
    if not isinstance(do, Mapping):
        raise DataError(
            f"do= must be a mapping from node to value, e.g. do={{'t': 1.0}}; got {type(do).__name__}"
        )
    out = {}
    for node, spec in do.items():
        if node not in model.graph:
            raise DataError(
                f"unknown node in do(...): {node!r}; the graph has {model.graph.nodes}"
            )
        out[node] = as_intervention(spec, node)
    return out


def _parent_values(
    model: FittedModel, node: str, name: str, world: World,
    out: Mapping[str, Mapping[str, torch.Tensor]], independent: Mapping[str, torch.Tensor],
    noise: Noise,
) -> dict[str, torch.Tensor]:
    """The values ``node`` reads from each parent in world ``name``, edge interventions applied."""
    parents = {}
    for p in model.graph.parents(node):
        ref = world.edges.get((p, node), _OWN)
        if ref is _OWN:
            parents[p] = out[name][p]
        elif isinstance(ref, FromWorld):
            parents[p] = out[ref.world][p]
        elif isinstance(ref, Independent):
            parents[p] = independent[p]
        else:
            parents[p] = _encode_value(model, p, ref, noise, f"the edge {p} -> {node}")
    return parents


_OWN = object()


def _assign(
    model: FittedModel, node: str, item: Intervention | None,
    parents: Mapping[str, torch.Tensor], noise: Noise,
) -> torch.Tensor:
    """The value of ``node`` from its parents' values, its noise and its intervention."""
    mech, var, n = model.mechanisms[node], model.schema[node], noise.n
    ctx = context(model, node, parents, n)
    if item is None:
        return mech.sample(ctx, noise.of(node))
    natural = var.decode_array(mech.sample(ctx, noise.of(node))) if item.needs_natural else None
    if isinstance(item, Set):
        return _encode_value(model, node, item.value_, noise, "the intervention")
    decoded = {p: model.schema[p].decode_array(v) for p, v in parents.items()}
    new = evaluate(item, node, natural, decoded)
    return _encode_value(model, node, new, noise, "the intervention", per_row=True)


def _encode_value(
    model: FittedModel, node: str, value: Any, noise: Noise, what: str, per_row: bool = False
) -> torch.Tensor:
    """Encode a value in user units for every row: a constant, one value per unit, or (from a
    callable, ``per_row``) one value per row."""
    var = model.schema[node]
    if var.is_image:
        rows = value if per_row else _per_unit_images(var, value, noise, what)
        return var.encode_values(rows, noise.n, model.device)
    if isinstance(value, (str, bytes)) and not var.discrete:
        raise DataError(
            f"{what} on {node!r} gives {value!r}, but {node!r} is {var.kind}: give a number"
        )
    dtype = object if var.discrete else np.float64
    shape = () if var.discrete else (var.dim,)
    try:
        rows = np.asarray(value, dtype=dtype) if per_row else _per_row(node, value, noise, shape, dtype)
        if per_row and rows.ndim == 0:
            rows = np.broadcast_to(rows, (noise.n,))
        if per_row and len(rows) != noise.n:
            raise DataError(
                f"{what} on {node!r} returned {len(rows)} values for {noise.n} rows; a callable "
                "must return one value per row (or a constant)"
            )
        return var.encode_values(rows, noise.n, model.device)
    except DeepSCMError:
        raise
    except (TypeError, ValueError) as err:
        raise DataError(
            f"{what} on {node!r} cannot use {_short(value)} for a {var.kind} node ({err}); give "
            "a constant, one value per unit, or a callable of the natural value"
        ) from None


def _per_row(node: str, value: Any, noise: Noise, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A constant (of ``shape``) or one value per unit, as one value per row."""
    arr = np.asarray(value, dtype=dtype)
    if arr.shape == shape or (arr.ndim == 0 and shape == (1,)):
        return np.broadcast_to(arr.reshape(shape), (noise.n, *shape))
    if arr.ndim >= 1 and len(arr) == noise.n_units:
        arr = arr.reshape(noise.n_units, *shape) if shape else arr
        return arr[noise.units.cpu().numpy()]
    raise DataError(
        f"the intervention value for {node!r} has shape {arr.shape}: give one value"
        f"{'' if not shape or shape == (1,) else f' of shape {shape}'} or one per unit "
        f"({noise.n_units} values)"
    )


def _per_unit_images(var, value: Any, noise: Noise, what: str) -> Any:
    arr = np.asarray(value, dtype=np.float64) if not isinstance(value, pd.Series) else np.stack(list(value))
    if arr.shape == tuple(var.shape or ()):
        return np.broadcast_to(arr, (noise.n, *arr.shape))
    if arr.ndim == len(var.shape or ()) + 1 and len(arr) == noise.n_units:
        return arr[noise.units.cpu().numpy()]
    raise DataError(
        f"{what} on image {var.name!r}: give one image of shape {tuple(var.shape or ())} or "
        f"one per unit ({noise.n_units}), got an array of shape {arr.shape}"
    )


def independent_values(
    model: FittedModel, worlds: Mapping[str, World], noise: Noise, generator: torch.Generator | None
) -> dict[str, torch.Tensor]:
    """Observational values of the parents that :class:`Independent` edges read, from fresh
    noise (independent of the units' own)."""
    wanted = {p for w in worlds.values() for (p, _), ref in w.edges.items() if isinstance(ref, Independent)}
    if not wanted:
        return {}
    if generator is None:
        raise DataError("an Independent edge reference needs a random generator (pass seed=)")
    fresh = sample_noise(model, noise.n, generator, n_units=noise.n)
    needed = model.graph.ancestors(wanted)
    values: dict[str, torch.Tensor] = {}
    for node in model.graph.nodes:
        if node in needed:
            ctx = context(model, node, values, noise.n)
            values[node] = model.mechanisms[node].sample(ctx, fresh.of(node))
    return {p: values[p] for p in wanted}


def _outside_share(model: FittedModel, node: str, value: torch.Tensor) -> float:
    low, high = (np.asarray(b, dtype=np.float64) for b in model.ranges[node])
    x = np.asarray(model.schema[node].decode_array(value), dtype=np.float64).reshape(len(value), -1)
    slack = _RANGE_SLACK * (high - low)
    outside = ((x < low - slack) | (x > high + slack)).any(axis=-1)
    return float(outside.mean())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
