"""The one registry of mechanism families: names, aliases and the default per node kind.

:class:`~deepscm.DeepSCM`, the model-file loader and the CLI all read it, so a new family
is one module plus one :func:`register` call. Loading a saved model instantiates only
classes registered here, so a model file can never name arbitrary code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Union

from ..errors import ConfigError
from .additive import AdditiveNoise
from .adversarial import Adversarial
from .hvae import HierarchicalVAE
from .base import Mechanism
from .boosted import BoostedAdditive
from .categorical import Categorical
from .diffusion import Diffusion
from .flow import ConditionalFlow
from .linear import LinearGaussian
from .quadratic import Quadratic
from .vae import ConditionalVAE

__all__ = [
    "AUTO", "MechanismChoice", "REGISTRY", "aliases", "candidates", "default_for", "make",
    "nonlinear_candidate",
    "names", "register", "resolve", "unregister",
]

#: the choice that selects, per node, among :func:`candidates` by held-out likelihood.
AUTO = "auto"

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


def unregister(name: str) -> type[Mechanism]:
    """Remove a family added by :func:`register` (by class name), with its aliases; returns
    the class. The default family of a node kind cannot be removed."""
    if name not in REGISTRY:
        raise ConfigError(f"no mechanism family {name!r} is registered; known: {sorted(REGISTRY)}")
    kinds = sorted(kind for kind, default in _DEFAULTS.items() if default == name)
    if kinds:
        raise ConfigError(f"{name} is the default for {kinds} nodes and cannot be unregistered")
    for alias in [a for a, target in _ALIASES.items() if target == name]:
        del _ALIASES[alias]
    return REGISTRY.pop(name)


register(ConditionalFlow, aliases=("flow", "nsf"), default_for=("continuous",))
register(Categorical, aliases=("categorical", "gumbel"), default_for=("discrete",))
register(ConditionalVAE, aliases=("vae",), default_for=("image",))
register(AdditiveNoise, aliases=("additive", "anm"))
register(LinearGaussian, aliases=("linear", "linear-gaussian"))
register(Quadratic, aliases=("quadratic", "polynomial"))
register(BoostedAdditive, aliases=("boosted", "hgb"))
register(Diffusion, aliases=("diffusion", "ddim", "dcm"))
register(HierarchicalVAE, aliases=("hvae", "hierarchical-vae"))
register(Adversarial, aliases=("adversarial", "gan"))


#: the hidden widths of the automatic selection's spline-flow candidate. Narrower than
#: :class:`ConditionalFlow`'s own default ``(64, 64)``: a scalar node's location and noise
#: shape are functions of a few parents, and on 11 SCMs of the suite × 3 data seeds (5,000
#: rows) ``(32, 32)`` fitted faster in 31 of 33 paired fits (27 % less time in all) with the
#: same counterfactual accuracy (geometric-mean MSE ratio 0.98, lower in 17 of 33, 0.55–1.79)
#: and held-out log-likelihood (higher in 16 of 33): ``benchmarks/auto_flow_width.py``.
AUTO_FLOW_HIDDEN: tuple[int, ...] = (32, 32)

#: node kind → the candidates automatic selection compares, preferred first: (label, factory).
#: The order is the tie-break (a candidate is kept while within the tolerance of the best) and
#: it is about counterfactuals: a linear location extrapolates linearly; the flow's smooth
#: MLP location interpolates and extrapolates better than piecewise-constant trees, so the
#: boosted trees are kept only where they fit clearly better (e.g. a discontinuous effect).
_CANDIDATES: dict[str, list[tuple[str, Callable[[], Mechanism]]]] = {
    "continuous": [
        ("linear", LinearGaussian),
        ("linear, kde noise", lambda: LinearGaussian(noise="kde")),
        ("spline flow", lambda: ConditionalFlow(hidden_features=AUTO_FLOW_HIDDEN)),
        ("boosted additive", BoostedAdditive),
    ],
    "discrete": [("categorical", Categorical)],
    "image": [("vae", ConditionalVAE)],
}
#: candidates fitted only when the simplest candidate's noise depends on the node's parents
#: (a linear model does not explain how they act).
_NONLINEAR = frozenset({"boosted additive", "spline flow"})


def candidates(kind: str) -> list[tuple[str, Mechanism]]:
    """Fresh candidates for a node kind, simplest first, as ``(label, mechanism)`` pairs."""
    return [(label, factory()) for label, factory in _CANDIDATES[kind]]


def nonlinear_candidate(label: str) -> bool:
    """Whether a candidate is one that models non-linear effects of the parents (fitted only
    when the linear candidates leave the noise dependent on the parents)."""
    return label in _NONLINEAR


def names() -> list[str]:
    """Every name the CLI and ``DeepSCM(mechanisms=...)`` accept: ``"auto"``, aliases, then
    class names."""
    return [AUTO] + sorted(_ALIASES) + sorted(c for c in REGISTRY if c.lower() not in _ALIASES)


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
        if choice.lower() == AUTO:
            raise ConfigError('"auto" stands for several candidates; use candidates(kind)')
        return resolve(choice)()
    raise ConfigError(
        f"cannot use {choice!r} as a mechanism; pass a Mechanism instance, class or one of {names()}"
    )
