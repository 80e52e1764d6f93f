"""CCGM, the Causal Counterfactual Generative Model (Bhat, Jiang, Pooladzandi & Pottie,
"De-Biasing Generative Models using Counterfactual Methods", §V), a CausalVAE variant.

Labels ``u`` (``d`` columns) are normalised to ``u_n ∈ [−1, 1]`` by the training range. The
causal layer is a linear SCM **without leakage**, ``z = Aᵀz`` (eq. 11) with ``A = G + B``
(eq. 12): ``G`` the DAG part (learned, or masked to a given graph; columns of exogenous
variables are zero) and ``B`` the fixed diagonal with 1 for exogenous and 0 for endogenous
variables. Each endogenous variable goes through a non-linear mask ``z_i = g_i(A_i ∘ z)``
(eq. 13), here ``g_i(v) = Σ_j v_j + MLP_i(v)`` so that the linear model of eq. 2 is the
``MLP = 0`` case. Exogenous entries pass unchanged, so the endogenous ones are functions of
the exogenous ones only, and the layer is iterated ``d`` times (enough for any DAG).

Training objective (the weights in :data:`DEFAULT_WEIGHTS`):

- ``elbo``: reconstruction ``‖û − u_n‖²`` (and ``image``: ``‖x̂ − x‖²`` summed over pixels)
  plus ``kl``: ``KL(q(z | u) ‖ N(0, I))`` (eq. 1);
- ``label`` (eq. 4): ``Σ_i ‖u_i − f_i(A_i ∘ u)‖²`` on the labels (``f`` linear in pre-training);
- ``latent`` (eq. 5): ``Σ_i ‖z_i − g_i(A_i ∘ z)‖²`` on the encoder's latents;
- ``prior``: the label prior ``p(ẑ | u) = N(u_n, I)``, ``½‖ẑ − u_n‖²``;
- ``sparsity`` (concept-wise image decoder only; not in the paper): an L1 penalty on how far
  each *cause*'s logits ``D_i(ẑ_i)`` vary about their batch mean, so that an effect's pixels
  are drawn by the effect's own latent and a removed edge stops moving them (see
  :meth:`CCGM._cause_sparsity`);
- NOTEARS (eq. 6–7): ``λ H(G) + (c/2) H(G)²`` with ``H(G) = tr[(I + G∘G)^d] − d``, updated
  after each epoch by :class:`AugmentedLagrangian` (eq. 8; η = 2, γ = 0.9).

Schedule: ``pretrain_epochs`` (5) of the linear label→label task fit ``A``, then everything
trains jointly. Variants: ``"label"`` (label→label: encoder → causal layer → an elementwise
decoder per label), ``"image"`` (the same plus an image decoder after the causal layer: by
default concept-wise as in CausalVAE, ``x̂ = σ(b + Σ_i D_i(ẑ_i))``, so that a concept's pixels
depend only on its own latent; ``image_decoder="joint"`` is one convolutional decoder of all
latents) and ``"tabular"`` (no VAE: the label masks ``f`` generate the data).

A counterfactual (de-biased) model is :meth:`CCGM.without_edges`: entries of ``G`` are set to
zero after training, with no retraining; the child then reads ``0`` (the normalised mid-range,
see :meth:`CCGM.edge_reference`) through that edge and stays a function of its other parents.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .._version import __version__
from ..errors import ConfigError, DataError, DeepSCMError, GraphError, ModelFileError, NotFittedError, TrainingError
from ..graph import CausalGraph, GraphLike
from ..io import read_bundle, write_bundle

__all__ = ["CCGM", "AugmentedLagrangian", "CAUSE_TOL", "DEFAULT_WEIGHTS", "IMAGE_DECODERS", "VARIANTS", "notears"]

VARIANTS = ("label", "image", "tabular")
NOISES = ("none", "residual")
#: image decoders of the ``"image"`` variant: ``"concept"`` (a sub-decoder per latent, logits
#: summed) or ``"joint"`` (one convolutional decoder reading every latent).
IMAGE_DECODERS = ("concept", "joint")
#: default weights of the loss terms (the paper gives none): the reconstruction as a Gaussian
#: of sd ≈ 0.07 in normalised units (``1/(2σ²) = 100``), chosen on the pendulum labels.
#: ``sparsity`` (the concept-wise image decoder's cause penalty, :meth:`CCGM._cause_sparsity`) was
#: chosen on the 32-px pendulum (30 epochs, 200 test units): with θ → x_shadow removed, the
#: shadow position read by ``measure_shadow`` moves 1.1% / 1.3% of its range over a θ sweep
#: (seeds 0 / 1; 3.9% / 3.7% at 0, 1.1% / 1.4% at 0.01), at the cost of a larger unedited
#: image MAE (0.0106 against 0.0076 at 0 and 0.015 at 0.01; seed 0).
DEFAULT_WEIGHTS: dict[str, float] = {"elbo": 100.0, "kl": 1.0, "label": 10.0, "latent": 1.0, "prior": 10.0, "image": 1.0,
                                     "sparsity": 0.003}
#: ``|G_ji|`` above which variable ``j`` counts as a cause (for the ``sparsity`` term).
CAUSE_TOL = 0.05


def notears(g: torch.Tensor) -> torch.Tensor:
    """NOTEARS acyclicity ``H(G) = tr[(I + G∘G)^d] − d`` (CCGM eq. 6): 0 iff ``G`` is a DAG."""
    d = g.shape[0]
    return torch.trace(torch.linalg.matrix_power(torch.eye(d, dtype=g.dtype) + g * g, d)) - d


@dataclass
class AugmentedLagrangian:
    """The augmented Lagrangian of CCGM eq. 7–8: penalty ``λ H + (c/2) H²``; after each epoch
    ``λ ← λ + c H`` and ``c ← η c`` when ``|H| > γ |H_prev|`` (``c`` is capped at ``c_max``)."""

    lam: float = 0.0
    c: float = 1.0
    eta: float = 2.0
    gamma: float = 0.9
    c_max: float = 1e8
    h_prev: float = math.inf

    def penalty(self, h: torch.Tensor) -> torch.Tensor:
        return self.lam * h + 0.5 * self.c * h * h

    def update(self, h: float) -> None:
        self.lam += self.c * h
        if abs(h) > self.gamma * abs(self.h_prev):
            self.c = min(self.eta * self.c, self.c_max)
        self.h_prev = abs(h)


class _Masks(nn.Module):
    """``d`` mask functions ``m_i(v_i) = Σ_j v_ij + MLP_i(v_i)`` evaluated at once;
    ``v`` is ``(n, d, d)`` with row ``i`` the masked input ``A_i ∘ z`` of variable ``i``."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(d, d, hidden) * 4.0)  # inputs A_ji u_j are small
        self.b1 = nn.Parameter(torch.zeros(d, hidden))
        self.w2 = nn.Parameter(torch.zeros(d, hidden))  # zero: starts as the linear model
        self.b2 = nn.Parameter(torch.zeros(d))

    def forward(self, v: torch.Tensor, nonlinear: bool) -> torch.Tensor:
        out = v.sum(-1) + self.b2
        if nonlinear:
            h = torch.tanh(torch.einsum("nij,ijh->nih", v, self.w1) + self.b1)
            out = out + torch.einsum("nih,ih->ni", h, self.w2)
        return out


