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
from typing import Any, ClassVar, Literal, get_args

import torch
from torch import nn

from ..errors import ConfigError

__all__ = [
    "ABDUCTION_KINDS",
    "Abduction",
    "Likelihood",
    "MAX_GRAD_NORM",
    "Mechanism",
    "MechanismSpec",
    "SkipMLP",
    "mlp",
    "non_negative_int",
    "positive_int",
    "positive_ints",
]

#: gradient-norm clip of the default training step, per mechanism.
MAX_GRAD_NORM = 10.0


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


#: How a mechanism recovers the noise of an observed ``(x, pa)``:
#: ``"exact"`` — the unique noise, ``u = f⁻¹(x; pa)`` (a flow, an additive-noise model);
#: ``"approximate"`` — deterministic but approximate (e.g. DDIM inversion), so
#: ``f(pa, abduct(x, pa)) ≈ x`` within a tolerance the mechanism reports;
#: ``"posterior"`` — a draw from ``p(u | x, pa)`` (Gumbel-max, a VAE's latent ``z``).
Abduction = Literal["exact", "approximate", "posterior"]
ABDUCTION_KINDS: tuple[str, ...] = get_args(Abduction)
#: What :meth:`Mechanism.log_prob` returns: the exact ``log p(x | pa)``, a lower ``"bound"``
#: (an ELBO), or ``"none"`` (no tractable likelihood: diffusion, adversarial mechanisms).
Likelihood = Literal["exact", "bound", "none"]


class Mechanism(nn.Module, ABC):
    """Base class. ``__init__`` stores hyper-parameters only; :meth:`build` makes the layers.

    Capabilities are class attributes: :attr:`abduction` (one of :data:`ABDUCTION_KINDS`),
    :attr:`likelihood` (``"exact"``, ``"bound"`` or ``"none"``) and :attr:`handles` (the node
    kinds modelled: ``"continuous"``, ``"discrete"`` and/or ``"image"``). Every mechanism
    implements :meth:`sample_noise`, :meth:`sample` and :meth:`abduct`; :meth:`log_prob` only
    when it has a likelihood.

    Training is per mechanism: :meth:`configure_optimizers` makes its optimisers,
    :meth:`training_step` takes one step on a mini-batch and returns the loss it saw, and
    :meth:`validation_score` scores held-out rows (lower is better; early stopping watches
    it). The defaults minimise :meth:`loss`, the negative log-likelihood, with one Adam: a
    mechanism with another objective (denoising, adversarial) overrides these three and
    sets :attr:`validation_metric` to name its score.
    """

    abduction: ClassVar[Abduction] = "exact"
    likelihood: ClassVar[Likelihood] = "exact"
    handles: ClassVar[frozenset[str]] = frozenset({"continuous"})
    #: what :meth:`validation_score` measures, reported in ``fit_info``.
    validation_metric: ClassVar[str] = "nll"
    #: for ``"approximate"`` abduction: the largest ``|f(pa, abduct(x, pa)) − x|`` (internal,
    #: standardised units) the mechanism promises on data like its training data.
    abduction_tolerance: ClassVar[float] = 0.0
    #: the node's early-stopping patience and rate-decay interval, in multiples of the fit's
    #: (:class:`deepscm.training.Plateau`): > 1 for a held-out score that improves slowly.
    patience_factor: ClassVar[int] = 1

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

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``log p(x | pa)`` per row, shape ``(n,)`` (a lower bound when
        :attr:`likelihood` is ``"bound"``). Mechanisms without a likelihood keep this default."""
        raise NotImplementedError(f"{type(self).__name__} has no tractable likelihood")

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
        """Noise consistent with ``(x, pa)``, of the kind :attr:`abduction` names."""

    # ------------------------------------------------------------------ training protocol
    def loss(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Differentiable training objective (mean over rows); the negative log-likelihood by
        default. Used by the default :meth:`training_step` and :meth:`validation_score`."""
        return -self.log_prob(x, context).mean()

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """The optimisers :meth:`training_step` receives; one Adam over all weights by default."""
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def training_step(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """One optimisation step on a mini-batch; returns the (detached) loss it minimised.

        The training loop recognises this default and steps every mechanism that keeps it in
        one backward pass over the sum of their losses: the terms share no weights and Adam's
        update is element-wise, so that equals one step per mechanism, faster."""
        (opt,) = optimizers
        return self.optimise(opt, self.loss(x, context))

    def optimise(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
        """One step of ``optimizer`` on ``loss``, gradients clipped to :data:`MAX_GRAD_NORM`;
        returns the detached loss (for a mechanism's own :meth:`training_step`)."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        return loss.detach()

    def validation_score(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Held-out score, lower is better (the mean :meth:`loss` by default). Called without
        gradients in evaluation mode; a stochastic score must use a fixed-seed generator so
        that early stopping compares like with like."""
        return self.loss(x, context)

    @property
    def uses_default_step(self) -> bool:
        """Whether :meth:`training_step` is the default negative-log-likelihood step."""
        return type(self).training_step is Mechanism.training_step and (
            type(self).configure_optimizers is Mechanism.configure_optimizers
        )

    def after_fit(self, x: torch.Tensor, context: torch.Tensor) -> None:
        """Hook called once with the training data after the weights are final."""

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """JSON-serialisable description from which the registry rebuilds the module."""
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

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


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


def positive_ints(name: str, value: Any, allow_empty: bool = True) -> list[int]:
    """Validate a list of layer widths (or any positive integers); raise :class:`ConfigError`."""
    items = [value] if isinstance(value, (int, float)) else value
    try:
        out = [int(v) for v in items]
        ok = all(o >= 1 and o == v and not isinstance(v, bool) for o, v in zip(out, items)) and (
            allow_empty or out
        )
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(value, (str, bytes)):
        raise ConfigError(f"{name} must be a list of positive integers, got {value!r}")
    return out


def non_negative_int(name: str, value: Any) -> int:
    """Validate one integer hyper-parameter ≥ 0; raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer ≥ 0, got {value!r}")
    return int(value)


def positive_int(name: str, value: Any) -> int:
    """Validate one positive integer hyper-parameter; raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int,)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
