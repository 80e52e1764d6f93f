"""Linear-Gaussian mechanism fitted in closed form: ``x = W·pa + b + σ ⊙ u``, ``u ~ N(0, I)``.

Ordinary least squares gives ``(W, b)`` and the residual standard deviation gives ``σ``, the
maximum-likelihood estimates of a linear-Gaussian conditional (so no gradient steps are
taken; :meth:`LinearGaussian.after_fit` solves it on the training rows). Abduction is exact,
``u = (x − W·pa − b) ⊘ σ``, and the location extrapolates linearly, which makes it the right
choice wherever the data are linear — the textbook counterfactual far outside the data
included.
"""

from __future__ import annotations

import math

import torch

from .base import Mechanism, MechanismSpec

__all__ = ["LinearGaussian"]

_LOG_2PI = math.log(2 * math.pi)


class LinearGaussian(Mechanism):
    """``x = W·pa + b + σ ⊙ u`` with ``(W, b, σ)`` by least squares (closed form)."""

    abduction = "exact"
    likelihood = "exact"

    def __init__(self) -> None:
        super().__init__()

    def _build(self, spec: MechanismSpec) -> None:
        self.register_buffer("weight", torch.zeros(spec.x_dim, spec.context_dim))
        self.register_buffer("bias", torch.zeros(spec.x_dim))
        self.register_buffer("log_sigma", torch.zeros(spec.x_dim))

    def after_fit(self, x: torch.Tensor, context: torch.Tensor) -> None:
        """Least squares on the training rows: ``[pa, 1] · [Wᵀ; b] ≈ x``; ``σ`` the residual
        standard deviation (floored at 1e-6 of the data's unit scale)."""
        design = torch.cat([context.double(), torch.ones(len(x), 1, dtype=torch.float64, device=x.device)], dim=1)
        solution = torch.linalg.lstsq(design.cpu(), x.double().cpu()).solution.to(x.device)
        residual = x.double() - design @ solution
        self.weight = solution[:-1].T.float().contiguous()
        self.bias = solution[-1].float()
        self.log_sigma = residual.std(dim=0, correction=0).clamp_min(1e-6).log().float()

    def mean(self, context: torch.Tensor) -> torch.Tensor:
        return context @ self.weight.T + self.bias

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        u = (x - self.mean(context)) / self.log_sigma.exp()
        return (-0.5 * u.square() - self.log_sigma - 0.5 * _LOG_2PI).sum(-1)

    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.spec.x_dim, generator=generator, device=generator.device)

    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.mean(context) + self.log_sigma.exp() * noise

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return (x - self.mean(context)) / self.log_sigma.exp()