class _Elementwise(nn.Module):
    """``d`` scalar networks ``û_i = h_i(ẑ_i)`` (the label decoder: label ``i`` reads only
    its own latent, so edits of ``G`` reach the labels exactly)."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(d, hidden))
        self.b1 = nn.Parameter(torch.randn(d, hidden) * 0.5)
        self.w2 = nn.Parameter(torch.randn(d, hidden) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(d))
        self.skip = nn.Parameter(torch.ones(d))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(z[:, :, None] * self.w1 + self.b1)
        return self.skip * z + (h * self.w2).sum(-1) + self.b2


def _image_decoder(d: int, size: int, channels: int, width: int) -> nn.Module:
    """``ẑ ∈ ℝ^d`` → ``(channels, size, size)`` in [0, 1]: a linear map to a ``s0 × s0`` grid
    (``s0 = size / 2^k ≤ 8``) then ``k`` transposed convolutions doubling the side."""
    k = 0
    while size % (2 ** (k + 1)) == 0 and size // 2**k > 8:
        k += 1
    s0 = size // 2**k
    if s0 > 8 or k == 0:
        raise ConfigError(f"image size {size} must be a multiple of 2^k with size/2^k <= 8 (e.g. 32, 48, 64, 96)")
    layers: list[nn.Module] = [nn.Linear(d, width * s0 * s0), nn.Unflatten(1, (width, s0, s0))]
    c = width
    for i in range(k):
        out = channels if i == k - 1 else max(c // 2, 8)
        layers += [nn.ReLU(), nn.ConvTranspose2d(c, out, 4, stride=2, padding=1)]
        c = out
    layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class _ConceptDecoder(nn.Module):
    """Concept-wise image decoder (CausalVAE, Yang et al. 2021 §4: one decoder per concept):
    ``x̂ = σ(b + Σ_i D_i(ẑ_i))`` with ``b`` a learned background logit map and each ``D_i``
    a two-layer ReLU MLP ``ℝ → ℝ^{C·H·W}`` of concept ``i`` alone. A pixel therefore changes
    with ``ẑ_j`` only through ``D_j``: an edit that fixes ``ẑ_j`` fixes concept ``j``'s logits.
    Summed logits also express a conjunction of concepts, e.g. a segment of centre ``c`` and
    width ``w`` at pixel ``p`` as ``k (w − 2|p − c|)``."""

    def __init__(self, d: int, shape: tuple[int, ...], width: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        pixels = math.prod(self.shape)
        self.w1 = nn.Parameter(torch.randn(d, width))
        # kinks −b/w of the first ReLU layer spread over [−2, 2], the range of the latents
        self.b1 = nn.Parameter(-self.w1.detach() * (torch.rand(d, width) * 4.0 - 2.0))
        self.w2 = nn.Parameter(torch.randn(d, width, width) * math.sqrt(2.0 / width))
        self.b2 = nn.Parameter(torch.zeros(d, width))
        self.w3 = nn.Parameter(torch.randn(d, width, pixels) * (0.1 / math.sqrt(width)))
        self.bias = nn.Parameter(torch.full((pixels,), 2.0))  # σ(2) ≈ 0.88: a light background

    def contributions(self, z: torch.Tensor) -> torch.Tensor:
        """Per-concept logits ``D_i(ẑ_i)``, ``(n, d, C·H·W)``."""
        h = torch.relu(z[:, :, None] * self.w1 + self.b1)
        h = torch.relu(torch.einsum("ndv,dvw->ndw", h, self.w2) + self.b2)
        return torch.einsum("ndw,dwp->ndp", h, self.w3)

    def forward(self, z: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """The image; ``active`` (``d`` weights in {0, 1}) switches concepts off."""
        parts = self.contributions(z)
        if active is not None:
            parts = parts * active[None, :, None]
        logits = parts.sum(1) + self.bias
        return torch.sigmoid(logits).view(len(z), *self.shape)


class _Net(nn.Module):
    def __init__(self, d: int, hidden: int, variant: str, image_shape: tuple[int, ...] | None,
                 image_decoder: str = "concept") -> None:
        super().__init__()
        self.g_raw = nn.Parameter(torch.zeros(d, d))
        self.f = _Masks(d, hidden)
        if variant != "tabular":
            self.g = _Masks(d, hidden)
            self.encoder = nn.Sequential(nn.Linear(d, 4 * hidden), nn.ReLU(), nn.Linear(4 * hidden, 2 * d))
            self.decoder = _Elementwise(d, hidden)
        if variant == "image":
            channels, size = image_shape[0], image_shape[-1]
            if image_decoder == "concept":
                self.image_decoder = _ConceptDecoder(d, (channels, size, size), 2 * hidden)
            else:
                self.image_decoder = _image_decoder(d, size, channels, 4 * hidden)


class CCGM:
    """The Causal Counterfactual Generative Model.

    Args:
        variables: the label columns, in order (e.g. ``[θ, x_sun, w_shadow, x_shadow]``).
        exogenous: the exogenous labels (``B_ii = 1``; they have no parents).
        graph: the causal graph among ``variables``; ``G`` is then masked to its edges.
            ``None`` learns ``G`` (any edge into an endogenous variable) under NOTEARS.
        variant: ``"label"``, ``"image"`` or ``"tabular"`` (see the module docstring).
        image: the image column of the ``"image"`` variant (arrays ``(H, W)`` or ``(C, H, W)``
            with ``H = W``, values in [0, 1]).
        hidden: width of the mask and decoder networks.
        image_decoder: ``"concept"`` (default: one sub-decoder per latent concept, logits
            summed, so a concept's pixels follow only its own latent and edge edits reach the
            images) or ``"joint"`` (one convolutional decoder of all latents; it may draw a
            concept from a correlated latent, e.g. the shadow from θ, so edits leak).
        weights: overrides of :data:`DEFAULT_WEIGHTS`.
        noise: ``"none"`` (the paper: endogenous values are exact functions of their parents)
            or ``"residual"`` (tabular only: each generated endogenous value adds a training
            residual ``u_i − f_i(A_i ∘ u)`` drawn independently; counterfactuals keep the
            unit's own residual).
    """

    def __init__(
        self,
        variables: Sequence[str],
        exogenous: Sequence[str],
        graph: GraphLike | Iterable[tuple[str, str]] | None = None,
        variant: str = "label",
        image: str = "image",
        hidden: int = 32,
        weights: Mapping[str, float] | None = None,
        noise: str = "none",
        image_decoder: str = "concept",
    ) -> None:
        self.variables = [str(v) for v in variables]
        if len(set(self.variables)) != len(self.variables) or len(self.variables) < 2:
            raise ConfigError(f"variables must be at least two distinct column names, got {self.variables}")
        unknown = sorted(set(exogenous) - set(self.variables))
        if unknown:
            raise GraphError(f"exogenous {unknown} are not among the variables {self.variables}")
        if not exogenous or set(exogenous) == set(self.variables):
            raise ConfigError("exogenous must name at least one and not all of the variables")
        if variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if noise not in NOISES or (noise == "residual" and variant != "tabular"):
            raise ConfigError(f"noise must be one of {NOISES}; 'residual' is for the tabular variant only")
        bad = sorted(set(weights or {}) - set(DEFAULT_WEIGHTS))
        if bad:
            raise ConfigError(f"unknown loss weight(s) {bad}; the terms are {sorted(DEFAULT_WEIGHTS)}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"hidden must be a positive integer, got {hidden!r}")
        if image_decoder not in IMAGE_DECODERS:
            raise ConfigError(f"image_decoder must be one of {IMAGE_DECODERS}, got {image_decoder!r}")
        self.image_decoder = image_decoder
        self.exogenous = [v for v in self.variables if v in set(exogenous)]
        self.variant, self.image, self.hidden, self.noise = variant, image, hidden, noise
        self.weights = {**DEFAULT_WEIGHTS, **dict(weights or {})}
        d = len(self.variables)
        self._b = torch.tensor([float(v in self.exogenous) for v in self.variables])
        mask = torch.outer(torch.ones(d), 1.0 - self._b) * (1.0 - torch.eye(d))  # mask[j, i]: edge j -> i
        self.graph: CausalGraph | None = None
        if graph is not None:
            edges = _edge_list(graph)
            self.graph = CausalGraph("; ".join(f"{p} -> {c}" for p, c in edges), nodes=self.variables)
            extra = sorted(set(self.graph.nodes) - set(self.variables))
            if extra:
                raise GraphError(f"the graph names {extra}, which are not among the variables {self.variables}")
            given = torch.zeros(d, d)
            for p, c in edges:
                if c in self.exogenous:
                    raise GraphError(f"the edge {p} -> {c} points into exogenous {c!r}; exogenous variables have no parents")
                given[self.variables.index(p), self.variables.index(c)] = 1.0
            mask = mask * given
        self._mask = mask
        self._removed: frozenset[tuple[str, str]] = frozenset()
        self.net: _Net | None = None
        self._image_shape: tuple[int, ...] | None = None
        self.history: list[dict[str, float]] = []
        self.fit_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ structure
    def _g(self) -> torch.Tensor:
        keep = torch.ones_like(self._mask)
        for p, c in self._removed:
            keep[self.variables.index(p), self.variables.index(c)] = 0.0
        return self.net.g_raw * self._mask * keep

    def _a(self) -> torch.Tensor:
        return self._g() + torch.diag(self._b)

    @property
    def adjacency(self) -> pd.DataFrame:
        """``A = G + B`` (row: parent, column: child), with removed edges zeroed."""
        self._require_fitted()
        return pd.DataFrame(self._a().detach().numpy(), index=self.variables, columns=self.variables)

    def edges(self, threshold: float = 0.0) -> list[tuple[str, str]]:
        """The edges ``(parent, child)`` with ``|G| > threshold``."""
        g = self.adjacency.to_numpy() - np.diag(self._b.numpy())
        return [(p, c) for i, p in enumerate(self.variables) for j, c in enumerate(self.variables) if abs(g[i, j]) > threshold]

    def acyclicity(self) -> float:
        """``H(G)`` of the fitted (edited) ``G``."""
        self._require_fitted()
        with torch.no_grad():
            return float(notears(self._g()))

    def without_edges(self, edges: Iterable[tuple[str, str]]) -> CCGM:
        """A counterfactual model with ``G`` zeroed at ``edges`` (no retraining, CCGM §V.B):
        each child reads 0 (the parent's :meth:`edge_reference`) through a removed edge."""
        self._require_fitted()
        edges = [tuple(e) for e in edges]
        for edge in edges:
            if len(edge) != 2 or any(v not in self.variables for v in edge):
                raise GraphError(f"{edge!r} does not name two of the variables {self.variables}")
            i, j = self.variables.index(edge[0]), self.variables.index(edge[1])
            if self._mask[i, j] == 0 or edge in self._removed:
                what = "already removed" if edge in self._removed else "not an edge of the model"
                raise GraphError(f"{edge[0]} -> {edge[1]} is {what}; removable edges: {self.edges()}")
        out = copy.copy(self)
        out._removed = self._removed | frozenset(edges)
        return out

    @property
    def removed_edges(self) -> list[tuple[str, str]]:
        return sorted(self._removed)

    def edge_reference(self, parent: str) -> float:
        """The value (``parent``'s units) that a removed edge out of ``parent`` feeds its
        child: the label whose normalised value maps to latent 0 (the mid-range for the
        tabular variant)."""
        self._require_fitted()
        j = self.variables.index(parent)
        un = -self._cal_b[j] / self._cal_a[j] if self.variant != "tabular" else 0.0
        return float((un + 1.0) / 2.0 * (self._hi[j] - self._lo[j]) + self._lo[j])

    # ------------------------------------------------------------------ data
    def _normalise(self, frame: pd.DataFrame, role: str) -> torch.Tensor:
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"the {role} data must be a DataFrame with columns {self.variables}")
        missing = [v for v in self.variables if v not in frame.columns]
        if missing:
            raise DataError(f"the {role} data lack the column(s) {missing}")
        try:
            u = frame[self.variables].to_numpy(np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(f"the {role} columns {self.variables} must be numeric ({e})") from None
        if not np.isfinite(u).all():
            bad = [v for v, ok in zip(self.variables, np.isfinite(u).all(0)) if not ok]
            raise DataError(f"the {role} data contain NaN or inf in {bad}; drop or impute those rows")
        return torch.tensor(2.0 * (u - self._lo) / (self._hi - self._lo) - 1.0, dtype=torch.float32)

    def _images(self, frame: pd.DataFrame) -> torch.Tensor:
        if self.image not in frame.columns:
            raise DataError(f"the image variant needs the image column {self.image!r}")
        from ..variables import stack_images

        x = stack_images(frame[self.image], self.image)
        if x.ndim == 3:
            x = x[:, None]
        if x.shape[-1] != x.shape[-2] or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DataError(f"image column {self.image!r} must hold square, finite images in [0, 1]")
        return torch.from_numpy(np.ascontiguousarray(x, np.float32))

    def _denormalise(self, un: torch.Tensor) -> pd.DataFrame:
        u = (un.detach().numpy().astype(np.float64) + 1.0) / 2.0 * (self._hi - self._lo) + self._lo
        return pd.DataFrame(u, columns=self.variables)

    # ------------------------------------------------------------------ the model
    def _causal(self, masks: _Masks, z: torch.Tensor, nonlinear: bool, fixed: Mapping[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Iterate ``z_i ← b_i z_i + (1 − b_i) g_i(A_i ∘ z)`` ``d`` times; ``fixed`` holds
        intervened entries."""
        a, b = self._a(), self._b
        fixed = fixed or {}
        cur = z.clone()
        for j, v in fixed.items():
            cur[:, j] = v
        for _ in range(len(self.variables)):
            out = masks(a.T[None] * cur[:, None, :], nonlinear)
            cur = b * z + (1.0 - b) * out
            for j, v in fixed.items():
                cur[:, j] = v
        return cur

    def _label_loss(self, u: torch.Tensor, nonlinear: bool) -> torch.Tensor:
        pred = self.net.f(self._a().T[None] * u[:, None, :], nonlinear)
        return (((u - pred) ** 2) * (1.0 - self._b)).sum(1).mean()

    def _loss(self, batch: tuple[torch.Tensor, ...], pretrain: bool, lagrangian: AugmentedLagrangian,
              endogenous_only: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
        u = batch[0]
        w = self.weights
        h = notears(self._g())
        terms = {"label": self._label_loss(u, nonlinear=not pretrain)}
        if not pretrain and self.variant != "tabular":
            mu, logvar = self.net.encoder(u).chunk(2, dim=1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            zhat = self._causal(self.net.g, z, True)
            terms["kl"] = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1).mean()
            terms["elbo"] = ((self.net.decoder(zhat) - u) ** 2).sum(1).mean()
            terms["prior"] = 0.5 * ((zhat - u) ** 2).sum(1).mean()
            g_z = self.net.g(self._a().T[None] * z[:, None, :], True)
            terms["latent"] = (((z - g_z) ** 2) * (1.0 - self._b)).sum(1).mean()
            if self.variant == "image":
                x = batch[1]
                if endogenous_only:
                    xhat = self.net.image_decoder(zhat, active=1.0 - self._b)
                else:
                    xhat = self.net.image_decoder(zhat)
                terms["image"] = ((xhat - x) ** 2).flatten(1).sum(1).mean()
                if w["sparsity"] > 0 and isinstance(self.net.image_decoder, _ConceptDecoder):
                    terms["sparsity"] = self._cause_sparsity(zhat, endogenous_only)
        total = sum(w[k] * v for k, v in terms.items()) + lagrangian.penalty(h)
        return total, {k: float(v.detach()) for k, v in terms.items()} | {"H": float(h.detach())}

    def _cause_sparsity(self, zhat: torch.Tensor, endogenous_only: bool) -> torch.Tensor:
        """``mean_n Σ_{i cause} Σ_p |D_i(ẑ_ni) − mean_m D_i(ẑ_mi)|``: an L1 penalty on how far a
        cause's logits (``i`` with an edge ``|G_ij| > CAUSE_TOL`` out of it) vary about their
        batch mean. A cause's sub-decoder can draw its effects' pixels through the correlation
        of cause and effect in the data, as well as the effects' own sub-decoders can; the data
        do not tell them apart, and a removed edge ``i → j`` then still moves ``j``'s pixels
        with ``ẑ_i``. The penalty breaks the tie for the sub-decoder nearest to the pixels:
        pixels that an effect's latent explains are left to it."""
        causes = (self._g().detach().abs() > CAUSE_TOL).any(1).float()
        if endogenous_only:
            causes = causes * (1.0 - self._b)
        parts = self.net.image_decoder.contributions(zhat)
        return ((parts - parts.mean(0, keepdim=True)).abs().sum(2) * causes).sum(1).mean()

    def fit(
        self,
        data: pd.DataFrame,
        epochs: int = 50,
        pretrain_epochs: int = 5,
        batch_size: int = 128,
        lr: float = 3e-3,
        graph_lr: float | None = None,
        seed: int = 0,
        progress: bool = True,
        decoder_warmup: int | None = None,
    ) -> CCGM:
        """Pre-train ``A`` on the linear label→label task for ``pretrain_epochs``, then train
        every term jointly for ``epochs`` (the augmented Lagrangian is updated after every
        epoch of both phases). In pre-training ``G`` learns at ``graph_lr`` (default ``10 lr``)
        so that the short phase reaches the regression-sized weights; jointly at ``lr``, so
        that ``A`` changes little after it (CCGM §V.C).

        With the concept-wise image decoder, the first ``decoder_warmup`` joint epochs
        (default ``epochs // 2``) decode the images from the endogenous concepts alone, so
        that the pixels an effect determines (the shadow) are explained by the effect's own
        latent before its causes' sub-decoders start and can absorb them through the
        correlation of cause and effect in the data; after it the ``sparsity`` weight keeps the
        causes' sub-decoders off those pixels (:meth:`_cause_sparsity`). Returns ``self``."""
        if self._removed:
            raise ConfigError("fit the base model, not a copy made by without_edges()")
        for name, value in (("epochs", epochs), ("pretrain_epochs", pretrain_epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "batch_size" else 0):
                raise ConfigError(f"{name} must be a non-negative integer (batch_size positive), got {value!r}")
        if not isinstance(data, pd.DataFrame) or len(data) < 10:
            raise DataError("fit needs a DataFrame with at least 10 rows")
        missing = [v for v in self.variables if v not in data.columns]
        if missing:
            raise DataError(f"the training data lack the column(s) {missing}")
        try:
            raw = data[self.variables].to_numpy(np.float64)
        except (TypeError, ValueError):
            raw = None
        if raw is None or not np.isfinite(raw).all():
            raise DataError(f"the training columns {self.variables} must be finite numbers (no NaN or inf)")
        lo, hi = raw.min(0), raw.max(0)
        if np.any(hi <= lo):
            const = [v for v, a, b in zip(self.variables, lo, hi) if b <= a]
            raise DataError(f"the column(s) {const} are constant; a causal model needs variation")
        self._lo, self._hi = lo, hi
        u = self._normalise(data, "training")
        self._exo_rows = u[:, self._b.bool()]
        tensors = [u]
        image_shape = None
        if self.variant == "image":
            x = self._images(data)
            tensors.append(x)
            image_shape = tuple(x.shape[1:])
        started = time.perf_counter()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = _Net(len(self.variables), self.hidden, self.variant, image_shape, self.image_decoder)
            self._image_shape = image_shape
            others = [p for name, p in self.net.named_parameters() if name != "g_raw"]
            opt = torch.optim.Adam([{"params": [self.net.g_raw], "lr": graph_lr or 10 * lr},
                                    {"params": others, "lr": lr}])
            lagrangian = AugmentedLagrangian()
            self.history = []
            schedule = [True] * pretrain_epochs + [False] * epochs
            concept = isinstance(getattr(self.net, "image_decoder", None), _ConceptDecoder)
            warm = (epochs // 2 if decoder_warmup is None else decoder_warmup) if concept else 0
            gen = torch.Generator().manual_seed(seed)
            for epoch, pretrain in enumerate(tqdm(schedule, desc="fitting CCGM", disable=not progress)):
                warmup = not pretrain and epoch < pretrain_epochs + warm
                opt.param_groups[0]["lr"] = (graph_lr or 10 * lr) if pretrain else lr
                order = torch.randperm(len(u), generator=gen)
                sums: dict[str, float] = {}
                for start in range(0, len(u), batch_size):
                    rows = order[start:start + batch_size]
                    loss, parts = self._loss(tuple(t[rows] for t in tensors), pretrain, lagrangian,
                                             endogenous_only=warmup)
                    if not torch.isfinite(loss):
                        raise TrainingError(f"the CCGM loss became non-finite in epoch {epoch}; lower lr (now {lr})")
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + v * len(rows) / len(u)
                with torch.no_grad():
                    lagrangian.update(float(notears(self._g())))
                self.history.append({"epoch": epoch, "pretrain": pretrain, **sums, "lambda": lagrangian.lam, "c": lagrangian.c})
            self.net.eval()
            with torch.no_grad():
                self._calibrate(u)
        self.lagrangian = lagrangian
        self.fit_info = {"rows": len(u), "seconds": round(time.perf_counter() - started, 2), "seed": seed,
                         "H": self.acyclicity()}
        return self

    def _calibrate(self, u: torch.Tensor) -> None:
        """Per label, the least-squares line ``ẑ_j ≈ a_j u_n + b_j`` of the causal latents on the
        normalised labels (training rows): interventions given in label units set ``ẑ_j``
        through it. Tabular models act on ``u_n`` itself (``a = 1, b = 0``)."""
        d = len(self.variables)
        self._cal_a, self._cal_b = np.ones(d), np.zeros(d)
        if self.variant == "tabular":
            pred = self.net.f(self._a().T[None] * u[:, None, :], True)
            self._residuals = ((u - pred) * (1.0 - self._b)).numpy()
            return
        zhat = self._causal(self.net.g, self.net.encoder(u).chunk(2, dim=1)[0], True).numpy()
        un = u.numpy()
        for j in range(d):
            slope, intercept = np.polyfit(un[:, j], zhat[:, j], 1)
            self._cal_a[j], self._cal_b[j] = slope, intercept

    # ------------------------------------------------------------------ generation
    def _fixed(self, do: Mapping[str, Any] | None, n: int) -> dict[int, torch.Tensor]:
        fixed = {}
        for name, value in (do or {}).items():
            if name not in self.variables:
                raise GraphError(f"cannot intervene on {name!r}; the variables are {self.variables}")
            j = self.variables.index(name)
            v = np.asarray(value, np.float64)
            v = np.full(n, float(v)) if v.ndim == 0 else v
            if v.shape != (n,) or not np.isfinite(v).all():
                raise DataError(f"do[{name!r}] must be a finite scalar or {n} values, got shape {v.shape}")
            un = 2.0 * (v - self._lo[j]) / (self._hi[j] - self._lo[j]) - 1.0
            fixed[j] = torch.tensor(self._cal_a[j] * un + self._cal_b[j], dtype=torch.float32)
        return fixed

    def _generate(self, z: torch.Tensor, fixed: Mapping[int, torch.Tensor], residual: torch.Tensor | None) -> pd.DataFrame:
        with torch.no_grad():
            if self.variant == "tabular":
                masks = _ResidualMasks(self.net.f, residual) if residual is not None else self.net.f
                un = self._causal(masks, z, True, fixed)
                out = self._denormalise(un)
            else:
                zhat = self._causal(self.net.g, z, True, fixed)
                out = self._denormalise(self.net.decoder(zhat))
                if self.variant == "image":
                    x = self.net.image_decoder(zhat).numpy()
                    out[self.image] = list(x[:, 0] if x.shape[1] == 1 else x)
        return out

    def sample(self, n: int, do: Mapping[str, Any] | None = None, seed: int | None = None) -> pd.DataFrame:
        """``n`` generated rows (labels in user units; the ``image`` column for the image
        variant). Exogenous latents come from ``N(0, I)`` (tabular: training rows of the
        exogenous labels, resampled); ``do`` fixes labels (user units) and propagates
        parent → child."""
        self._require_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n must be a positive integer, got {n!r}")
        gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.seed() % 2**31))
        d = len(self.variables)
        residual = None
        if self.variant == "tabular":
            rows = torch.randint(0, len(self._exo_rows), (n,), generator=gen)
            z = torch.zeros(n, d)
            z[:, self._b.bool()] = self._exo_rows[rows]
            if self.noise == "residual":
                pick = torch.randint(0, len(self._residuals), (n, d), generator=gen)
                residual = torch.from_numpy(self._residuals)[pick, torch.arange(d)].float()
        else:
            z = torch.randn(n, d, generator=gen)
        return self._generate(z, self._fixed(do, n), residual)

    def counterfactual(self, units: pd.DataFrame, do: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Each unit's labels (and image) after ``do`` in this model (edited edges included):
        abduction by the encoder mean (tabular: the unit's exogenous labels, and its residuals
        under ``noise="residual"``), action on the causal latents, prediction."""
        self._require_fitted()
        u = self._normalise(units, "counterfactual")
        residual = None
        with torch.no_grad():
            if self.variant == "tabular":
                z = u * self._b
                if self.noise == "residual":
                    base = self.net.f(self._a_base().T[None] * u[:, None, :], True)
                    residual = (u - base) * (1.0 - self._b)
            else:
                z = self.net.encoder(u).chunk(2, dim=1)[0]
        return self._generate(z, self._fixed(do, len(u)), residual)

    def _a_base(self) -> torch.Tensor:
        """``A`` of the unedited model (residuals are abducted in the factual model)."""
        return self.net.g_raw * self._mask + torch.diag(self._b)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the fitted model to directory ``path`` without pickle: the network weights
        (and the tabular variant's training rows of the exogenous labels and residuals) as
        safetensors, everything else as checksummed JSON (:func:`deepscm.io.write_bundle`).
        A model made by :meth:`without_edges` is saved with its removed edges and their
        :meth:`edge_reference` values, and loads as that edited model."""
        self._require_fitted()
        tensors = {f"net/{k}": v for k, v in self.net.state_dict().items()}
        tensors["exogenous_rows"] = self._exo_rows
        if self.variant == "tabular":
            tensors["residuals"] = torch.from_numpy(np.ascontiguousarray(self._residuals))
        meta = {
            "model": "CCGM",
            "deepscm_version": __version__,
            "config": self._config(),
            "image_shape": list(self._image_shape) if self._image_shape is not None else None,
            "label_range": {"lo": self._lo, "hi": self._hi},
            "calibration": {"a": self._cal_a, "b": self._cal_b},
            "removed_edges": [list(e) for e in self.removed_edges],
            "edge_references": {f"{p} -> {c}": self.edge_reference(p) for p, c in self.removed_edges},
            "lagrangian": dataclasses.asdict(self.lagrangian),
            "history": self.history,
            "fit": self.fit_info,
        }
        return write_bundle(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> CCGM:
        """Load a model written by :meth:`save` (never executes code from the file). A missing,
        edited, truncated or inconsistent file raises :class:`~deepscm.errors.ModelFileError`."""
        tensors, meta = read_bundle(path, model="CCGM")
        try:
            model = cls(**meta["config"])
            shape = meta["image_shape"]
            model._image_shape = tuple(int(v) for v in shape) if shape is not None else None
            with torch.random.fork_rng():
                model.net = _Net(len(model.variables), model.hidden, model.variant, model._image_shape,
                                 model.image_decoder)
            state = {k[len("net/"):]: v for k, v in tensors.items() if k.startswith("net/")}
            model.net.load_state_dict(state, strict=True)
            model.net.eval()
            d = len(model.variables)
            model._lo, model._hi = (np.asarray(meta["label_range"][k], np.float64) for k in ("lo", "hi"))
            model._cal_a, model._cal_b = (np.asarray(meta["calibration"][k], np.float64) for k in ("a", "b"))
            if any(v.shape != (d,) for v in (model._lo, model._hi, model._cal_a, model._cal_b)):
                raise ValueError(f"label ranges and calibration must have {d} entries")
            model._exo_rows = tensors["exogenous_rows"]
            if model._exo_rows.ndim != 2 or model._exo_rows.shape[1] != len(model.exogenous):
                raise ValueError("exogenous_rows do not match the exogenous variables")
            if model.variant == "tabular":
                model._residuals = tensors["residuals"].numpy()
                if model._residuals.shape[1:] != (d,):
                    raise ValueError("residuals do not match the variables")
            model.lagrangian = AugmentedLagrangian(**meta["lagrangian"])
            model.history, model.fit_info = list(meta["history"]), dict(meta["fit"])
            removed = [tuple(e) for e in meta["removed_edges"]]
            if removed:
                model = model.without_edges(removed)
            refs = {f"{p} -> {c}": model.edge_reference(p) for p, c in model.removed_edges}
            if set(refs) != set(meta["edge_references"]) or any(
                    not math.isclose(v, meta["edge_references"][k], rel_tol=1e-9, abs_tol=1e-12) for k, v in refs.items()):
                raise ValueError("the stored edge references differ from those of the stored calibration")
        except ModelFileError:
            raise
        except (DeepSCMError, KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
            raise ModelFileError(f"{path} is inconsistent: {type(err).__name__}: {err}") from None
        return model

    def _config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able)."""
        edges = None
        if self.graph is not None:
            edges = [[self.variables[j], self.variables[i]] for j in range(len(self.variables))
                     for i in range(len(self.variables)) if self._mask[j, i] > 0]
        return {"variables": self.variables, "exogenous": self.exogenous, "graph": edges, "variant": self.variant,
                "image": self.image, "hidden": self.hidden, "weights": self.weights, "noise": self.noise,
                "image_decoder": self.image_decoder}

    def _require_fitted(self) -> None:
        if self.net is None:
            raise NotFittedError("the CCGM is not fitted; call fit(data) first")

    def __repr__(self) -> str:
        state = "fitted" if self.net is not None else "not fitted"
        extra = f", without_edges={self.removed_edges}" if self._removed else ""
        return f"CCGM(variant={self.variant!r}, variables={self.variables}, {state}{extra})"


class _ResidualMasks(nn.Module):
    """Masks plus a fixed per-row residual (the tabular ``noise="residual"`` option)."""

    def __init__(self, masks: _Masks, residual: torch.Tensor) -> None:
        super().__init__()
        self.masks, self.residual = masks, residual

    def forward(self, v: torch.Tensor, nonlinear: bool) -> torch.Tensor:
        return self.masks(v, nonlinear) + self.residual


def _edge_list(graph: GraphLike | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(graph, (CausalGraph, str)) or hasattr(graph, "edges"):
        g = graph if isinstance(graph, CausalGraph) else CausalGraph(graph)
        if g.has_latent_confounders:
            raise GraphError("CCGM's causal layer cannot represent latent confounders (<->)")
        return list(g.directed_edges)
    edges = [tuple(e) for e in graph]
    if any(len(e) != 2 for e in edges):
        raise GraphError(f"graph edges must be (parent, child) pairs, got {edges}")
    return edges
