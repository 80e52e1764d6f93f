"""Conditional VAE mechanism with amortised abduction (Pawlowski, Castro & Glocker 2020, §2.2–2.3).

The mechanism of a high-dimensional node (an image, or a continuous vector) is split into a
non-invertible high-level part and an invertible low-level part:

.. math::

    x = h(u;\\, g(z, pa)) = \\mu(z, pa) + \\sigma(z, pa) \\odot u,
    \\qquad \\varepsilon = (z, u),\\; z \\sim N(0, I),\\; u \\sim N(0, I)

where the decoder ``g`` gives a per-pixel location and scale. Training maximises the ELBO of
DSCM eq. 3 with an encoder ``q(z | x, pa)``:

.. math::

    \\log p(x | pa) \\ge E_{q(z|x,pa)}[\\log p(x | z, pa)] - \\beta\\, KL(q(z|x,pa) \\,\\|\\, N(0, I))

with the KL weight warmed up linearly from 0 to ``beta`` over ``kl_warmup_steps`` steps.
Abduction follows DSCM eq. 5: ``z ~ q(z | x, pa)`` and ``u = (x − μ(z, pa)) ⊘ σ(z, pa)``;
prediction follows eq. 6: ``x̃ = μ(z, p̃a) + σ(z, p̃a) ⊙ u``. With ``scale="constant"`` the scale
does not depend on ``(z, pa)`` and eq. 6 reduces to ``x̃ = x + μ(z, p̃a) − μ(z, pa)``.

Images ``(C, H, W)`` use a convolutional encoder/decoder (each entry of ``channels`` is one
stride-2 layer, so ``H`` and ``W`` must be divisible by ``2 ** len(channels)``: 28×28 with two
layers gives 7×7 feature maps); vectors use MLPs. Parents enter the encoder beside the image
features and the decoder beside ``z``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, DataError
from .base import (
    Abduction, Likelihood, Mechanism, MechanismSpec, mlp, positive_int, positive_ints,
)

__all__ = ["ConditionalVAE"]

_LOG_2PI = math.log(2 * math.pi)


class ConditionalVAE(Mechanism):
    """Conditional VAE ``x = μ(z, pa) + σ(z, pa) ⊙ u`` with encoder ``q(z | x, pa)``.

    Args:
        latent_dim: width of ``z``.
        channels: convolutional widths for image nodes, one stride-2 layer each.
        hidden: MLP widths (vector nodes, and the dense layers around the image convolutions).
        scale: ``"learned"`` — σ depends on ``(z, pa)``; ``"constant"`` — one learned σ per
            pixel/feature, independent of ``(z, pa)``.
        beta: weight of the KL term (β-VAE); 1 gives the ELBO.
        kl_warmup_steps: optimiser steps over which the KL weight rises linearly from 0 to β.
        min_scale: floor on σ in the standardised units, which keeps the density of
            saturated pixels (all-black background) finite.
        eval_samples: draws of ``z`` per row when :meth:`log_prob` reports the ELBO in
            evaluation mode (deterministic: a fixed-seed generator).

    Example:
        >>> import deepscm as ds
        >>> scm = ds.DeepSCM("t -> x; i -> x",
        ...                  mechanisms={"x": ds.mechanisms.ConditionalVAE(latent_dim=16)})
    """

    abduction: ClassVar[Abduction] = "posterior"
    handles: ClassVar[frozenset[str]] = frozenset({"continuous", "image"})
    likelihood: ClassVar[Likelihood] = "bound"

    def __init__(
        self,
        latent_dim: int = 16,
        channels: tuple[int, ...] | list[int] = (32, 64),
        hidden: tuple[int, ...] | list[int] = (256,),
        scale: str = "learned",
        beta: float = 1.0,
        kl_warmup_steps: int = 500,
        min_scale: float = 0.02,
        eval_samples: int = 4,
    ) -> None:
        if scale not in ("learned", "constant"):
            raise ConfigError(f"ConditionalVAE scale must be 'learned' or 'constant', got {scale!r}")
        numbers = (beta, kl_warmup_steps, min_scale)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers) or (
            beta < 0 or not isinstance(kl_warmup_steps, int) or kl_warmup_steps < 0
            or not min_scale > 0
        ):
            raise ConfigError(
                "ConditionalVAE needs beta ≥ 0, an integer kl_warmup_steps ≥ 0 and min_scale > 0, got "
                f"beta={beta!r}, kl_warmup_steps={kl_warmup_steps!r}, min_scale={min_scale!r}"
            )
        super().__init__(
            latent_dim=positive_int("latent_dim", latent_dim),
            channels=positive_ints("channels", channels),
            hidden=positive_ints("hidden", hidden), scale=scale,
            beta=beta, kl_warmup_steps=kl_warmup_steps, min_scale=min_scale,
            eval_samples=positive_int("eval_samples", eval_samples),
        )
        self._steps = 0

    # ------------------------------------------------------------------ networks
    def _build(self, spec: MechanismSpec) -> None:
        h = self.hparams
        latent, hidden, out_per_pixel = h["latent_dim"], h["hidden"], 2 if h["scale"] == "learned" else 1
        self.x_shape: tuple[int, ...] = tuple(spec.x_shape) if spec.x_shape else (spec.x_dim,)
        if len(self.x_shape) == 3:
            self.encoder = _ConvEncoder(self.x_shape, h["channels"], hidden, spec.context_dim, latent)
            self.decoder = _ConvDecoder(
                self.x_shape, h["channels"], hidden, spec.context_dim, latent, out_per_pixel
            )
        else:
            self.encoder = _MLPEncoder(spec.x_dim, hidden, spec.context_dim, latent)
            self.decoder = _MLPDecoder(spec.x_dim, hidden, spec.context_dim, latent, out_per_pixel)
        if h["scale"] == "constant":
            self.log_scale = nn.Parameter(torch.zeros(self.x_shape))

    @property
    def latent_dim(self) -> int:
        return int(self.hparams["latent_dim"])

    def decode(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``g(z, pa)``: per-pixel location ``μ`` and scale ``σ``, each shaped like ``x``."""
        out = self.decoder(z, context)
        if self.hparams["scale"] == "constant":
            raw = self.log_scale.expand_as(out)
            loc = out
        else:
            loc, raw = out.chunk(2, dim=1)
        return loc, self.hparams["min_scale"] + F.softplus(raw)

    def encode(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | x, pa) = N(m, diag(s²))``: returns ``(m, s)``."""
        mean, raw = self.encoder(x, context).chunk(2, dim=-1)
        return mean, F.softplus(raw) + 1e-4

    # ------------------------------------------------------------------ likelihood
    def elbo(
        self, x: torch.Tensor, context: torch.Tensor, kl_weight: float = 1.0,
        n_samples: int = 1, generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-row ``E_q[log p(x|z,pa)] − w·KL(q‖p)`` (DSCM eq. 3), averaged over ``n_samples``
        reparametrised draws of ``z``; the KL of two Gaussians is analytic."""
        mean, std = self.encode(x, context)
        kl = 0.5 * (mean.square() + std.square() - 1.0 - 2.0 * std.log()).sum(-1)
        recon = 0.0
        for _ in range(n_samples):
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            loc, scale = self.decode(mean + std * eps, context)
            u = (x - loc) / scale
            recon = recon + (-0.5 * u.square() - scale.log() - 0.5 * _LOG_2PI).flatten(1).sum(-1)
        return recon / n_samples - kl_weight * kl

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The ELBO, a lower bound on ``log p(x | pa)`` (deterministic in evaluation mode)."""
        if self.training:
            return self.elbo(x, context)
        generator = torch.Generator(device=x.device).manual_seed(0)
        return self.elbo(x, context, n_samples=self.hparams["eval_samples"], generator=generator)

    def loss(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Negative ELBO with the warmed-up KL weight while training; the full ELBO otherwise
        (so early stopping watches the true bound)."""
        beta = float(self.hparams["beta"])
        if self.training:
            warmup = self.hparams["kl_warmup_steps"]
            weight = beta * min(1.0, (self._steps + 1) / warmup) if warmup else beta
            self._steps += 1
            return -self.elbo(x, context, kl_weight=weight).mean()
        generator = torch.Generator(device=x.device).manual_seed(0)
        return -self.elbo(x, context, kl_weight=beta, generator=generator).mean()

    # ------------------------------------------------------------------ noise ε = (z, u)
    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        width = self.latent_dim + int(math.prod(self.x_shape))
        return torch.randn(n, width, generator=generator, device=generator.device)

    def _split(self, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, u = noise[:, : self.latent_dim], noise[:, self.latent_dim :]
        return z, u.reshape(len(noise), *self.x_shape)

    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """DSCM eq. 6: ``x = μ(z, pa) + σ(z, pa) ⊙ u``."""
        z, u = self._split(noise)
        loc, scale = self.decode(z, context)
        return loc + scale * u

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """DSCM eq. 5: ``z ~ q(z | x, pa)``, then ``u = (x − μ(z, pa)) ⊘ σ(z, pa)`` exactly."""
        mean, std = self.encode(x, context)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + std * eps
        loc, scale = self.decode(z, context)
        return torch.cat([z, ((x - loc) / scale).flatten(1)], dim=1)

    def counterfactual_shortcut(
        self, x: torch.Tensor, context: torch.Tensor, new_context: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """With constant scale, eq. 6 reduces to ``x̃ = x + μ(z, p̃a) − μ(z, pa)``."""
        if self.hparams["scale"] != "constant":
            raise DataError("the eq. 6 shortcut needs ConditionalVAE(scale='constant')")
        return x + self.decode(z, new_context)[0] - self.decode(z, context)[0]

    def extra_config(self) -> dict[str, Any]:
        return {"steps": self._steps}

    def load_extra_config(self, state: dict[str, Any]) -> None:
        self._steps = int(state.get("steps", 0))


# ---------------------------------------------------------------------- networks
class _MLPEncoder(nn.Module):
    def __init__(self, x_dim: int, hidden: list[int], context_dim: int, latent: int) -> None:
        super().__init__()
        self.net = mlp(x_dim + context_dim, 2 * latent, hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, context], dim=-1))


