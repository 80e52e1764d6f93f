"""CEVAE: the causal effect variational autoencoder.

Louizos, Shalit, Mooij, Sontag, Zemel & Welling (2017), "Causal effect inference with deep
latent-variable models", NeurIPS. A latent confounder z ~ N(0, I) generates the proxies x,
the treatment t and the outcome y. Model networks p(x|z), p(t|z), p(y|t,z) (two heads, TARNet
style); inference network q(z|x,t,y) (two heads by t) with the auxiliary q(t|x), q(y|x,t)
needed at prediction time. The objective (their eq. 5) is

    F_CEVAE = ELBO + Σ_i [log q(t_i|x_i) + log q(y_i|x_i,t_i)],
    ELBO = Σ_i E_q[log p(x_i,t_i|z_i) + log p(y_i|t_i,z_i)] − KL(q(z_i|x_i,t_i,y_i) ‖ p(z_i)),

minimised as −F / n. Binary (0/1) covariate columns are Bernoulli, the others Gaussian (after
standardisation); a 0/1 outcome is Bernoulli, any other Gaussian.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import EffectEstimator
from .networks import Standardizer, TrainSetup, elu_net, fit_modules, seeded, to_tensor

__all__ = ["CEVAE"]


def _is_binary(v: np.ndarray) -> np.ndarray:
    """Per column: are all values 0 or 1?"""
    return np.all((v == 0) | (v == 1), axis=0)


def _gauss_log_prob(v: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((v - mean) / log_scale.exp()) ** 2 - log_scale - 0.5 * math.log(2 * math.pi)


class _TwoHeads(nn.Module):
    """A trunk and one output head per treatment arm: ``out[t]``."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(elu_net(in_dim, hidden[-1], hidden[:-1]), nn.ELU())
        self.heads = nn.ModuleList([nn.Linear(hidden[-1], out_dim) for _ in range(2)])

    def forward(self, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.trunk(v)
        return torch.where(t[:, None] == 1, self.heads[1](h), self.heads[0](h))

    def both(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(v)
        return self.heads[0](h), self.heads[1](h)


class _CEVAENet(nn.Module):
    def __init__(self, d_bin: int, d_cont: int, latent: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        d = d_bin + d_cont
        self.p_x = elu_net(latent, d, hidden)
        self.x_log_scale = nn.Parameter(torch.zeros(d_cont))
        self.p_t = elu_net(latent, 1, hidden)
        self.p_y = _TwoHeads(latent, 1, hidden)
        self.q_t = elu_net(d, 1, hidden)
        self.q_y = _TwoHeads(d, 1, hidden)
        self.q_z = _TwoHeads(d + 1, 2 * latent, hidden)
        self.y_log_scale = nn.Parameter(torch.zeros(()))
        self.d_bin = d_bin


class CEVAE(EffectEstimator):
    """Causal effect VAE (Louizos et al. 2017).

    The ITE follows the paper: for each row draw t̂ ~ q(t|x), take ŷ = E q(y|x,t̂), draw
    z ~ q(z|x,t̂,ŷ) and average E[y|t=1,z] − E[y|t=0,z] over ``n_samples`` draws (seeded, so
    predictions are reproducible).

    Args:
        latent_dim: dimension of z (20 in the paper).
        hidden: widths of every network's ELU hidden layers.
        n_samples: posterior draws per row at prediction time.
        Others as for :class:`~deepscm.estimators.TARNet`.
    """

    def __init__(
        self,
        latent_dim: int = 20,
        hidden: tuple[int, ...] = (100, 100),
        n_samples: int = 100,
        epochs: int = 300,
        batch_size: int = 100,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        patience: int = 30,
        val_fraction: float = 0.2,
        n_bootstrap: int = 50,
        seed: int = 0,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.n_samples = n_samples
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

    # ------------------------------------------------------------------ encoding
    def _encode_x(self, x: np.ndarray) -> np.ndarray:
        """Binary columns first (as 0/1), then the standardised continuous ones."""
        return np.column_stack(
            [x[:, self.binary_columns_], self.x_scaler_.transform(x[:, ~self.binary_columns_])]
        )

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        setup = TrainSetup.make(len(x), self.val_fraction, self.seed, self.device, stratify=t)
        self.binary_columns_ = _is_binary(x)
        self.x_scaler_ = Standardizer.fit(x[:, ~self.binary_columns_])
        self.binary_outcome_ = bool(_is_binary(y[:, None])[0])
        self.y_scaler_ = (
            Standardizer(np.zeros(1), np.ones(1))
            if self.binary_outcome_
            else Standardizer.fit(y[:, None])
        )
        self.device_ = setup.device
        xs = to_tensor(self._encode_x(x), setup.device)
        ts = to_tensor(t, setup.device)
        ys = to_tensor(self.y_scaler_.transform(y[:, None])[:, 0], setup.device)
        with seeded(self.seed):
            self.model_ = _CEVAENet(
                int(self.binary_columns_.sum()),
                int((~self.binary_columns_).sum()),
                self.latent_dim,
                tuple(self.hidden),
            ).to(setup.device)
        gen = setup.generator
        self.history_ = fit_modules(
            {"model": self.model_},
            lambda _, rows: self._loss(xs[rows], ts[rows], ys[rows], gen),
            setup,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            progress=self.progress,
            desc="CEVAE",
        )

    # ------------------------------------------------------------------ likelihood terms
    def _y_log_prob(self, y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.binary_outcome_:
            return -F.binary_cross_entropy_with_logits(out, y, reduction="none")
        return _gauss_log_prob(y, out, self.model_.y_log_scale)

    def _y_mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out) if self.binary_outcome_ else out

    def _posterior(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.model_.q_z(torch.cat([x, y[:, None]], dim=1), t)
        mean, log_var = stats.chunk(2, dim=1)
        return mean, log_var.clamp(-10, 10)

    def _loss(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        m = self.model_
        mean, log_var = self._posterior(x, t, y)
        eps = torch.randn(mean.shape, generator=gen, device=mean.device)
        z = mean + (0.5 * log_var).exp() * eps
        kl = 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(dim=1)
        x_out = m.p_x(z)
        d_bin = m.d_bin
        log_px = -F.binary_cross_entropy_with_logits(
            x_out[:, :d_bin], x[:, :d_bin], reduction="none"
        ).sum(1)
        log_px = log_px + _gauss_log_prob(x[:, d_bin:], x_out[:, d_bin:], m.x_log_scale).sum(1)
        log_pt = -F.binary_cross_entropy_with_logits(m.p_t(z)[:, 0], t, reduction="none")
        log_py = self._y_log_prob(y, m.p_y(z, t)[:, 0])
        log_qt = -F.binary_cross_entropy_with_logits(m.q_t(x)[:, 0], t, reduction="none")
        log_qy = self._y_log_prob(y, m.q_y(x, t)[:, 0])
        return -(log_px + log_pt + log_py - kl + log_qt + log_qy).mean()

    # ------------------------------------------------------------------ prediction
    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.model_
        gen = torch.Generator(device=self.device_)
        gen.manual_seed(self.seed)
        xs = to_tensor(self._encode_x(x), self.device_)
        y0 = torch.zeros(len(x), device=self.device_)
        y1 = torch.zeros(len(x), device=self.device_)
        with torch.no_grad():
            p_t = torch.sigmoid(m.q_t(xs)[:, 0])
            for _ in range(self.n_samples):
                t_hat = torch.bernoulli(p_t, generator=gen)
                y_hat = self._y_mean(m.q_y(xs, t_hat)[:, 0])
                mean, log_var = self._posterior(xs, t_hat, y_hat)
                z = mean + (0.5 * log_var).exp() * torch.randn(
                    mean.shape, generator=gen, device=mean.device
                )
                out0, out1 = m.p_y.both(z)
                y0 += self._y_mean(out0[:, 0])
                y1 += self._y_mean(out1[:, 0])
        scale, shift = float(self.y_scaler_.scale[0]), float(self.y_scaler_.mean[0])
        y0, y1 = (
            (v / self.n_samples).cpu().numpy().astype(float) * scale + shift for v in (y0, y1)
        )
        return y0, y1
