"""The noise density of an additive-noise mechanism: a kernel density of training residuals.

An additive-noise mechanism ``x = μ(pa) + u`` abducts ``u = x − μ(pa)`` exactly; its noise
prior is the Gaussian kernel density of the training residuals ``r_j`` (Silverman's bandwidth
``h``) mixed with a defensive Gaussian of the residuals' standard deviation ``s`` (weight
``w``, so a held-out residual in the tails is not scored as impossible). That defines a
likelihood comparable with other mechanisms' (``mechanisms="auto"`` compares them):

.. math::

    p(u) = (1 - w)\\,\\frac{1}{m} \\sum_{j=1}^{m} N(u - r_j;\\, 0, h^2) + w\\, N(u;\\, 0, s^2)

Sampling draws a residual plus kernel jitter, or (with probability ``w``) the defensive
Gaussian.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import NotFittedError

__all__ = ["DEFENSIVE_WEIGHT", "ResidualDensity"]

_LOG_2PI = math.log(2 * math.pi)
#: rows per block of the kernel-density evaluation (bounds the (rows, residuals, d) kernel).
_KDE_ROWS = 4096
#: the smallest log kernel ratio evaluated exactly (see :meth:`ResidualDensity.log_prob`).
_LOG_FLOOR = -80.0
#: weight ``w`` of the defensive Gaussian.
DEFENSIVE_WEIGHT = 0.05


class ResidualDensity(nn.Module):
    """Kernel density of at most ``max_residuals`` training residuals, per column of ``d``."""

    def __init__(self, dim: int, max_residuals: int) -> None:
        super().__init__()
        self.max_residuals = max_residuals
        self.register_buffer("residuals", torch.zeros(0, dim))
        self.register_buffer("bandwidth", torch.ones(dim))
        self.register_buffer("spread", torch.ones(dim))

    def allocate(self, n: int) -> None:
        """Room for ``n`` residuals (before loading saved weights)."""
        self.residuals = torch.zeros(n, self.residuals.shape[1])

    def fit(self, residual: torch.Tensor) -> None:
        """Keep (a fixed-seed subsample of) ``residual`` ``(n, d)`` and set ``h`` and ``s``."""
        residual = residual.detach().float()
        self.spread = residual.std(dim=0).clamp_min(1e-3)
        if len(residual) > self.max_residuals:
            g = torch.Generator(device=residual.device).manual_seed(0)
            keep = torch.randperm(len(residual), generator=g, device=residual.device)
            residual = residual[keep[: self.max_residuals]]
        self.residuals = residual.contiguous()
        scale = torch.minimum(residual.std(dim=0), _iqr(residual) / 1.34).clamp_min(1e-3)
        self.bandwidth = 0.9 * scale * len(residual) ** -0.2

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """``log p(u)`` summed over columns, shape ``(n,)``."""
        parts = []
        # log (1/m) Σ_j N(u − r_j; 0, h²) = logsumexp_j(−z_j²/2) − log h − ½ log 2π − log m
        # with z_j = u/h − r_j/h: the constants leave the (rows, residuals, d) kernel
        offset = self.bandwidth.log() + 0.5 * _LOG_2PI + math.log(len(self.residuals))
        scaled = self.residuals / self.bandwidth
        for first in range(0, len(u), _KDE_ROWS):
            block = u[first : first + _KDE_ROWS]
            kernel = -0.5 * ((block / self.bandwidth).unsqueeze(1) - scaled.unsqueeze(0)).square()
            # logsumexp, with every term below e^-80 of the largest taken as e^-80 (at most
            # m·e^-80 ≈ 1e-31 relative, invisible in float32): exp of an argument below
            # about -88 underflows by a slow path (48× slower here on 10⁶ arguments in
            # [-1000, 0] than in [-50, 0]: benchmarks/bank_constants.py), and most are far
            # below. The shift is detached: logsumexp's gradient does not depend on it.
            top = kernel.detach().amax(dim=1)
            ratios = (kernel - top.unsqueeze(1)).clamp_min(_LOG_FLOOR).exp()
            kde = ratios.sum(dim=1).log() + top - offset
            wide = -0.5 * (block / self.spread).square() - self.spread.log() - 0.5 * _LOG_2PI
            mixed = torch.logaddexp(
                kde + math.log(1 - DEFENSIVE_WEIGHT), wide + math.log(DEFENSIVE_WEIGHT)
            )
            parts.append(mixed.sum(-1))
        return torch.cat(parts) if parts else u.sum(-1)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws ``(n, d)`` from the density."""
        if not len(self.residuals):
            raise NotFittedError("this additive-noise mechanism has no residuals yet: fit the model first")
        dev = generator.device
        d = self.residuals.shape[1]
        idx = torch.randint(len(self.residuals), (n,), generator=generator, device=dev)
        jitter = torch.randn(n, d, generator=generator, device=dev)
        wide = torch.rand(n, 1, generator=generator, device=dev) < DEFENSIVE_WEIGHT
        kde = self.residuals.to(dev)[idx] + self.bandwidth.to(dev) * jitter
        return torch.where(wide, self.spread.to(dev) * jitter, kde)


def _iqr(values: torch.Tensor) -> torch.Tensor:
    q = torch.quantile(values, torch.tensor([0.25, 0.75], device=values.device), dim=0)
    return q[1] - q[0]
