"""Hierarchical VAE mechanism for images: a ladder of latents ``z_1..z_L`` (Melistas et al. 2024).

The image is generated top-down from ``L`` latent layers (``z_L`` the top) and its parents,

.. math::

    z_L = m_L(pa) + s_L(pa) \\odot \\varepsilon_L, \\qquad
    z_l = m_l(z_{>l}, pa) + s_l(z_{>l}, pa) \\odot \\varepsilon_l \\;(l < L), \\qquad
    x = \\mu(z, pa) + \\sigma(z, pa) \\odot u,

with ``ε_l ~ N(0, I)``, ``u ~ N(0, I)``: the exogenous noise is ``(ε_1, …, ε_L, u)``. With
``prior="exogenous"`` the prior ignores the parents (``m_L = 0, s_L = 1``, and ``m_l, s_l``
depend on ``z_{>l}`` only), so ``z`` is exogenous as in the DSCM conditional VAE; with
``prior="conditional"`` the prior is ``p(z | pa)`` and ``z`` becomes a mediator of the parents'
effect (the set-up of the HVAE in the counterfactual-image benchmark of Melistas et al. 2024,
after De Sousa Ribeiro et al. 2023). Inference is top-down (the ladder VAE of Sønderby et al.
2016): a convolutional bottom-up pass gives features ``h(x, pa)``, then
``q(z_l | h, z_{>l}, pa)`` from ``L`` down to 1. Training maximises

.. math::

    \\log p(x | pa) \\ge E_q[\\log p(x | z, pa)]
        - \\beta \\sum_l E_q\\, KL(q(z_l | x, z_{>l}, pa) \\,\\|\\, p(z_l | z_{>l}, pa)),

each KL analytic between Gaussians given the sampled ``z_{>l}``, warmed up as in
:class:`~deepscm.mechanisms.ConditionalVAE`.

Abduction (amortised, DSCM eq. 5): ``z ~ q(z | x, pa)`` top-down, ``ε_l = (z_l − m_l)/s_l`` with
the *factual* prior, and ``u = (x − μ(z, pa)) ⊘ σ(z, pa)`` exactly. Prediction (eq. 6) runs the
structural equations above with the counterfactual parents: with the exogenous prior ``z`` is
kept and only the decoder sees ``p̃a``; with the conditional prior ``z̃_l = m_l(z̃_{>l}, p̃a) +
s_l(z̃_{>l}, p̃a) ⊙ ε_l`` as well. The convolutional encoder and decoder, the location-scale
likelihood and the ``scale`` options are those of :class:`ConditionalVAE` (imported, shared).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .base import Abduction, Likelihood, MechanismSpec, mlp, positive_ints
from .vae import _LOG_2PI, ConditionalVAE, _ConvDecoder, _ConvEncoder

__all__ = ["PRIORS", "HierarchicalVAE"]

#: the two priors of the latent ladder: ``p(z)`` (exogenous) or ``p(z | pa)`` (conditional).
PRIORS = ("exogenous", "conditional")


def _gaussian(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, raw = out.chunk(2, dim=-1)
    return mean, F.softplus(raw) + 1e-4


def _kl(mq: torch.Tensor, sq: torch.Tensor, mp: torch.Tensor, sp: torch.Tensor) -> torch.Tensor:
    """``KL(N(mq, sq²) ‖ N(mp, sp²))`` summed over the last dimension."""
    return (torch.log(sp / sq) + (sq.square() + (mq - mp).square()) / (2 * sp.square()) - 0.5).sum(-1)


class HierarchicalVAE(ConditionalVAE):
    """Ladder VAE ``x = μ(z_1..z_L, pa) + σ ⊙ u`` with prior ``p(z)`` or ``p(z | pa)``.

    Args:
        latent_dims: widths ``(d_1, …, d_L)`` of the latent layers, bottom to top (``L ≥ 1``;
            2–3 layers suit 28×28 digits).
        prior: ``"exogenous"`` — ``p(z)``; ``"conditional"`` — ``p(z | pa)`` (module docstring).
        channels, hidden, scale, beta, kl_warmup_steps, min_scale, eval_samples: as for
            :class:`ConditionalVAE` (the decoder sees all layers ``z_1..z_L`` and the parents).

    Example:
        >>> import deepscm as ds
        >>> from deepscm.mechanisms.hvae import HierarchicalVAE
        >>> scm = ds.DeepSCM("t -> x; i -> x",
        ...                  mechanisms={"x": HierarchicalVAE(latent_dims=(16, 8))})
    """

    abduction: ClassVar[Abduction] = "posterior"
    handles: ClassVar[frozenset[str]] = frozenset({"image"})
    likelihood: ClassVar[Likelihood] = "bound"

    def __init__(
        self,
        latent_dims: tuple[int, ...] | list[int] = (16, 8),
        prior: str = "exogenous",
        channels: tuple[int, ...] | list[int] = (32, 64),
        hidden: tuple[int, ...] | list[int] = (256,),
        scale: str = "constant",
        beta: float = 1.0,
        kl_warmup_steps: int = 500,
        min_scale: float = 0.02,
        eval_samples: int = 4,
    ) -> None:
        dims = positive_ints("latent_dims", latent_dims, allow_empty=False)
        if prior not in PRIORS:
            raise ConfigError(f"HierarchicalVAE prior must be one of {PRIORS}, got {prior!r}")
        super().__init__(
            latent_dim=sum(dims), channels=channels, hidden=hidden, scale=scale, beta=beta,
            kl_warmup_steps=kl_warmup_steps, min_scale=min_scale, eval_samples=eval_samples,
        )
        shared = {k: v for k, v in self.hparams.items() if k != "latent_dim"}
        self.hparams = {"latent_dims": dims, "prior": prior, **shared}

    @property
    def latent_dim(self) -> int:
        """Total latent width ``d_1 + … + d_L`` (the noise is ``(ε_1..ε_L, u)``)."""
        return sum(self.hparams["latent_dims"])

    # ------------------------------------------------------------------ networks
    def _build(self, spec: MechanismSpec) -> None:
        if spec.x_shape is None or len(spec.x_shape) != 3:
            raise ConfigError("HierarchicalVAE models image nodes (C, H, W); use ConditionalVAE "
                              "for continuous vectors")
        h = self.hparams
        dims, hidden, c = h["latent_dims"], h["hidden"], spec.context_dim
        self.x_shape: tuple[int, ...] = tuple(spec.x_shape)
        total = sum(dims)
        features = 2 * total  # bottom-up features h(x, pa)
        self.encoder = _ConvEncoder(self.x_shape, h["channels"], hidden, c, total)
        self.decoder = _ConvDecoder(self.x_shape, h["channels"], hidden, c, total,
                                    2 if h["scale"] == "learned" else 1)
        if h["scale"] == "constant":
            self.log_scale = nn.Parameter(torch.zeros(self.x_shape))
        conditional = h["prior"] == "conditional"
        posterior, prior = [], []
        for level, d in enumerate(dims):  # level l uses the layers above it, z_{>l}
            above = sum(dims[level + 1:])
            posterior.append(mlp(features + above + c, 2 * d, hidden, nn.LeakyReLU))
            prior_in = above + (c if conditional else 0)
            prior.append(mlp(prior_in, 2 * d, hidden, nn.LeakyReLU) if prior_in else None)
        self.posterior = nn.ModuleList(posterior)
        self.prior_nets = nn.ModuleList([p if p is not None else nn.Identity() for p in prior])
        self._has_prior_net = [p is not None for p in prior]

    def _prior(self, level: int, above: torch.Tensor, context: torch.Tensor):
        """``(m_l, s_l)`` of ``p(z_l | z_{>l}[, pa])``; ``N(0, I)`` for an exogenous top layer."""
        d = self.hparams["latent_dims"][level]
        if not self._has_prior_net[level]:
            zeros = torch.zeros(len(context), d, device=context.device, dtype=context.dtype)
            return zeros, torch.ones_like(zeros)
        parts = [above] + ([context] if self.hparams["prior"] == "conditional" else [])
        return _gaussian(self.prior_nets[level](torch.cat(parts, dim=-1)))

    def _above(self, zs: dict[int, torch.Tensor], level: int, ref: torch.Tensor) -> torch.Tensor:
        L = len(self.hparams["latent_dims"])
        parts = [zs[j] for j in range(level + 1, L)]
        return torch.cat(parts, dim=-1) if parts else ref.new_zeros(len(ref), 0)

    def _posterior(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None,
        mean_only: bool = False,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """Top-down ``z ~ q(z | x, pa)``: the concatenated ``z`` (bottom to top) and per layer
        ``(z_l, mq, sq, mp, sp)``."""
        feats = self.encoder(x, context)
        zs: dict[int, torch.Tensor] = {}
        terms: dict[int, tuple[torch.Tensor, ...]] = {}
        for level in reversed(range(len(self.hparams["latent_dims"]))):
            above = self._above(zs, level, context)
            mq, sq = _gaussian(self.posterior[level](torch.cat([feats, above, context], dim=-1)))
            if mean_only:
                z = mq
            else:
                eta = torch.randn(mq.shape, generator=generator, device=mq.device, dtype=mq.dtype)
                z = mq + sq * eta
            mp, sp = self._prior(level, above, context)
            zs[level], terms[level] = z, (z, mq, sq, mp, sp)
        order = range(len(zs))
        return torch.cat([zs[j] for j in order], dim=-1), [terms[j] for j in order]

    def _latents(self, eps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``z`` from the standardised ``ε`` by the prior's structural equations, top-down."""
        dims = self.hparams["latent_dims"]
        offsets = [sum(dims[:j]) for j in range(len(dims))]
        zs: dict[int, torch.Tensor] = {}
        for level in reversed(range(len(dims))):
            mp, sp = self._prior(level, self._above(zs, level, context), context)
            zs[level] = mp + sp * eps[:, offsets[level]: offsets[level] + dims[level]]
        return torch.cat([zs[j] for j in range(len(dims))], dim=-1)

    # ------------------------------------------------------------------ likelihood
    def encode(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The top-down posterior read at its means: ``(m, s)`` of every layer, concatenated
        bottom to top (``decode(m, pa)`` is the reconstruction)."""
        _, terms = self._posterior(x, context, None, mean_only=True)
        return torch.cat([t[1] for t in terms], -1), torch.cat([t[2] for t in terms], -1)

    def elbo(
        self, x: torch.Tensor, context: torch.Tensor, kl_weight: float = 1.0,
        n_samples: int = 1, generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-row ``E_q[log p(x|z,pa)] − w·Σ_l KL_l`` (module docstring), averaged over
        ``n_samples`` top-down draws."""
        total = 0.0
        for _ in range(n_samples):
            z, terms = self._posterior(x, context, generator)
            kl = sum(_kl(mq, sq, mp, sp) for _, mq, sq, mp, sp in terms)
            loc, scale = self.decode(z, context)
            u = (x - loc) / scale
            recon = (-0.5 * u.square() - scale.log() - 0.5 * _LOG_2PI).flatten(1).sum(-1)
            total = total + recon - kl_weight * kl
        return total / n_samples

    # ------------------------------------------------------------------ noise (ε_1..ε_L, u)
    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x = μ(z, pa) + σ(z, pa) ⊙ u`` with ``z`` from ``ε`` by the prior (eq. 6)."""
        eps, u = self._split(noise)
        loc, scale = self.decode(self._latents(eps, context), context)
        return loc + scale * u

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``z ~ q(z | x, pa)``; ``ε_l = (z_l − m_l)/s_l`` under the factual prior;
        ``u = (x − μ(z, pa)) ⊘ σ(z, pa)`` (DSCM eq. 5)."""
        z, terms = self._posterior(x, context, generator)
        eps = torch.cat([(zl - mp) / sp for zl, _, _, mp, sp in terms], dim=-1)
        loc, scale = self.decode(z, context)
        return torch.cat([eps, ((x - loc) / scale).flatten(1)], dim=1)