class _MLPDecoder(nn.Module):
    def __init__(self, x_dim: int, hidden: list[int], context_dim: int, latent: int, per: int) -> None:
        super().__init__()
        self.net = mlp(latent + context_dim, per * x_dim, hidden)

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, context], dim=-1))


def _feature_size(shape: tuple[int, ...], channels: list[int]) -> tuple[int, int]:
    if not channels:
        raise DataError("an image node needs at least one convolutional layer: give channels=(32, …)")
    factor = 2 ** len(channels)
    _, height, width = shape
    if height % factor or width % factor:
        raise DataError(
            f"images of {height}×{width} pixels cannot pass {len(channels)} stride-2 layers "
            f"(channels={channels}): height and width must be divisible by {factor}. "
            "Pad or resize the images, or give ConditionalVAE fewer channels"
        )
    return height // factor, width // factor


class _ConvEncoder(nn.Module):
    """Stride-2 4×4 convolutions, then a dense head that also sees the parents."""

    def __init__(self, shape, channels, hidden, context_dim, latent) -> None:
        super().__init__()
        fh, fw = _feature_size(shape, channels)
        layers: list[nn.Module] = []
        width = shape[0]
        for c in channels:
            layers += [nn.Conv2d(width, c, 4, stride=2, padding=1), nn.LeakyReLU(0.1)]
            width = c
        self.conv = nn.Sequential(*layers)
        self.head = mlp(width * fh * fw + context_dim, 2 * latent, hidden, nn.LeakyReLU)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.conv(x).flatten(1), context], dim=-1))


class _ConvDecoder(nn.Module):
    """A dense layer from ``(z, pa)`` to feature maps, then stride-2 transposed convolutions."""

    def __init__(self, shape, channels, hidden, context_dim, latent, per) -> None:
        super().__init__()
        fh, fw = _feature_size(shape, channels)
        self.feature_shape = (channels[-1], fh, fw)
        self.dense = nn.Sequential(
            mlp(latent + context_dim, math.prod(self.feature_shape), hidden, nn.LeakyReLU),
            nn.LeakyReLU(0.1),
        )
        layers: list[nn.Module] = []
        widths = list(reversed(channels))
        for i, c in enumerate(widths):
            last = i == len(widths) - 1
            out = shape[0] * per if last else widths[i + 1]
            layers.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1))
            if not last:
                layers.append(nn.LeakyReLU(0.1))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        features = self.dense(torch.cat([z, context], dim=-1))
        return self.deconv(features.reshape(len(z), *self.feature_shape))
