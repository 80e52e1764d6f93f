r"""An amortised Gaussian posterior over a generative model's exogenous variables.

For a model ``x = f(w)`` with exogenous ``w ~ N(0, I_D)`` and a frozen ``f``, the encoder
``q_φ(w | x) = N(μ_φ(x), L_φ(x) L_φ(x)ᵀ)`` (full covariance, ``L`` lower-triangular with a
positive diagonal) is fitted by maximising the evidence lower bound (Kingma & Welling 2014,
eq. 3; the amortised inference network of DSCM, Pawlowski et al. 2020, §2.2, and CEVAE,
Louizos et al. 2017)::

    ELBO(x) = E_{q_φ(w|x)}[log p_σ(x | w)] − KL(q_φ(w | x) ‖ N(0, I))

with the reparameterised draw ``w = μ + L·ξ``, ``ξ ~ N(0, I)``. ``log p_σ(x | w)`` is the
caller's (for the GAN-NCM a Gaussian observation model of fixed scale ``σ`` around the
generators' output). The KL of two Gaussians is closed-form::

    KL = ½ (‖L‖_F² + ‖μ‖² − D − 2 Σ_j log L_jj)

A full covariance matters: given a full unit, the exogenous variables are tied by the
equations (their exact posterior concentrates near a manifold), which a mean-field Gaussian
cannot follow. Semi-amortised refinement (Kim et al. 2018) starts from ``q_φ(· | x)`` and takes
a few gradient steps on the unit's own ELBO (:func:`refine`): it closes part of the amortisation
gap at the cost of per-unit optimisation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError, TrainingError
from ..mechanisms.base import MAX_GRAD_NORM, SkipMLP

__all__ = ["GaussianEncoder", "LogLik", "elbo", "fit_encoder", "gaussian", "kl_standard_normal", "refine", "rsample"]

#: ``log_lik(w, rows)``: ``w`` of shape ``(k, b, D)`` (``k`` draws for each of the ``b`` rows
#: ``rows``) → ``log p(x_rows | w)`` of shape ``(k, b)``.
LogLik = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gaussian(raw: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw parameters ``(…, D + D(D+1)/2)`` → ``(μ, L)``; ``L``'s diagonal is ``exp`` of its raw
    entries (so raw zeros are the prior ``N(0, I)``)."""
    mean, flat = raw[..., :dim], raw[..., dim:]
    rows, cols = torch.tril_indices(dim, dim)
    tril = torch.zeros(*raw.shape[:-1], dim, dim, dtype=raw.dtype)
    tril[..., rows, cols] = flat
    diag = torch.diagonal(tril, dim1=-2, dim2=-1)
    return mean, tril - torch.diag_embed(diag) + torch.diag_embed(diag.clamp(-10.0, 5.0).exp())


def kl_standard_normal(mean: torch.Tensor, tril: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ, LLᵀ) ‖ N(0, I))`` per row (module docstring)."""
    logdet = torch.diagonal(tril, dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (tril.square().sum((-2, -1)) + mean.square().sum(-1) - mean.shape[-1] - 2 * logdet)


def rsample(mean: torch.Tensor, tril: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` reparameterised draws ``μ + L·ξ`` per row: ``(k, rows, D)``."""
    xi = torch.randn(k, *mean.shape, generator=gen)
    return mean + torch.einsum("bij,kbj->kbi", tril, xi)


