"""Dragonnet with targeted regularisation.

Shi, Blei & Veitch (2019), "Adapting neural networks for the estimation of treatment effects",
NeurIPS. A shared representation Z(x) feeds three heads: outcome heads Q0, Q1 and a propensity
head g (a linear-logistic layer on Z). The objective (their eq. 2.2 and §3) is

    (1/n) Σ_i [(Q_{t_i}(x_i) − y_i)² + α · BCE(g(x_i), t_i)] + β · (1/n) Σ_i (y_i − q̃_i)²,
    q̃_i = Q_{t_i}(x_i) + ε · (t_i / g(x_i) − (1 − t_i) / (1 − g(x_i))),

with ε a learnable scalar. At the optimum in ε the perturbed outcomes q̃ solve the efficient
score equation, so their plug-in mean is a targeted (TMLE-like) ATE estimate.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import ArrayLike
from .networks import NeuralEffectEstimator, elu_net, representation, to_tensor

__all__ = ["Dragonnet"]


class _DragonNet(nn.Module):
    def __init__(self, n_features: int, rep: tuple[int, ...], head: tuple[int, ...]) -> None:
        super().__init__()
        self.z = representation(n_features, rep)
        self.q0 = elu_net(rep[-1], 1, head)
        self.q1 = elu_net(rep[-1], 1, head)
        self.g = nn.Linear(rep[-1], 1)
        self.epsilon = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(Q0, Q1, logit g)`` per row."""
        z = self.z(x)
        return self.q0(z).squeeze(-1), self.q1(z).squeeze(-1), self.g(z).squeeze(-1)


class Dragonnet(NeuralEffectEstimator):
    """Dragonnet (Shi et al. 2019).

    With ``targeted_reg=True`` (the default), :meth:`predict_outcomes`, :meth:`effect` and
    :meth:`ate` report the *targeted* outcomes ``q̃1(x) = Q1(x) + ε/g(x)`` and
    ``q̃0(x) = Q0(x) − ε/(1 − g(x))`` (``g`` clipped to ``[g_clip, 1 − g_clip]``), so ``ate()`` is
    the targeted plug-in estimate ``mean(q̃1 − q̃0)``; with ``targeted_reg=False`` they report the
    plain heads ``Q0, Q1``.

    Args:
        alpha: weight of the propensity cross-entropy.
        beta: weight of the targeted-regularisation term.
        targeted_reg: add the targeted-regularisation term (and report targeted outcomes).
        g_clip: propensity clipping inside the perturbation ``t/g − (1−t)/(1−g)``.
        Others as for :class:`~deepscm.estimators.TARNet`.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 1.0,
        targeted_reg: bool = True,
        g_clip: float = 0.01,
        rep_layers: tuple[int, ...] = (100, 100, 100),
        head_layers: tuple[int, ...] = (50, 50),
        epochs: int = 300,
        batch_size: int = 100,
        lr: float = 1e-3,
        weight_decay: float = 3e-3,
        patience: int = 30,
        val_fraction: float = 0.2,
        n_bootstrap: int = 50,
        seed: int = 0,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.targeted_reg = targeted_reg
        self.g_clip = g_clip
        self.rep_layers = rep_layers
        self.head_layers = head_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.device = device
        self.progress = progress

    def _build(self, n_features: int) -> nn.Module:
        if not 0 <= self.g_clip < 0.5:
            raise ValueError(f"g_clip must lie in [0, 0.5), got {self.g_clip}")
        return _DragonNet(n_features, tuple(self.rep_layers), tuple(self.head_layers))

    def _propensity(self, logit: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logit).clamp(self.g_clip, 1 - self.g_clip)

    def _loss(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        q0, q1, logit = self.model_(x)
        q = torch.where(t == 1, q1, q0)
        loss = ((q - y) ** 2).mean() + self.alpha * F.binary_cross_entropy_with_logits(logit, t)
        if self.targeted_reg:
            g = self._propensity(logit)
            q_tilde = q + self.model_.epsilon * (t / g - (1 - t) / (1 - g))
            loss = loss + self.beta * ((y - q_tilde) ** 2).mean()
        return loss

    def _predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q0, q1, logit = self.model_(x)
        if not self.targeted_reg:
            return q0, q1
        g, eps = self._propensity(logit), self.model_.epsilon
        return q0 - eps / (1 - g), q1 + eps / g

    def _training_propensity(self) -> np.ndarray:
        return self.propensity()

    def propensity(self, X: ArrayLike | None = None) -> np.ndarray:
        """The fitted propensity ``g(x) = P(T=1 | x)`` per row (unclipped)."""
        xs = to_tensor(self.x_scaler_.transform(self._rows(X)), self.device_)
        with torch.no_grad():
            return torch.sigmoid(self.model_(xs)[2]).cpu().numpy().astype(float)
