"""Linear mechanism fitted in closed form: ``x = W·pa + b + u``.

Ordinary least squares gives ``(W, b)``; :meth:`LinearGaussian.after_fit` solves it on the
training rows, so no gradient steps are taken. The noise ``u`` is either Gaussian,
``u = σ ⊙ ε`` with ``ε ~ N(0, I)`` and ``σ`` the residual standard deviation (the
maximum-likelihood linear-Gaussian conditional, ``noise="gaussian"``), or the kernel density
of the training residuals (``noise="kde"``,
:class:`~deepscm.mechanisms.residual_density.ResidualDensity`), which keeps a skewed or
heavy-tailed noise shape. Abduction is exact (``u = x − W·pa − b``, standardised by ``σ`` for
Gaussian noise) and the location extrapolates linearly, which makes it the right choice
wherever the data are linear — the textbook counterfactual far outside the data included.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError
from .base import Mechanism, MechanismSpec, positive_int
from .residual_density import ResidualDensity

__all__ = ["LinearGaussian"]

_LOG_2PI = math.log(2 * math.pi)
_NOISES = ("gaussian", "kde")


class LinearGaussian(Mechanism):
    """``x = W·pa + b + u`` with ``(W, b)`` by least squares (closed form).

    Args:
        noise: ``"gaussian"`` (``u = σ ⊙ ε``) or ``"kde"`` (kernel density of the residuals).
        max_residuals: for ``noise="kde"``, at most this many training residuals form the
            density.
    """

    abduction = "exact"
    likelihood = "exact"

    def __init__(self, noise: str = "gaussian", max_residuals: int = 2_000) -> None:
        if noise not in _NOISES:
            raise ConfigError(f"noise must be one of {_NOISES}, got {noise!r}")
        super().__init__(noise=noise, max_residuals=positive_int("max_residuals", max_residuals))

    def n_features(self, context_dim: int) -> int:
        """How many regressors :meth:`features` makes of ``context_dim`` parent columns."""
        return context_dim

    def features(self, context: torch.Tensor) -> torch.Tensor:
        """The regressors ``φ(pa)`` of the least-squares fit: the parents themselves."""
        return context

    def _build(self, spec: MechanismSpec) -> None:
        self.register_buffer("weight", torch.zeros(spec.x_dim, self.n_features(spec.context_dim)))
        self.register_buffer("bias", torch.zeros(spec.x_dim))
        self.register_buffer("log_sigma", torch.zeros(spec.x_dim))
        if self.hparams["noise"] == "kde":
            self.noise = ResidualDensity(spec.x_dim, self.hparams["max_residuals"])

    def after_fit(self, x: torch.Tensor, context: torch.Tensor) -> None:
        """Least squares on the training rows: ``[φ(pa), 1] · [Wᵀ; b] ≈ x``; ``σ`` the residual
        standard deviation (floored at 1e-6 of the data's unit scale); for ``noise="kde"`` the
        density of the residuals."""
        regressors = self.features(context.double())
        design = torch.cat([regressors, torch.ones(len(x), 1, dtype=torch.float64, device=x.device)], dim=1)
        # gelsd (SVD): the minimum-norm least-squares solution also when regressors are
        # collinear; torch's default gelsy returned a wrong fit when two columns are equal (a
        # duplicated parent, a binary parent and its square: residual sd 2.03 where the
        # noise's is 0.10; tests/test_auto.py)
        solution = torch.linalg.lstsq(design.cpu(), x.double().cpu(), driver="gelsd").solution.to(x.device)
        residual = x.double() - design @ solution
        self.weight = solution[:-1].T.float().contiguous()
        self.bias = solution[-1].float()
        self.log_sigma = residual.std(dim=0, correction=0).clamp_min(1e-6).log().float()
        if self.hparams["noise"] == "kde":
            self.noise.fit(residual.float())

    def extra_config(self) -> dict[str, Any]:
        return {"n_residuals": int(self.noise.residuals.shape[0])} if self.hparams["noise"] == "kde" else {}

    def load_extra_config(self, state: dict[str, Any]) -> None:
        if self.hparams["noise"] == "kde":
            self.noise.allocate(int(state["n_residuals"]))

    def mean(self, context: torch.Tensor) -> torch.Tensor:
        return self.features(context) @ self.weight.T + self.bias

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.hparams["noise"] == "kde":
            return self.noise.log_prob(x - self.mean(context))
        u = (x - self.mean(context)) / self.log_sigma.exp()
        return (-0.5 * u.square() - self.log_sigma - 0.5 * _LOG_2PI).sum(-1)

    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.hparams["noise"] == "kde":
            return self.noise.sample(n, generator)
        return torch.randn(n, self.spec.x_dim, generator=generator, device=generator.device)

    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.hparams["noise"] == "kde":
            return self.mean(context) + noise
        return self.mean(context) + self.log_sigma.exp() * noise

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.hparams["noise"] == "kde":
            return x - self.mean(context)
        return (x - self.mean(context)) / self.log_sigma.exp()
