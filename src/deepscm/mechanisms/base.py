"""The mechanism protocol: one conditional generative model per node, ``x := f(pa, u)``.

A mechanism (a) samples ``x`` from its parents and exogenous noise ``u``, (b) scores
``log p(x | pa)`` for training, and (c) *abducts* the noise of an observed ``(x, pa)``
(Pawlowski et al. 2020, eq. 1). All tensors are in the model's internal encoding: continuous
values standardised ``(n, d)``, discrete values integer codes ``(n,)``, images standardised
``(n, C, H, W)``, parents as a float context ``(n, c)`` (``c = 0`` for a root).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["Mechanism", "MechanismSpec", "SkipMLP", "mlp"]


@dataclass(frozen=True)
class MechanismSpec:
    """What a mechanism needs to know about its node: value width, context width, categories,
    and an image's shape ``(C, H, W)``."""

    x_dim: int
    context_dim: int
    n_categories: int | None = None
    x_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.x_shape is not None:  # JSON gives a list
            object.__setattr__(self, "x_shape", tuple(int(s) for s in self.x_shape))

    @property
    def discrete(self) -> bool:
        return self.n_categories is not None


class Mechanism(nn.Module, ABC):
    """Base class. ``__init__`` stores hyper-parameters only; :meth:`build` makes the layers.

    Subclasses set :attr:`exact_abduction` (``True`` when ``abduct`` returns the unique noise,
    ``False`` when it draws from the noise posterior) and :attr:`handles` (the node kinds
    they model: ``"continuous"``, ``"discrete"`` and/or ``"image"``). A mechanism whose
    :meth:`log_prob` is only a lower bound (an ELBO) sets :attr:`log_prob_is_bound`.
    """

    exact_abduction: ClassVar[bool] = True
    handles: ClassVar[frozenset[str]] = frozenset({"continuous"})
    log_prob_is_bound: ClassVar[bool] = False

    def __init__(self, **hparams: Any) -> None:
        super().__init__()
        self.hparams = hparams
        self.spec: MechanismSpec | None = None

    def build(self, spec: MechanismSpec) -> None:
        """Create the layers for a node of the given shape (called once, before training)."""
        self.spec = spec
        self._build(spec)

    @abstractmethod
    def _build(self, spec: MechanismSpec) -> None: ...

    @abstractmethod
    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``log p(x | pa)`` per row, shape ``(n,)``."""

    @abstractmethod
    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws of the exogenous noise from its prior."""

    @abstractmethod
    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The structural assignment ``x = f(pa, u)``."""

    @abstractmethod
    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Noise consistent with ``(x, pa)``: ``f⁻¹`` when exact, a posterior draw otherwise."""

    def loss(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Training objective (mean over rows); the negative log-likelihood by default."""
        return -self.log_prob(x, context).mean()

    def after_fit(self, x: torch.Tensor, context: torch.Tensor) -> None:
        """Hook called once with the training data after the weights are final."""

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description from which :meth:`from_config` rebuilds the module."""
        return {
            "type": type(self).__name__,
            "hparams": self.hparams,
            "spec": None if self.spec is None else asdict(self.spec),
            "state": self.extra_config(),
        }

    def extra_config(self) -> dict[str, Any]:
        """Shapes of data-dependent buffers, needed to rebuild before loading weights."""
        return {}

    def load_extra_config(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`extra_config`: allocate buffers of the saved shapes."""


class SkipMLP(nn.Module):
    """``Linear(x) + MLP(x)``: the linear path carries the global trend, so predictions
    outside the training range extrapolate linearly instead of along the MLP's last ReLU
    piece; the MLP adds the non-linear part. Both output layers start at zero."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: tuple[int, ...] | list[int],
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.mlp = mlp(in_dim, out_dim, hidden, activation)
        for layer in (self.linear, self.mlp[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.mlp(x)


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: tuple[int, ...] | list[int],
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """A multilayer perceptron ``in_dim → hidden… → out_dim`` (ReLU unless told otherwise)."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), activation()]
        width = h
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)
