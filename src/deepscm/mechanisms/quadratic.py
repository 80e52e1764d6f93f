"""Quadratic additive-noise mechanism fitted in closed form: ``x = W·φ(pa) + b + u``.

``φ(pa)`` holds the parents, their squares and their pairwise products (a second-order
response surface; the products are left out beyond :data:`MAX_INTERACTION_PARENTS` parent
columns, where their number grows as ``c²/2``). Everything else is
:class:`~deepscm.mechanisms.linear.LinearGaussian`'s: ``(W, b)`` by least squares on the
training rows, no gradient steps; Gaussian or kernel-density noise; exact abduction
``u = x − W·φ(pa) − b``. It is the parametric model of a curved effect (DoWhy-gcm's automatic
assignment tries polynomial features with a linear regression): where the effect is a
parabola, the fitted parabola has the estimation error of a line, a fraction of what a neural
or tree location learns from the same rows.

It is not a candidate of automatic selection (``mechanisms="auto"``): on held-out likelihood
it is within a few hundredths of a nat per row of the spline flow both where the effect is
exactly quadratic and where it is only nearly so (a cubic over a short range, a kink, parents
so correlated that the squares and products are nearly collinear), and in the second kind its
counterfactuals were up to 4× worse than the flow's (``benchmarks/quadratic_candidate.py``,
docs/guide/mechanisms.md). Choose it by
name where the curve is known to be a parabola: ``mechanisms={"y": "quadratic"}``.
"""

from __future__ import annotations

import torch

from .linear import LinearGaussian

__all__ = ["MAX_INTERACTION_PARENTS", "Quadratic"]

#: pairwise products are regressors up to this many parent columns (66 products at 12).
MAX_INTERACTION_PARENTS = 12


class Quadratic(LinearGaussian):
    """``x = W·[pa, pa², pa_i·pa_j (i < j)] + b + u`` by least squares (closed form).

    Args:
        noise: ``"kde"`` (kernel density of the residuals; the default) or ``"gaussian"``.
        max_residuals: for ``noise="kde"``, at most this many training residuals form the
            density.
    """

    def __init__(self, noise: str = "kde", max_residuals: int = 2_000) -> None:
        super().__init__(noise=noise, max_residuals=max_residuals)

    def n_features(self, context_dim: int) -> int:
        products = context_dim * (context_dim - 1) // 2 if context_dim <= MAX_INTERACTION_PARENTS else 0
        return 2 * context_dim + products

    def features(self, context: torch.Tensor) -> torch.Tensor:
        """``[pa, pa², pa_i·pa_j for i < j]`` (the products only up to
        :data:`MAX_INTERACTION_PARENTS` columns), ``(n, n_features)``."""
        c = context.shape[1]
        parts = [context, context.square()]
        if 1 < c <= MAX_INTERACTION_PARENTS:
            i, j = torch.triu_indices(c, c, offset=1, device=context.device)
            parts.append(context[:, i] * context[:, j])
        return torch.cat(parts, dim=1)
