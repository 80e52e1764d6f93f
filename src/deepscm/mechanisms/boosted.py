"""Additive-noise mechanism with a gradient-boosted location: ``x = a + B·pa + g(pa) + u``.

The location is a least-squares line plus scikit-learn's ``HistGradientBoostingRegressor``
fitted to its residuals: the trees capture non-linear effects and interactions as well as the
tabular regressors DoWhy-gcm's auto-assignment picks, while the linear part lets the location
extrapolate linearly beyond the training range (trees are constant there). The noise ``u`` is
the additive residual, its prior a Gaussian kernel density of the training residuals
``r_j`` (Silverman's bandwidth ``h``) mixed with a defensive Gaussian of the residuals'
standard deviation ``s`` (weight ``w``, so a held-out residual in the tails is not scored as
impossible), which defines a likelihood comparable with other mechanisms:

.. math::

    p(x \\mid pa) = (1 - w)\\,\\frac{1}{m} \\sum_{j=1}^{m} N(u - r_j;\\, 0, h^2)
                     + w\\, N(u;\\, 0, s^2), \\qquad u = x - \\mu(pa)

Abduction is exact, ``u = x − μ(pa)`` (an additive noise model, Hoyer et al. 2009), and
sampling draws ``u`` from the kernel density. Fitting is closed-form on the training rows
(no gradient steps). The trees are stored as tensors (split feature, threshold, children,
leaf value), so the model saves to safetensors and predicts on any device without pickle.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .base import Mechanism, MechanismSpec, positive_int

__all__ = ["BoostedAdditive"]

_LOG_2PI = math.log(2 * math.pi)
#: rows per block of the kernel-density evaluation.
_KDE_ROWS = 4096
#: weight of the defensive Gaussian in the noise density.
_DEFENSIVE = 0.05


class BoostedAdditive(Mechanism):
    """``x = a + B·pa + g(pa) + u`` with boosted trees ``g`` and kernel-density noise ``u``.

    Args:
        max_iter: boosting iterations (trees per output column).
        max_leaf_nodes: leaves per tree.
        learning_rate: shrinkage of each tree.
        max_residuals: at most this many training residuals form the noise density.
    """

    abduction = "exact"
    likelihood = "exact"

    def __init__(
        self,
        max_iter: int = 100,
        max_leaf_nodes: int = 31,
        learning_rate: float = 0.1,
        max_residuals: int = 2_000,
    ) -> None:
        if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate <= 1):
            raise ConfigError(f"learning_rate must be in (0, 1], got {learning_rate!r}")
        super().__init__(
            max_iter=positive_int("max_iter", max_iter),
            max_leaf_nodes=positive_int("max_leaf_nodes", max_leaf_nodes),
            learning_rate=float(learning_rate),
            max_residuals=positive_int("max_residuals", max_residuals),
        )

    def _build(self, spec: MechanismSpec) -> None:
        d, c = spec.x_dim, spec.context_dim
        self.register_buffer("weight", torch.zeros(d, c))
        self.register_buffer("bias", torch.zeros(d))
        self._allocate(trees=0, nodes=1, residuals=0)

    def _allocate(self, trees: int, nodes: int, residuals: int) -> None:
        d = self.spec.x_dim
        self.register_buffer("feature", torch.zeros(d, trees, nodes, dtype=torch.long))
        self.register_buffer("threshold", torch.zeros(d, trees, nodes))
        self.register_buffer("left", torch.zeros(d, trees, nodes, dtype=torch.long))
        self.register_buffer("right", torch.zeros(d, trees, nodes, dtype=torch.long))
        self.register_buffer("leaf", torch.zeros(d, trees, nodes, dtype=torch.bool))
        self.register_buffer("value", torch.zeros(d, trees, nodes))
        self.register_buffer("baseline", torch.zeros(d))
        self.register_buffer("residuals", torch.zeros(residuals, d))
        self.register_buffer("bandwidth", torch.ones(d))
        self.register_buffer("spread", torch.ones(d))

    # ------------------------------------------------------------------ fitting
    def after_fit(self, x: torch.Tensor, context: torch.Tensor) -> None:
        """Closed-form fit on the training rows: least squares, boosted trees on its residuals,
        then the kernel density of the final residuals."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        device = x.device
        xs = x.detach().double().cpu().numpy()
        cs = context.detach().double().cpu().numpy()
        design = np.column_stack([cs, np.ones(len(xs))])
        solution = np.linalg.lstsq(design, xs, rcond=None)[0]
        linear_residual = xs - design @ solution
        tables = []
        if cs.shape[1]:
            for j in range(xs.shape[1]):
                model = HistGradientBoostingRegressor(
                    max_iter=self.hparams["max_iter"],
                    max_leaf_nodes=self.hparams["max_leaf_nodes"],
                    learning_rate=self.hparams["learning_rate"],
                    early_stopping=False,
                    random_state=0,
                ).fit(cs.astype(np.float32), linear_residual[:, j])
                tables.append(_tree_tables(model))
        trees = max((len(t["value"]) for t in tables), default=0)
        nodes = max((t["value"].shape[1] for t in tables), default=1)
        residual = torch.as_tensor(linear_residual, dtype=torch.float32)
        keep = self.hparams["max_residuals"]
        self.weight = torch.as_tensor(solution[:-1].T, dtype=torch.float32)
        self.bias = torch.as_tensor(solution[-1], dtype=torch.float32).reshape(-1)
        self._allocate(trees, nodes, 0)
        for j, table in enumerate(tables):
            for name, array in table.items():
                if name == "baseline":
                    self.baseline[j] = float(array)
                    continue
                target = getattr(self, name)
                t, k = array.shape
                target[j, :t, :k] = torch.as_tensor(array, dtype=target.dtype)
                if name == "leaf":  # padding: a leaf of value 0
                    target[j, t:, :] = True
                    target[j, :t, k:] = True
        self.to(device)
        with torch.no_grad():
            residual = x.detach().float() - self.mean(context.detach().float())
        self.spread = residual.std(dim=0).clamp_min(1e-3)
        if len(residual) > keep:
            g = torch.Generator(device=device).manual_seed(0)
            residual = residual[torch.randperm(len(residual), generator=g, device=device)[:keep]]
        self.residuals = residual.contiguous()
        scale = torch.minimum(residual.std(dim=0), _iqr(residual) / 1.34).clamp_min(1e-3)
        self.bandwidth = 0.9 * scale * len(residual) ** -0.2

    def extra_config(self) -> dict[str, Any]:
        return {
            "trees": int(self.value.shape[1]), "nodes": int(self.value.shape[2]),
            "residuals": int(self.residuals.shape[0]),
        }

    def load_extra_config(self, state: dict[str, Any]) -> None:
        self._allocate(int(state["trees"]), int(state["nodes"]), int(state["residuals"]))

    # ------------------------------------------------------------------ the mechanism
    def mean(self, context: torch.Tensor) -> torch.Tensor:
        """``μ(pa) = a + B·pa + g(pa)``, shape ``(n, d)``."""
        linear = context @ self.weight.T + self.bias
        if not self.value.shape[1]:
            return linear
        return linear + self._trees(context)

    def _trees(self, context: torch.Tensor) -> torch.Tensor:
        """Sum of the boosted trees per output column: every tree walked in parallel."""
        d, trees, _ = self.value.shape
        n = len(context)
        out = []
        for j in range(d):
            node = torch.zeros(n, trees, dtype=torch.long, device=context.device)
            index = torch.arange(trees, device=context.device)
            for _ in range(self.hparams["max_leaf_nodes"]):
                leaf = self.leaf[j, index, node]
                if bool(leaf.all()):
                    break
                feature = self.feature[j, index, node]
                goes_left = context.gather(1, feature) <= self.threshold[j, index, node]
                step = torch.where(goes_left, self.left[j, index, node], self.right[j, index, node])
                node = torch.where(leaf, node, step)
            out.append(self.value[j, index, node].sum(dim=1) + self.baseline[j])
        return torch.stack(out, dim=1)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        u = x - self.mean(context)  # (n, d)
        parts = []
        for first in range(0, len(u), _KDE_ROWS):  # bounds the (rows, residuals, d) kernel
            z = (u[first : first + _KDE_ROWS].unsqueeze(1) - self.residuals.unsqueeze(0)) / self.bandwidth
            kernel = -0.5 * z.square() - self.bandwidth.log() - 0.5 * _LOG_2PI
            kde = torch.logsumexp(kernel, dim=1) - math.log(len(self.residuals))
            block = u[first : first + _KDE_ROWS] / self.spread
            wide = -0.5 * block.square() - self.spread.log() - 0.5 * _LOG_2PI
            mixed = torch.logaddexp(kde + math.log(1 - _DEFENSIVE), wide + math.log(_DEFENSIVE))
            parts.append(mixed.sum(-1))
        return torch.cat(parts) if parts else u.sum(-1)

    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draws from the noise density: a residual plus kernel jitter, or (with probability
        ``w``) the defensive Gaussian."""
        dev = generator.device
        idx = torch.randint(len(self.residuals), (n,), generator=generator, device=dev)
        jitter = torch.randn(n, self.spec.x_dim, generator=generator, device=dev)
        wide = torch.rand(n, 1, generator=generator, device=dev) < _DEFENSIVE
        kde = self.residuals.to(dev)[idx] + self.bandwidth.to(dev) * jitter
        return torch.where(wide, self.spread.to(dev) * jitter, kde)

    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.mean(context) + noise

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return x - self.mean(context)


def _tree_tables(model: Any) -> dict[str, np.ndarray]:
    """The fitted trees of a ``HistGradientBoostingRegressor`` as padded arrays
    ``(trees, nodes)``; a numeric split sends ``x <= threshold`` left, as scikit-learn does."""
    predictors = [iteration[0] for iteration in model._predictors]
    width = max(len(p.nodes) for p in predictors)
    fields = {"feature": "feature_idx", "threshold": "num_threshold", "left": "left",
              "right": "right", "leaf": "is_leaf", "value": "value"}
    tables = {name: np.zeros((len(predictors), width)) for name in fields}
    tables["leaf"] = np.ones((len(predictors), width), dtype=bool)
    for t, p in enumerate(predictors):
        for name, field in fields.items():
            tables[name][t, : len(p.nodes)] = p.nodes[field]
    tables["baseline"] = np.asarray(model._baseline_prediction).reshape(-1)[0]
    return tables


def _iqr(values: torch.Tensor) -> torch.Tensor:
    q = torch.quantile(values, torch.tensor([0.25, 0.75], device=values.device), dim=0)
    return q[1] - q[0]
