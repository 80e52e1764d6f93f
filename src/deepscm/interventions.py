"""Interventions: what replaces a node's mechanism under ``do(...)``.

- :class:`Set` — a hard intervention ``do(x := c)`` (Pearl 2009, §3.2);
- :class:`Shift` — a function of the node's *natural* value, ``x := g(f(pa, u))``, e.g. the
  shift ``t := t + 1`` of Pawlowski et al. (2020, Fig. 3);
- :class:`FromParents` — a new assignment from the parents, ``x := h(pa)``.

Values and functions work in the user's units and labels. :func:`as_intervention` turns what a
user writes into one of these: a callable whose parameters are all named after parents of the
node receives those parents by name; any other callable receives the natural value; anything
else is a constant.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Intervention", "Set", "Shift", "FromParents", "as_intervention"]


class Intervention:
    """Base class: how the intervened value is computed."""

    #: whether the natural value ``f(pa, u)`` is needed (so the noise must be known).
    needs_natural: bool = False

    def value(self, natural: np.ndarray | None, parents: Mapping[str, np.ndarray]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Set(Intervention):
    """``do(x := value)``."""

    value_: Any

    def value(self, natural, parents):
        return self.value_


@dataclass(frozen=True)
class Shift(Intervention):
    """``x := fn(natural value)``."""

    fn: Callable[[np.ndarray], Any]
    needs_natural = True

    def value(self, natural, parents):
        return self.fn(natural)


@dataclass(frozen=True)
class FromParents(Intervention):
    """``x := fn(**parents)``, the parents it names passed as arrays in user units."""

    fn: Callable[..., Any]

    def value(self, natural, parents):
        params = inspect.signature(self.fn).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return self.fn(**parents)
        return self.fn(**{p.name: parents[p.name] for p in params if p.name in parents})


def as_intervention(spec: Any, parents: Sequence[str]) -> Intervention:
    """Interpret a user's intervention for a node with the given parents."""
    if isinstance(spec, Intervention):
        return spec
    if callable(spec):
        try:
            params = list(inspect.signature(spec).parameters)
        except (TypeError, ValueError):  # builtins such as np.exp have no signature
            params = []
        if params and set(params) <= set(parents):
            return FromParents(spec)
        return Shift(spec)
    return Set(spec)
