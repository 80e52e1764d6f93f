"""Diffusion mechanisms: one conditional DDIM per node (DCM, Chao, Blöbaum & Kasiviswanathan 2023).

A node ``x`` with parents ``pa`` is modelled by a conditional noise network ``ε_θ(x_t, t, pa)``
trained with the simplified DDPM loss (Ho et al. 2020) on clean parents (DCM Algorithm 1)::

    L(θ) = E_{t ~ U{1..T}, ε ~ N(0, I)} ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t, pa)‖²

**Notation** (one convention throughout): ``β_1..β_T`` is the per-step noise schedule and
``ᾱ_t = Π_{i≤t} (1 − β_i)`` the *cumulative* product, ``ᾱ_0 = 1`` (the DCM slides write this
cumulative product as ``α_t``; here it is always ``ᾱ``). Level ``t = 0`` is the data, level
``T`` the latent; the network is trained, and evaluated, only at levels ``t ∈ {1..T}``.

- **Decoder** ``Dec(z, pa)`` — deterministic DDIM (Song et al. 2021; DCM Algorithm 2), from
  ``x_T = z ~ N(0, I)`` down a grid ``0 = τ_0 < τ_1 < … < τ_S = T`` (``S = T`` unless
  ``inference_steps`` is set), one step from level ``s = τ_i`` to ``r = τ_{i−1}``::

      x_r = √(ᾱ_r/ᾱ_s) x_s − ε_θ(x_s, s, pa) · (√(ᾱ_r(1−ᾱ_s)/ᾱ_s) − √(1−ᾱ_r))

- **Encoder** ``Enc(x, pa)`` — DDIM inversion from ``z_0 = x`` up the same grid, one step from
  ``r`` to ``s``::

      z_s = √(ᾱ_s/ᾱ_r) z_r + ε_θ(·, s, pa) · (√(1−ᾱ_s) − √(ᾱ_s(1−ᾱ_r)/ᾱ_r))

  This is the inversion step of the issue and of the DCM code (per step of the full grid,
  ``z_{t+1} = √(ᾱ_{t+1}/ᾱ_t) z_t + ε·(√(1−ᾱ_{t+1}) − √(ᾱ_{t+1}(1−ᾱ_t)/ᾱ_t))``). It is the
  exact inverse of the decoder step when ``ε`` is read at ``(z_s, s)``, the point the decoder
  reads it at. Plain inversion reads it at the known ``z_r`` instead (the first iterate,
  ``refine=0``); ``refine`` fixed-point iterations then re-read it at the current estimate of
  ``z_s``. The time argument is the step's upper level ``s`` in both directions (the level
  the network was trained on; ``t = 0`` never is), which makes the refined inversion the
  inverse of the decoder step by step.

- **Abduction** (DCM Algorithm 3): ``u = Enc(x, pa_factual)``; prediction decodes ``u`` with
  the counterfactual parents, ``x_cf = Dec(u, pa_cf)``. The engine copies non-descendants.
  Abduction is ``"approximate"``: deterministic, and ``Dec(Enc(x, pa), pa) ≈ x`` within
  :attr:`Diffusion.abduction_tolerance` (stated per node kind: 0.01 for scalar and vector
  nodes, 0.5 for images, whose round trip is a maximum over many pixels); after fitting,
  :class:`~deepscm.DeepSCM` reports the measured round-trip error on held-out rows in
  ``fit_info["abduction_error"]`` (as for every approximate mechanism), saved with the model.
- **Likelihood**: ``"none"``. No ``log p(x | pa)`` is provided (no probability-flow ODE bound),
  so ``DeepSCM.log_prob`` refuses diffusion nodes; training and validation use the denoising
  loss, and ``validation_score`` is that loss on a fixed-seed set of ``(t, ε)``.

Defaults follow the public DCM code (``patrickrchao/DiffusionBasedCausalModels``,
``model/diffusion.py``): ``T = 100``, ``β_t`` linear from ``1e-4`` to ``0.1``, an MLP ε-network
``(x_t, pa, time features) → 64 → 128 → d`` with SiLU activations. The per-node
standardisation of DCM is deepscm's encoding. DCM's optional classifier-free guidance and
latent clipping are not implemented (their defaults are off).

**Image nodes** ``(C, H, W)`` get a small conditional U-Net ε-network (Ho et al. 2020, scaled
down; :class:`ConditionalUNet`): one residual block per resolution of ``unet_channels``
(3×3 convolutions, GroupNorm, SiLU; 2× average-pool down, nearest-neighbour up, skip
concatenation), with the time features and the parents mapped by an MLP to an embedding
``e(t, pa)`` that modulates every block by FiLM, ``h ← h·(1 + γ(e)) + β(e)`` (Perez et al.
2018). The equations above apply pixel-wise; the noise ``u`` is the flattened ``x_T``.
Diff-SCM's anti-causal classifier guidance for image counterfactuals is in
:mod:`deepscm.guidance`; it uses :meth:`Diffusion.encode` with ``until=`` (partial
inversion) and the mechanism's ε-network.
"""

