"""The one registry of mechanism families: names, aliases and the default per node kind.

:class:`~deepscm.DeepSCM`, the model-file loader and the CLI all read it, so a new family
is one module plus one :func:`register` call. Loading a saved model instantiates only
classes registered here, so a model file can never name arbitrary code.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Union

from ..errors import ConfigError
from .additive import AdditiveNoise
from .base import Mechanism
from .categorical import Categorical
from .flow import ConditionalFlow
from .vae import ConditionalVAE

__all__ = ["MechanismChoice", "REGISTRY", "aliases", "default_for", "make", "names", "register", "resolve"]

#: what a user may pass for a node's mechanism: an unfitted instance, a class or a name.
MechanismChoice = Union[Mechanism, str, type]

#: class name → class, for every family a saved model may name.
REGISTRY: dict[str, type[Mechanism]] = {}
_ALIASES: dict[str, str] = {}
#: node kind (``"continuous"``, ``"discrete"``, ``"image"``) → default family.
_DEFAULTS: dict[str, str] = {}


def register(
    cls: type[Mechanism], aliases: Iterable[str] = (), default_for: Iterable[str] = ()
) -> type[Mechanism]:
    """Add a family (returns ``cls``, so it also works as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Mechanism)):
        raise ConfigError(f"only Mechanism subclasses can be registered, got {cls!r}")
    REGISTRY[cls.__name__] = cls
    for alias in aliases:
        _ALIASES[alias.lower()] = cls.__name__
    for kind in default_for:
        if kind not in cls.handles:
            raise ConfigError(f"{cls.__name__} cannot be the default for {kind} nodes")
        _DEFAULTS[kind] = cls.__name__
    return cls


register(ConditionalFlow, aliases=("flow", "nsf"), default_for=("continuous",))
register(Categorical, aliases=("categorical", "gumbel"), default_for=("discrete",))
register(ConditionalVAE, aliases=("vae",), default_for=("image",))
register(AdditiveNoise, aliases=("additive", "anm"))


def names() -> list[str]:
    """Every name the CLI and ``DeepSCM(mechanisms=...)`` accept: aliases, then class names."""
    return sorted(_ALIASES) + sorted(REGISTRY)


def aliases() -> dict[str, str]:
    """alias → class name."""
    return dict(_ALIASES)


def resolve(name: str) -> type[Mechanism]:
    """The class a name or alias stands for (case-insensitive)."""
    by_lower = {k.lower(): k for k in REGISTRY}
    key = _ALIASES.get(name.lower(), by_lower.get(name.lower()))
    if key is None:
        raise ConfigError(f"unknown mechanism {name!r}; choose one of {names()}")
    return REGISTRY[key]


def default_for(kind: str) -> Mechanism:
    """A fresh instance of the default family for a node kind."""
    return REGISTRY[_DEFAULTS[kind]]()


def make(choice: MechanismChoice) -> Mechanism:
    """A fresh, unfitted mechanism from an instance (deep-copied, never mutated), a class or a
    registered name."""
    if isinstance(choice, Mechanism):
        if choice.spec is not None:
            raise ConfigError("pass an unfitted mechanism (a fresh instance) to DeepSCM")
        return copy.deepcopy(choice)
    if isinstance(choice, type) and issubclass(choice, Mechanism):
        return choice()
    if isinstance(choice, str):
        return resolve(choice)()
    raise ConfigError(
        f"cannot use {choice!r} as a mechanism; pass a Mechanism instance, class or one of {names()}"
    )
