"""Additive-noise baseline: ``x = μ(pa) + u`` with ``u`` resampled from training residuals.

The mean ``μ`` is an MLP fitted by least squares (a Gaussian likelihood with a learned
scale, so ``log_prob`` is defined); the noise prior is the empirical distribution of the
residuals ``x - μ(pa)`` on the training data, and abduction is exact, ``u = x - μ(pa)``
(an additive noise model, Hoyer et al. 2009; DoWhy-gcm's ``AdditiveNoiseModel``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import NotFittedError
from .base import Mechanism, MechanismSpec, mlp, positive_int, positive_ints

__all__ = ["AdditiveNoise"]


class AdditiveNoise(Mechanism):
    """Additive-noise mechanism with empirical residual noise.

    Args:
        hidden_features: MLP widths of the mean ``μ(pa)``.
        max_residuals: at most this many training residuals are kept as the noise sample.
    """

    abduction = "exact"

    def __init__(
        self, hidden_features: tuple[int, ...] | list[int] = (64, 64), max_residuals: int = 10_000
    ) -> None:
        super().__init__(
            hidden_features=positive_ints("hidden_features", hidden_features),
            max_residuals=positive_int("max_residuals", max_residuals),
        )

    def _build(self, spec: MechanismSpec) -> None:
        if spec.context_dim:
            self.mean_net = mlp(spec.context_dim, spec.x_dim, self.hparams["hidden_features"])
        else:
            self.root_mean = nn.Parameter(torch.zeros(spec.x_dim))
        self.log_scale = nn.Parameter(torch.zeros(spec.x_dim))
        self.register_buffer("residuals", torch.zeros(0, spec.x_dim))

    def mean(self, context: torch.Tensor) -> torch.Tensor:
        if self.spec.context_dim:
            return self.mean_net(context)
        return self.root_mean.expand(len(context), -1)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean(context)) / self.log_scale.exp()
        return (-0.5 * z**2 - self.log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)

    def after_fit(self, x: torch.Tensor, context: torch.Tensor) -> None:
        with torch.no_grad():
            residuals = x - self.mean(context)
        keep = self.hparams["max_residuals"]
        if len(residuals) > keep:
            g = torch.Generator(device=residuals.device).manual_seed(0)
            residuals = residuals[torch.randperm(len(residuals), generator=g, device=residuals.device)[:keep]]
        self.residuals = residuals.clone()

    def extra_config(self) -> dict[str, Any]:
        return {"n_residuals": int(self.residuals.shape[0])}

    def load_extra_config(self, state: dict[str, Any]) -> None:
        self.residuals = torch.zeros(state["n_residuals"], self.spec.x_dim)

    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if not len(self.residuals):
            raise NotFittedError("AdditiveNoise has no residuals yet: fit the model first")
        idx = torch.randint(len(self.residuals), (n,), generator=generator, device=generator.device)
        return self.residuals.to(generator.device)[idx]

    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.mean(context) + noise

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return x - self.mean(context)