from __future__ import annotations

import copy
import math
from itertools import pairwise
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError, DataError
from .base import Mechanism, MechanismSpec, mlp, non_negative_int, positive_int, positive_ints

__all__ = ["ConditionalUNet", "Diffusion"]

#: seed of the fixed noise set of :meth:`Diffusion.validation_score`.
VALIDATION_SEED = 0
#: draws of ``(t, ε)`` per held-out row in :meth:`Diffusion.validation_score`.
VALIDATION_DRAWS = 4


def _number_in(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low < value < high):
        raise ConfigError(f"{name} must be a number in ({low}, {high}), got {value!r}")
    return float(value)


def _unit_interval(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < 1):
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


class Diffusion(Mechanism):
    """A conditional denoising-diffusion mechanism with DDIM sampling and inversion (DCM).

    See the module docstring for the equations. ``u ~ N(0, I_d)`` is DDIM's latent ``x_T``.

    Args:
        steps: ``T``, the number of diffusion steps of training (DCM code: 100).
        beta_start, beta_end: the linear ``β`` schedule ``β_t = linspace(beta_start,
            beta_end, T)`` (DCM code: 1e-4 to 0.1, so ``ᾱ_T ≈ 5.5e-3`` at ``T = 100``).
        hidden_features: widths of the ε-network MLP (SiLU activations; DCM code: 64, 128).
        time_frequencies: the time features are ``t/T`` plus ``sin`` and ``cos`` of
            ``k·π·t/T`` for ``k = 1..time_frequencies``.
        inference_steps: DDIM steps used to sample and abduct (an evenly spaced subset of
            ``0..T``); ``None`` uses all ``T``. Fewer steps are faster and less accurate.
        refine: fixed-point iterations per inversion step (0: plain DDIM inversion, the
            formula's first iterate). Each costs one more ε-network call per step.
        ema_decay: if > 0, sampling, abduction and validation use an exponential moving
            average of the ε-network's weights (``w̄ ← d_n·w̄ + (1−d_n)·w`` after step ``n``,
            ``d_n = min(d, (1+n)/(10+n))``, the usual warm-up, so short fits average recent
            weights rather than the initial ones; Ho et al. 2020 use 0.9999 over long runs);
            0 uses the live weights, as the DCM code does. The default 0.995 suits
            deepscm's fit defaults (hundreds to a few thousand steps): on the headline SCM
            suite (seed 0, at the fit's patience, before :attr:`patience_factor`) it lowered the
            interventional MMD on 8/8 SCMs and the counterfactual MSE on 7/8 against
            ``ema_decay=0`` (×100, e.g. diamond-nonlinear 10.9 → 8.3, Y-nonlinear 0.56 →
            0.33; chain-nonlinear 0.31 → 0.39 the exception); 0.999 was much worse on the
            1-D test SCM (too slow an average for a few hundred steps).
        max_batch_size: the ε-network takes one Adam step per slice of at most this many
            rows of each of the fit's mini-batches (``None``: one step per mini-batch). The
            denoising loss needs many steps (the DCM code trains on batches of 64). On the
            headline DCM suite (3 seeds, fit ``batch_size=512``), slices of 128 lowered the
            counterfactual MSE on 6 of 8 SCMs (×100: diamond-nonlinear 3.51 → 2.99,
            chain-nonlinear 0.33 → 0.27, triangle-nonlinear 1.13 → 0.80) and the
            interventional MMD on 7 of 8, for 2.0–2.7× the fit time
            (``benchmarks/results/scm_suite_diffusion.md`` against
            ``scm_suite_diffusion_unsliced.md``).
        unet_channels: image nodes only: the U-Net's widths, one resolution each (the
            image is halved between entries, so ``H`` and ``W`` must be divisible by
            ``2 ** (len(unet_channels) − 1)``; 28×28 with three entries gives 28, 14, 7).

    Cost: sampling takes ``S`` ε-network calls per node, abduction ``S·(1 + refine)``
    (``S = inference_steps or T``). Fewer steps are faster; the round trip stays within
    :attr:`abduction_tolerance` down to ``inference_steps=10`` (measured 4e-3) but not at 5
    (0.14), and the sampled conditionals narrow as ``S`` falls. Measured by
    ``benchmarks/diffusion_steps.py`` on ``x2 := x1 + softplus(x1)·u`` (2,000 rows, all
    defaults, one thread; the sd of ``x2 | do(x1 := 1)`` is 1.313): S = 100 / 50 / 20 / 10 / 5
    took 0.87 / 0.44 / 0.17 / 0.11 / 0.05 s for 3 × 1,000 counterfactuals, with mean
    |cf − truth| 0.132 / 0.129 / 0.121 / 0.104 / 0.073, round-trip max 4e-6 / 4e-6 / 2e-4 /
    4e-3 / 0.14 and sampled sd 1.18 / 1.17 / 1.13 / 1.07 / 0.94 — coarser grids trade
    distributional accuracy for speed.
    """

    abduction = "approximate"
    likelihood = "none"
    handles = frozenset({"continuous", "image"})
    validation_metric = "denoising_mse"
    #: the denoising loss keeps falling slowly and by little long after its first drop, and
    #: the counterfactuals keep improving with it. On the DCM diamond (nonlinear, seed 0) at
    #: the fit's patience the nodes stopped after 69–266 epochs, ``x4`` with a held-out loss of
    #: 0.1691 and a ``do(x3)`` counterfactual MSE of 18.7 (×100); trained to epoch 582 its
    #: loss was 0.1686 (0.3 % lower) and the counterfactual MSE 3.7. Ten times the patience
    #: lets the nodes use the epoch budget.
    patience_factor = 10
    #: scalar and vector nodes: the largest ``|Dec(Enc(x, pa), pa) − x|`` (standardised units)
    #: promised on data like the training data with the default ``refine=4``. Refined
    #: inversion is the decoder's exact inverse up to fixed-point convergence: the measured
    #: round trips of the contract suite, ``tests/test_diffusion.py`` and a near-deterministic
    #: node (``sin(2·pa) + 0.03·noise``) are 2e-6 to 1.3e-5; plain inversion (``refine=0``)
    #: misses by 0.06–0.08 and would not meet it.
    tabular_abduction_tolerance: ClassVar[float] = 0.01
    #: image nodes: the same promise, per pixel, for the default grid (all ``T`` levels) and
    #: for ``inference_steps ≥ 50`` with ``refine ≥ 2``; ``fit`` warns
    #: (:class:`~deepscm.errors.AbductionWarning`) when a fit misses it. The fixed point
    #: converges more slowly for a U-Net than for the MLP, the error is a maximum over every
    #: pixel of every image, and it grows as training sharpens the ε-network, fastest on coarse
    #: grids. On 28×28 Morpho-digits with the default U-Net (``benchmarks/morpho_diffusion.py``,
    #: refine 2, the first 100 test images): after 10,000 images × 20 epochs
    #: (``benchmarks/results/morpho_full/diffusion/morpho_diffusion.md``) the largest error is
    #: 0.02 at 100 steps, 0.06 at 50 and 2.99 at 20 (3.72 on the fit's 1,000 held-out rows at
    #: 20 steps); after 3,000 images × 8 epochs (``morpho_diffusion.md``) 0.01 / 0.04 / 0.12.
    #: Lightly trained 16×16 fits (``benchmarks/digit_class.py --tolerance``,
    #: ``digit_class.tolerance.md``: 500–2,000 images, 2–8 epochs) stay within it at 10–50
    #: steps with refine 2–4 (0.0005–0.27); plain inversion (``refine=0``) reaches 1.6. The
    #: typical pixel is far closer (mean reconstruction error 0.45 of 255 grey levels at 20
    #: steps after the long fit).
    image_abduction_tolerance: ClassVar[float] = 0.5

    @property
    def abduction_tolerance(self) -> float:  # type: ignore[override]
        """The round-trip promise of this node's kind: :attr:`image_abduction_tolerance` for an
        image node, :attr:`tabular_abduction_tolerance` otherwise (also before the node is
        built). ``DeepSCM.fit_info["abduction_error"]`` holds the value measured on each fit."""
        return self.image_abduction_tolerance if self.is_image else self.tabular_abduction_tolerance

    def __init__(
        self,
        steps: int = 100,
        beta_start: float = 1e-4,
        beta_end: float = 0.1,
        hidden_features: tuple[int, ...] | list[int] = (64, 128),
        time_frequencies: int = 4,
        inference_steps: int | None = None,
        refine: int = 4,
        ema_decay: float = 0.995,
        unet_channels: tuple[int, ...] | list[int] = (16, 32, 64),
        max_batch_size: int | None = 128,
    ) -> None:
        steps = positive_int("steps", steps)
        beta_start = _number_in("beta_start", beta_start, 0.0, 1.0)
        beta_end = _number_in("beta_end", beta_end, 0.0, 1.0)
        if beta_end < beta_start:
            raise ConfigError(f"beta_end ({beta_end}) must be ≥ beta_start ({beta_start})")
        if inference_steps is not None:
            inference_steps = positive_int("inference_steps", inference_steps)
            if inference_steps > steps:
                raise ConfigError(f"inference_steps ({inference_steps}) must be ≤ steps ({steps})")
        super().__init__(
            steps=steps,
            beta_start=beta_start,
            beta_end=beta_end,
            hidden_features=positive_ints("hidden_features", hidden_features),
            time_frequencies=non_negative_int("time_frequencies", time_frequencies),
            inference_steps=inference_steps,
            refine=non_negative_int("refine", refine),
            ema_decay=_unit_interval("ema_decay", ema_decay),
            unet_channels=positive_ints("unet_channels", unet_channels, allow_empty=False),
            max_batch_size=None if max_batch_size is None else positive_int("max_batch_size", max_batch_size),
        )

    # ------------------------------------------------------------------ layers and schedule
    def _build(self, spec: MechanismSpec) -> None:
        d, c = spec.x_dim, spec.context_dim
        n_time = 1 + 2 * self.hparams["time_frequencies"]
        if self.is_image:
            self.eps_net = ConditionalUNet(spec.x_shape, self.hparams["unet_channels"], n_time + c)
        else:
            self.eps_net = mlp(d + c + n_time, d, self.hparams["hidden_features"], activation=nn.SiLU)
        if self.hparams["ema_decay"] > 0:  # the weights used outside training
            self.ema_net = copy.deepcopy(self.eps_net).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("alpha_bar", self.schedule(
            self.hparams["steps"], self.hparams["beta_start"], self.hparams["beta_end"]
        ).float())

    @staticmethod
    def schedule(steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
        """``ᾱ_0 … ᾱ_T`` (float64), ``ᾱ_0 = 1``, ``ᾱ_t = Π_{i≤t}(1 − β_i)`` with linear ``β``."""
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])

    @property
    def is_image(self) -> bool:
        """Whether the node is an image ``(C, H, W)`` (modelled by the U-Net)."""
        return self.spec is not None and self.spec.x_shape is not None

    def grid(self) -> list[int]:
        """The levels ``0 = τ_0 < … < τ_S = T`` the DDIM passes visit."""
        T = self.hparams["steps"]
        S = self.hparams["inference_steps"] or T
        return sorted({round(i * T / S) for i in range(S + 1)})

    def epsilon(self, x_t: torch.Tensor, t: torch.Tensor | int, context: torch.Tensor) -> torch.Tensor:
        """``ε_θ(x_t, t, pa)``: the noise the network reads in ``x_t`` at level ``t``."""
        net = self.eps_net
        if self.hparams["ema_decay"] > 0 and not self.training:
            net = self.ema_net
        feats = [context, *self.time_features(t, x_t)]
        if self.is_image:
            return net(x_t, torch.cat(feats, dim=-1))
        return net(torch.cat([x_t, *feats], dim=-1))

    def time_features(self, t: torch.Tensor | int, x_t: torch.Tensor) -> list[torch.Tensor]:
        """``[t/T, sin(kπt/T), cos(kπt/T)]`` for ``k = 1..time_frequencies``, each ``(n, ·)``."""
        T = self.hparams["steps"]
        if not torch.is_tensor(t):
            t = torch.full((len(x_t),), t, device=x_t.device)
        tau = (t.to(x_t.dtype) / T).unsqueeze(-1)
        feats = [tau]
        k = self.hparams["time_frequencies"]
        if k:
            angle = math.pi * tau * torch.arange(1, k + 1, device=x_t.device, dtype=x_t.dtype)
            feats += [torch.sin(angle), torch.cos(angle)]
        return feats

    # ------------------------------------------------------------------ DDIM passes
    def level(self, fraction: float) -> int:
        """The grid level nearest to ``fraction·T`` (for partial inversion, e.g. 0.75)."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ConfigError(f"the fraction of the schedule must lie in (0, 1], got {fraction!r}")
        T = self.hparams["steps"]
        return min(self.grid(), key=lambda lv: abs(lv - fraction * T))

    def _levels(self, top: int | None) -> list[int]:
        levels = self.grid()
        if top is None:
            return levels
        if top not in levels[1:]:
            raise ConfigError(f"level {top!r} is not on the DDIM grid {levels[1:]}; use level(fraction)")
        return [lv for lv in levels if lv <= top]

    def decode(
        self, z: torch.Tensor, context: torch.Tensor, trajectory: bool = False,
        start: int | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """``Dec(z, pa)``: deterministic DDIM from ``x_T = z`` to ``x_0`` (module docstring);
        with ``trajectory=True`` the list ``[x_T, …, x_0]`` over the grid. ``start`` (a grid
        level, default ``T``) decodes a partial inversion ``z = x_start`` instead."""
        ab, levels, x = self.alpha_bar, self._levels(start), z
        path = [x]
        for s, r in pairwise(levels[::-1]):
            eps = self.epsilon(x, s, context)
            x = (ab[r] / ab[s]).sqrt() * x - eps * (
                (ab[r] * (1 - ab[s]) / ab[s]).sqrt() - (1 - ab[r]).sqrt()
            )
            path.append(x)
        return path if trajectory else x

    def encode(
        self, x: torch.Tensor, context: torch.Tensor, trajectory: bool = False,
        refine: int | None = None, until: int | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """``Enc(x, pa)``: DDIM inversion from ``z_0 = x`` to ``z_T`` (module docstring), with
        ``refine`` (default: the hyper-parameter) fixed-point iterations per step; with
        ``trajectory=True`` the list ``[z_0, …, z_T]`` over the grid. ``until`` (a grid level,
        default ``T``) stops part-way, as the Diff-SCM code does (:meth:`level`)."""
        refine = self.hparams["refine"] if refine is None else non_negative_int("refine", refine)
        ab, levels, z = self.alpha_bar, self._levels(until), x
        path = [z]
        for r, s in pairwise(levels):
            coef = (1 - ab[s]).sqrt() - (ab[s] * (1 - ab[r]) / ab[r]).sqrt()
            base = (ab[s] / ab[r]).sqrt() * z
            z_next = base + coef * self.epsilon(z, s, context)
            for _ in range(refine):  # fixed point of z_s = base + coef·ε_θ(z_s, s, pa)
                z_next = base + coef * self.epsilon(z_next, s, context)
            z = z_next
            path.append(z)
        return path if trajectory else z

    # ------------------------------------------------------------------ mechanism protocol
    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``u ~ N(0, I)``, shape ``(n, d)`` (an image's ``x_T`` flattened, ``d = C·H·W``)."""
        return torch.randn(n, self.spec.x_dim, generator=generator, device=generator.device)

    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x = Dec(u, pa)`` (DCM Algorithm 2; with counterfactual parents, Algorithm 3)."""
        if self.is_image:
            return self.decode(noise.reshape(len(noise), *self.spec.x_shape), context)
        return self.decode(noise, context)

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``u = Enc(x, pa)`` with the factual parents (deterministic; ``generator`` unused)."""
        if self.is_image:
            return self.encode(x, context).flatten(1)
        return self.encode(x, context)

    # ------------------------------------------------------------------ training protocol
    def denoising_loss(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator, draws: int = 1
    ) -> torch.Tensor:
        """The simplified DDPM loss, mean over rows, dimensions and ``draws`` of ``(t, ε)``."""
        if draws > 1:
            x, context = x.repeat(draws, *[1] * (x.dim() - 1)), context.repeat(draws, 1)
        T = self.hparams["steps"]
        t = torch.randint(1, T + 1, (len(x),), generator=generator, device=generator.device)
        eps = torch.randn(x.shape, generator=generator, device=generator.device)
        a = self.alpha_bar[t].view(-1, *[1] * (x.dim() - 1))
        x_t = a.sqrt() * x + (1 - a).sqrt() * eps
        return (eps - self.epsilon(x_t, t, context)).square().mean()

    def training_step(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Adam steps on the denoising loss (DCM Algorithm 1, clean parents): one per slice of
        at most ``max_batch_size`` rows of the fit's mini-batch; returns the row-weighted mean
        of the slices' losses (the mini-batch's loss, as one step would report it)."""
        (opt,) = optimizers
        size = self.hparams["max_batch_size"] or len(x)
        total = torch.zeros((), device=x.device)
        for xs, cs in zip(x.split(size), context.split(size)):
            total = total + len(xs) * self.optimise(opt, self.denoising_loss(xs, cs, generator))
            self._update_average()
        return total / len(x)

    def _update_average(self) -> None:
        """``w̄ ← d_n·w̄ + (1−d_n)·w`` (``ema_decay``; nothing when it is 0)."""
        if self.hparams["ema_decay"] > 0:
            # warm-up: an average over the ~n steps taken so far until 1/(1−d) steps are
            n = int(self.ema_updates)
            decay = min(self.hparams["ema_decay"], (1 + n) / (10 + n))
            self.ema_updates += 1
            with torch.no_grad():
                for ema, p in zip(self.ema_net.parameters(), self.eps_net.parameters()):
                    ema.lerp_(p, 1 - decay)

    def validation_score(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The denoising loss on a fixed-seed set of ``(t, ε)`` (seed :data:`VALIDATION_SEED`,
        :data:`VALIDATION_DRAWS` draws per row), so the score of unchanged weights is the same
        on every call and early stopping compares like with like."""
        g = torch.Generator(device=x.device).manual_seed(VALIDATION_SEED)
        return self.denoising_loss(x, context, g, draws=VALIDATION_DRAWS)