def elbo(raw: torch.Tensor, dim: int, log_lik: LogLik, rows: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """The ``k``-draw Monte Carlo ELBO of each row (module docstring): shape ``(rows,)``."""
    mean, tril = gaussian(raw, dim)
    return log_lik(rsample(mean, tril, k, gen), rows).mean(0) - kl_standard_normal(mean, tril)


class GaussianEncoder(nn.Module):
    """``x ↦`` the raw parameters of ``q_φ(w | x)`` (:func:`gaussian`): a :class:`SkipMLP`, so a
    linear posterior mean (exact for a linear-Gaussian model) is on its linear path; it starts
    at the prior."""

    def __init__(self, x_dim: int, w_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.net = SkipMLP(x_dim, w_dim + w_dim * (w_dim + 1) // 2, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def fit_encoder(
    encoder: GaussianEncoder,
    log_lik: LogLik,
    x: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    n_mc: int,
    holdout: float,
    patience: int,
    eval_every: int,
    seed: int,
    progress: bool = False,
) -> dict:
    """Maximise the mean ELBO of the rows of ``x`` (encoded units) over the encoder's weights by
    Adam on mini-batches; every ``eval_every`` steps score the held-out rows (a fraction
    ``holdout``, with fixed Monte Carlo draws, so scores are comparable), keep the best weights
    and stop after ``patience`` evaluations without improvement. Returns the history and the
    split: ``{"train_rows", "val_rows", "train_loss", "val_loss", "steps_run", "best_val"}``
    (losses are the negative ELBO per row).

    Raises:
        ConfigError: bad sizes; TrainingError: a non-finite loss.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("n_mc", n_mc),
                        ("patience", patience), ("eval_every", eval_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} must be a positive int")
    if not (lr > 0 and 0 < holdout < 1):
        raise ConfigError(f"lr={lr} must be > 0 and holdout={holdout} in (0, 1)")
    n = len(x)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    n_val = max(1, int(round(holdout * n)))
    if n - n_val < 1:
        raise ConfigError(f"{n} rows leave none to train the posterior on; give more rows or a smaller holdout")
    val_rows, train_rows = perm[:n_val], perm[n_val:]
    val_state = gen.get_state()
    opt = torch.optim.Adam(encoder.parameters(), lr=lr)
    history: dict = {"train_loss": [], "val_loss": []}
    best, best_state, stale, t = float("inf"), copy.deepcopy(encoder.state_dict()), 0, 0
    b = min(batch_size, len(train_rows))
    bar = tqdm(range(steps), disable=not progress, desc="GAN-NCM posterior", leave=False)
    for t in bar:
        rows = train_rows[torch.randint(len(train_rows), (b,), generator=gen)]
        loss = -elbo(encoder(x[rows]), encoder.w_dim, log_lik, rows, n_mc, gen).mean()
        if not torch.isfinite(loss):
            raise TrainingError(f"the posterior's ELBO became non-finite at step {t}; lower lr={lr} or raise obs_scale")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(encoder.parameters(), MAX_GRAD_NORM)
        opt.step()
        history["train_loss"].append(float(loss.detach()))
        if (t + 1) % eval_every == 0 or t == steps - 1:
            with torch.no_grad():
                fixed = torch.Generator().set_state(val_state)
                score = float(-elbo(encoder(x[val_rows]), encoder.w_dim, log_lik, val_rows, n_mc, fixed).mean())
            history["val_loss"].append(score)
            if progress:
                bar.set_postfix(val=f"{score:.3f}")
            if score < best:
                best, best_state, stale = score, copy.deepcopy(encoder.state_dict()), 0
            else:
                stale += 1
                if stale >= patience:
                    break
    encoder.load_state_dict(best_state)
    history.update(train_rows=train_rows, val_rows=val_rows, steps_run=t + 1, best_val=best)
    return history


def refine(
    raw: torch.Tensor, dim: int, log_lik: LogLik, *, steps: int, lr: float, n_mc: int, gen: torch.Generator,
) -> torch.Tensor:
    """Semi-amortised refinement (Kim et al. 2018): ``steps`` Adam steps on each row's own
    ELBO, from the encoder's raw parameters ``raw`` (rows ``0..len(raw)-1`` of ``log_lik``).
    The rows share no parameters and Adam is element-wise, so one Adam on the sum is each
    row's own optimisation. Returns the refined raw parameters (detached)."""
    params = raw.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([params], lr=lr)
    rows = torch.arange(len(raw))
    for _ in range(steps):
        loss = -elbo(params, dim, log_lik, rows, n_mc, gen).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return params.detach()
