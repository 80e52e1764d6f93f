"""Registry of the ground-truth SCM suite: list, load and group SCMs by source.

Kinds: ``"basic"`` (textbook, classic structures, mixed categorical), ``"dcm"`` (Chao et al.
2023), ``"causal_nf"`` (Javaloy et al. 2023), ``"vaca"`` (Sanchez-Martin et al. 2022),
``"medical"`` (the demo's brain SCM), ``"realistic"`` (physical-unit clinical, economics,
environmental and pharmacokinetic SCMs designed for deepscm) and ``"all"``.

Example:
    >>> scm = load_scm("textbook")
    >>> [s.name for s in suite("dcm")][:2]
    ['dcm_triangle_nonlinear', 'dcm_triangle_nonadditive']
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import DataError
from . import basic, causal_nf, dcm, medical, realistic, vaca
from .base import GroundTruthSCM

__all__ = ["KINDS", "list_scms", "load_scm", "suite"]

_BY_KIND: dict[str, dict[str, Callable[[], GroundTruthSCM]]] = {
    "basic": basic.SCMS,
    "dcm": dcm.SCMS,
    "causal_nf": causal_nf.SCMS,
    "vaca": vaca.SCMS,
    "medical": medical.SCMS,
    "realistic": realistic.SCMS,
}
_ALL: dict[str, Callable[[], GroundTruthSCM]] = {
    name: build for table in _BY_KIND.values() for name, build in table.items()
}

KINDS: tuple[str, ...] = ("all", *_BY_KIND)
"""Valid ``kind`` arguments of :func:`list_scms` and :func:`suite`."""


def list_scms(kind: str = "all") -> list[str]:
    """Names of the registered SCMs of ``kind`` (see :data:`KINDS`), in registry order.

    Raises:
        DataError: (a ``ValueError``) for an unknown kind.
    """
    if kind == "all":
        return list(_ALL)
    if kind not in _BY_KIND:
        raise DataError(f"unknown SCM kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return list(_BY_KIND[kind])


def load_scm(name: str) -> GroundTruthSCM:
    """A fresh instance of the registered SCM ``name``.

    Raises:
        DataError: (a ``ValueError``) for an unknown name; the message lists the valid names.
    """
    if name not in _ALL:
        raise DataError(f"unknown SCM {name!r}; valid names: {', '.join(_ALL)}")
    return _ALL[name]()


def suite(kind: str = "all") -> list[GroundTruthSCM]:
    """Fresh instances of every SCM of ``kind`` (see :data:`KINDS`)."""
    return [load_scm(name) for name in list_scms(kind)]