# ---------------------------------------------------------------------- the image ε-network
def _groups(channels: int) -> int:
    """GroupNorm groups: the largest of 8, 4, 2, 1 that divides ``channels``."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class _FiLMBlock(nn.Module):
    """Residual block ``x + conv(SiLU(FiLM(norm(conv(SiLU(norm(x)))), e)))`` (1×1 skip when
    the width changes), FiLM ``h·(1 + γ(e)) + β(e)``, the second convolution zero-initialised
    so every block starts as the identity."""

    def __init__(self, c_in: int, c_out: int, emb: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(_groups(c_in), c_in), nn.GroupNorm(_groups(c_out), c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.film = nn.Linear(emb, 2 * c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        gamma, beta = self.film(e)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + gamma) + beta
        return self.skip(x) + self.conv2(nn.functional.silu(h))


class ConditionalUNet(nn.Module):
    """A small U-Net ``ε(x_t, c)`` for images, ``c`` = time features and parents (FiLM).

    Args:
        shape: the image's ``(C, H, W)``.
        channels: widths, one resolution each (halved between entries).
        cond_dim: width of the conditioning vector ``c``.
    """

    def __init__(self, shape: tuple[int, ...], channels: list[int], cond_dim: int) -> None:
        super().__init__()
        if len(shape) != 3:
            raise DataError(f"an image node needs a (C, H, W) shape, got {tuple(shape)}")
        C, H, W = shape
        factor = 2 ** (len(channels) - 1)
        if H % factor or W % factor:
            raise DataError(
                f"images of {H}×{W} pixels cannot be halved {len(channels) - 1} times "
                f"(unet_channels={channels}): height and width must be divisible by {factor}. "
                "Pad or resize the images, or give Diffusion fewer unet_channels"
            )
        emb = 4 * channels[0]
        self.embed = nn.Sequential(mlp(cond_dim, emb, [emb], activation=nn.SiLU), nn.SiLU())
        self.stem = nn.Conv2d(C, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        width = channels[0]
        for c in channels:
            self.down.append(_FiLMBlock(width, c, emb))
            width = c
        self.middle = _FiLMBlock(width, width, emb)
        self.up = nn.ModuleList()
        for c in reversed(channels):
            self.up.append(_FiLMBlock(width + c, c, emb))
            width = c
        self.head = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(), nn.Conv2d(width, C, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        e = self.embed(cond)
        h, skips = self.stem(x), []
        for i, block in enumerate(self.down):
            if i:
                h = nn.functional.avg_pool2d(h, 2)
            h = block(h, e)
            skips.append(h)
        h = self.middle(h, e)
        for i, block in enumerate(self.up):
            if i:
                h = nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), e)
        return self.head(h)
