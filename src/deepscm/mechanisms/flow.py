"""Conditional normalizing flows (zuko): invertible mechanisms with exact abduction.

``x = T⁻¹(u; pa)`` with ``u ~ N(0, I)`` and ``T`` a stack of monotonic transforms whose
parameters are produced from the parents. Abduction is the forward map, ``u = T(x; pa)``
(Pawlowski et al. 2020, eq. 1), and the likelihood follows from the change of variables,
``log p(x | pa) = log N(T(x; pa)) + log |det ∂T/∂x|``.

- A scalar node uses ``T = S_k ∘ … ∘ S_1 ∘ A⁻¹`` with ``A(v) = μ(pa) + σ(pa)·v``, i.e.
  ``x = μ(pa) + σ(pa)·S⁻¹(u; pa)``: a conditional location-scale map (learned directly as
  ``μ`` and ``log σ``, both O(1) in standardised units) and ``k`` rational-quadratic splines
  ``S`` (Durkan et al. 2019) that shape the noise. The location comes from a ReLU MLP with a
  linear skip path, so it extrapolates linearly beyond the training range; ``log σ`` and the
  spline parameters come from a tanh MLP, which saturates, so the noise shape stays bounded
  out of range (a counterfactual at an unseen parent value is a location shift, not an
  arbitrary distortion). All are zuko transforms whose
  parameters come from one MLP of the parents. (For one feature, zuko's masked autoregressive
  conditioner sees only the parents anyway; a plain MLP computes the same at a third of the
  cost.) ``flow="maf"`` keeps only ``A``: a heteroscedastic Gaussian.
- A vector node uses zuko's autoregressive ``NSF`` or ``MAF`` with the parents as context.
"""

from __future__ import annotations

import torch
import zuko
from torch import nn
from zuko.transforms import ComposedTransform, MonotonicAffineTransform, MonotonicRQSTransform

from ..errors import ConfigError
from .base import Mechanism, MechanismSpec, SkipMLP, mlp, positive_int, positive_ints

__all__ = ["ConditionalFlow"]

_VECTOR_FLOWS = {"nsf": zuko.flows.NSF, "maf": zuko.flows.MAF}


class ConditionalFlow(Mechanism):
    """A conditional normalizing flow ``p(x | pa)``; unconditional for root nodes.

    Args:
        flow: ``"nsf"`` (affine + monotonic rational-quadratic splines) or ``"maf"`` (affine).
        transforms: number of spline layers (scalar nodes) or flow layers (vector nodes).
        hidden_features: widths of the MLP that maps the parents to transform parameters.
        bins: spline bins.
    """

    abduction = "exact"

    def __init__(
        self,
        flow: str = "nsf",
        transforms: int = 1,
        hidden_features: tuple[int, ...] | list[int] = (64, 64),
        bins: int = 16,
    ) -> None:
        if flow not in _VECTOR_FLOWS:
            raise ConfigError(f"unknown flow {flow!r}; choose one of {sorted(_VECTOR_FLOWS)}")
        super().__init__(
            flow=flow,
            transforms=positive_int("transforms", transforms),
            hidden_features=positive_ints("hidden_features", hidden_features),
            bins=positive_int("bins", bins),
        )

    @property
    def _splines(self) -> int:
        return self.hparams["transforms"] if self.hparams["flow"] == "nsf" else 0

    def _build(self, spec: MechanismSpec) -> None:
        if spec.x_dim > 1:
            kwargs = dict(
                features=spec.x_dim,
                context=spec.context_dim,
                transforms=self.hparams["transforms"],
                hidden_features=tuple(self.hparams["hidden_features"]),
            )
            if self.hparams["flow"] == "nsf":
                kwargs["bins"] = self.hparams["bins"]
            self.vector_flow = _VECTOR_FLOWS[self.hparams["flow"]](**kwargs)
            return
        n_shape = 1 + self._splines * (3 * self.hparams["bins"] - 1)
        hidden = self.hparams["hidden_features"]
        if spec.context_dim:
            self.location = SkipMLP(spec.context_dim, 1, hidden)
            self.shape = mlp(spec.context_dim, n_shape, hidden, activation=nn.Tanh)
            nn.init.zeros_(self.shape[-1].weight)
            nn.init.zeros_(self.shape[-1].bias)
        else:
            self.root_params = nn.Parameter(torch.zeros(1 + n_shape))

    def _transform(self, context: torch.Tensor) -> ComposedTransform | zuko.distributions.NormalizingFlow:
        """``T(·; pa)`` mapping data to noise (scalar nodes)."""
        if self.spec.context_dim:
            params = torch.cat([self.location(context), self.shape(context)], dim=-1)
        else:
            params = self.root_params.expand(len(context), -1)
        params = params.unsqueeze(1)  # (n, 1 feature, p)
        parts = [MonotonicAffineTransform(params[..., 0], params[..., 1]).inv]  # (x - μ) / σ
        k = self.hparams["bins"]
        for i in range(self._splines):
            block = params[..., 2 + i * (3 * k - 1) : 2 + (i + 1) * (3 * k - 1)]
            parts.append(MonotonicRQSTransform(block[..., :k], block[..., k : 2 * k], block[..., 2 * k :]))
        return ComposedTransform(*parts)

    def _vector_dist(self, context: torch.Tensor) -> zuko.distributions.NormalizingFlow:
        return self.vector_flow(context) if context.shape[-1] else self.vector_flow()

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.spec.x_dim > 1:
            return self._vector_dist(context).log_prob(x)
        u, ladj = self._transform(context).call_and_ladj(x)
        return torch.distributions.Normal(0.0, 1.0).log_prob(u).sum(-1) + ladj.sum(-1)

    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.spec.x_dim, generator=generator, device=generator.device)

    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.spec.x_dim > 1:
            return self._vector_dist(context).transform.inv(noise)
        return self._transform(context).inv(noise)

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.spec.x_dim > 1:
            return self._vector_dist(context).transform(x)
        return self._transform(context)(x)
