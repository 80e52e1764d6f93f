"""Interventions: what replaces a node's mechanism under ``do(...)``, with one meaning
everywhere (:class:`~deepscm.DeepSCM`, the ground-truth SCMs, the CLI).

- :class:`Set` — a hard intervention ``do(x := c)`` (Pearl 2009, §3.2); ``c`` is a constant
  or one value per unit (an array as long as the units or samples);
- :class:`Shift` — a function of the node's *natural* value, ``x := g(f(pa, u))``, e.g. the
  shift ``t := t + 1`` of Pawlowski et al. (2020, Fig. 3);
- :class:`FromParents` — a new assignment from the parents, ``x := h(pa)``.

Values and functions work in the user's units and labels. :func:`as_intervention` turns what
a user writes into one of these by one rule: an :class:`Intervention` is kept; **any bare
callable is a function of the natural value** (:class:`Shift`) — whatever its parameter is
called; a function of the parents is written ``FromParents(fn)``; anything else is a
constant or per-unit values (:class:`Set`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DataError, DeepSCMError

__all__ = ["Intervention", "Set", "Shift", "FromParents", "as_intervention", "evaluate"]


class Intervention:
    """Base class: how the intervened value is computed."""

    #: whether the natural value ``f(pa, u)`` is needed (so the noise must be known).
    needs_natural: bool = False

    def value(self, natural: np.ndarray | None, parents: Mapping[str, np.ndarray]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Set(Intervention):
    """``do(x := value)``: a constant, or one value per unit."""

    value_: Any

    def __post_init__(self) -> None:
        if callable(self.value_):
            raise DataError(
                "Set takes a value, not a function: for a function of the natural value use "
                "Shift(fn), for a function of the parents FromParents(fn)"
            )
        if isinstance(self.value_, (Mapping, set)):
            raise DataError(f"an intervention value must be a constant or an array, got {self.value_!r}")

    def value(self, natural, parents):
        return self.value_


@dataclass(frozen=True)
class Shift(Intervention):
    """``x := fn(natural value)``, e.g. ``Shift(lambda t: t + 1)``."""

    fn: Callable[[np.ndarray], Any]
    needs_natural = True

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise DataError(
                f"Shift takes a function of the natural value, e.g. Shift(lambda t: t + "
                f"{self.fn!r}); got {self.fn!r}"
            )

    def value(self, natural, parents):
        return self.fn(natural)


@dataclass(frozen=True)
class FromParents(Intervention):
    """``x := fn(**parents)``, the parents it names passed as arrays in user units."""

    fn: Callable[..., Any]

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise DataError(f"FromParents takes a function of the parents, got {self.fn!r}")

    def value(self, natural, parents):
        params = inspect.signature(self.fn).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return self.fn(**parents)
        unknown = [
            p.name for p in params
            if p.name not in parents and p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        if unknown:
            raise DataError(
                f"FromParents function asks for {unknown}, which are not parents of the node; "
                f"its parents are {sorted(parents)}"
            )
        return self.fn(**{p.name: parents[p.name] for p in params if p.name in parents})


def as_intervention(spec: Any, node: str | None = None) -> Intervention:
    """Interpret what a user wrote for one node (see the module docstring for the rule)."""
    if isinstance(spec, Intervention):
        return spec
    if callable(spec):
        return Shift(spec)
    if spec is None:
        where = f" for {node!r}" if node is not None else ""
        raise DataError(f"the intervention{where} is None; give a value, values or a callable")
    if isinstance(spec, (list, tuple)):
        spec = np.asarray(spec, dtype=object if any(isinstance(v, str) for v in spec) else None)
    return Set(spec)


def evaluate(
    intervention: Intervention, node: str, natural: np.ndarray | None, parents: Mapping[str, np.ndarray]
) -> Any:
    """``intervention.value(natural, parents)``; a user's callable that fails becomes a
    :class:`DataError` naming the node."""
    try:
        return intervention.value(natural, parents)
    except DeepSCMError:
        raise
    except Exception as err:  # a user's callable failed
        raise DataError(f"the intervention on {node!r} raised {type(err).__name__}: {err}") from err
