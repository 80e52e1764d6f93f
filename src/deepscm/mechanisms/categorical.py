"""Discrete mechanisms as Gumbel-max SCMs with posterior-Gumbel counterfactuals.

``x = argmax_k (l_k(pa) + g_k)`` with ``g_k ~ Gumbel(0, 1)`` i.i.d. and ``l = log softmax`` of
an MLP of the parents. The noise is not identified by ``(x, pa)``: abduction draws ``g`` from
its posterior given that category ``x`` won (Oberst & Sontag 2019, §3; top-down sampling of
Maddison et al. 2014): the maximum ``T = max_k (l_k + g_k) ~ Gumbel(logsumexp l) = Gumbel(0)``
is attained at ``x``; every other ``l_k + g_k`` is a Gumbel(``l_k``) truncated below ``T``,
drawn as ``-log(exp(-T) + exp(-G_k))`` with ``G_k ~ Gumbel(l_k)``.

A root node's ``p(x)`` is fitted in closed form (no gradient steps): its logits are the
log-frequencies of the training rows, each count smoothed by half an observation
(Krichevsky–Trofimov), ``l_k = log((c_k + ½) / (n + K/2))``, so a category that the training
split happens to miss keeps a finite likelihood.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import Mechanism, MechanismSpec, mlp, positive_ints

__all__ = ["Categorical", "gumbel"]


def gumbel(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel draws ``-log(-log U)``."""
    u = torch.rand(shape, generator=generator, device=generator.device)
    u = u.clamp(torch.finfo(u.dtype).tiny, 1.0 - torch.finfo(u.dtype).eps)
    return -torch.log(-torch.log(u))


class Categorical(Mechanism):
    """A categorical ``p(x | pa)`` with MLP logits, sampled and abducted by Gumbel-max.

    Args:
        hidden_features: MLP widths (ignored for a root node, whose logits are its smoothed
            log-frequencies, fitted in closed form).
    """

    abduction = "posterior"
    handles = frozenset({"discrete"})

    def __init__(self, hidden_features: tuple[int, ...] | list[int] = (64, 64)) -> None:
        super().__init__(hidden_features=positive_ints("hidden_features", hidden_features))

    def _build(self, spec: MechanismSpec) -> None:
        k = spec.n_categories
        if k is None or k < 2:
            raise ConfigError("Categorical needs a discrete node with at least two categories")
        if spec.context_dim:
            self.net = mlp(spec.context_dim, k, self.hparams["hidden_features"])
        else:
            self.register_buffer("root_logits", torch.zeros(k))

    def after_fit(self, x: torch.Tensor, context: torch.Tensor) -> None:
        """A root's closed-form fit: ``l_k = log((c_k + ½) / (n + K/2))`` from the category
        counts ``c_k`` of the ``n`` training rows (a node with parents keeps its trained MLP)."""
        if self.spec.context_dim:
            return
        k = self.spec.n_categories
        counts = torch.bincount(x.detach().long().reshape(-1), minlength=k).to(self.root_logits)
        self.root_logits = torch.log((counts + 0.5) / (counts.sum() + 0.5 * k))

    def logits(self, context: torch.Tensor) -> torch.Tensor:
        """Normalised log-probabilities ``l(pa)``, shape ``(n, K)``."""
        raw = self.net(context) if self.spec.context_dim else self.root_logits.expand(len(context), -1)
        return torch.log_softmax(raw, dim=-1)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.logits(context).gather(-1, x.long().unsqueeze(-1)).squeeze(-1)

    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return gumbel((n, self.spec.n_categories), generator)

    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return torch.argmax(self.logits(context) + noise, dim=-1)

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if generator is None:
            raise ConfigError("Gumbel-max abduction is stochastic: pass a torch.Generator")
        logits = self.logits(context)
        top = gumbel((len(x), 1), generator)  # max of l + g, since logsumexp(l) = 0
        others = logits + gumbel(tuple(logits.shape), generator)
        truncated = -torch.log(torch.exp(-top) + torch.exp(-others))
        won = nn.functional.one_hot(x.long(), logits.shape[-1]).bool()
        perturbed = torch.where(won, top.expand_as(logits), truncated)
        return perturbed - logits
