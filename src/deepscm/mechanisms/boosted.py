"""Additive-noise mechanism with a gradient-boosted location: ``x = a + B·pa + g(pa) + u``.

The location is a least-squares line plus scikit-learn's ``HistGradientBoostingRegressor``
fitted to its residuals: the trees capture non-linear effects and interactions as well as the
tabular regressors DoWhy-gcm's auto-assignment picks, while the linear part lets the location
extrapolate linearly beyond the training range (trees are constant there). The noise ``u`` is
the additive residual, its prior the kernel density of the training residuals of
:class:`~deepscm.mechanisms.residual_density.ResidualDensity` (a likelihood comparable with
other mechanisms'). Abduction is exact, ``u = x − μ(pa)`` (an additive noise model, Hoyer et
al. 2009), and sampling draws ``u`` from the kernel density. Fitting is closed-form on the training rows
(no gradient steps). The trees are stored as tensors (split feature, threshold, children,
leaf value), so the model saves to safetensors and predicts on any device without pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .base import Mechanism, MechanismSpec, positive_int
from .residual_density import ResidualDensity

__all__ = ["BoostedAdditive"]


class BoostedAdditive(Mechanism):
    """``x = a + B·pa + g(pa) + u`` with boosted trees ``g`` and kernel-density noise ``u``.

    Args:
        max_iter: at most this many boosting iterations (trees per output column).
        max_leaf_nodes: leaves per tree.
        learning_rate: shrinkage of each tree.
        max_residuals: at most this many training residuals form the noise density.
        early_stopping: stop boosting once the squared error on 10 % of the training rows,
            held out by scikit-learn, has not improved for 10 iterations (its
            ``early_stopping=True``). On 10 suite SCMs it kept 10–61 trees, the held-out
            log-likelihood was better on 32 of 35 nodes than with all 100 trees, and the trees
            took 7.3 s instead of 20.7 s (``benchmarks/boosted_early_stopping.py``);
            ``False`` fits ``max_iter`` trees.
    """

    abduction = "exact"
    likelihood = "exact"

    def __init__(
        self,
        max_iter: int = 100,
        max_leaf_nodes: int = 31,
        learning_rate: float = 0.1,
        max_residuals: int = 2_000,
        early_stopping: bool = True,
    ) -> None:
        if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate <= 1):
            raise ConfigError(f"learning_rate must be in (0, 1], got {learning_rate!r}")
        if not isinstance(early_stopping, bool):
            raise ConfigError(f"early_stopping must be True or False, got {early_stopping!r}")
        super().__init__(
            max_iter=positive_int("max_iter", max_iter),
            max_leaf_nodes=positive_int("max_leaf_nodes", max_leaf_nodes),
            learning_rate=float(learning_rate),
            max_residuals=positive_int("max_residuals", max_residuals),
            early_stopping=early_stopping,
        )

    def _build(self, spec: MechanismSpec) -> None:
        d, c = spec.x_dim, spec.context_dim
        self.register_buffer("weight", torch.zeros(d, c))
        self.register_buffer("bias", torch.zeros(d))
        self.noise = ResidualDensity(d, self.hparams["max_residuals"])
        self._allocate(trees=0, nodes=1)

    def _allocate(self, trees: int, nodes: int) -> None:
        d = self.spec.x_dim
        self.register_buffer("feature", torch.zeros(d, trees, nodes, dtype=torch.long))
        self.register_buffer("threshold", torch.zeros(d, trees, nodes))
        self.register_buffer("left", torch.zeros(d, trees, nodes, dtype=torch.long))
        self.register_buffer("right", torch.zeros(d, trees, nodes, dtype=torch.long))
        self.register_buffer("leaf", torch.zeros(d, trees, nodes, dtype=torch.bool))
        self.register_buffer("value", torch.zeros(d, trees, nodes))
        self.register_buffer("baseline", torch.zeros(d))

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
        residual = linear_residual.copy()
        if cs.shape[1]:
            for j in range(xs.shape[1]):
                model = HistGradientBoostingRegressor(
                    max_iter=self.hparams["max_iter"],
                    max_leaf_nodes=self.hparams["max_leaf_nodes"],
                    learning_rate=self.hparams["learning_rate"],
                    early_stopping=self.hparams["early_stopping"],
                    random_state=0,
                ).fit(cs.astype(np.float32), linear_residual[:, j])
                tables.append(_tree_tables(model))
                residual[:, j] -= model.predict(cs.astype(np.float32))  # what the tables predict
        trees = max((len(t["value"]) for t in tables), default=0)
        nodes = max((t["value"].shape[1] for t in tables), default=1)
        self.weight = torch.as_tensor(solution[:-1].T, dtype=torch.float32)
        self.bias = torch.as_tensor(solution[-1], dtype=torch.float32).reshape(-1)
        self._allocate(trees, nodes)
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
        self.noise.fit(torch.as_tensor(residual, dtype=torch.float32, device=device))

    def extra_config(self) -> dict[str, Any]:
        return {
            "trees": int(self.value.shape[1]), "nodes": int(self.value.shape[2]),
            "residuals": int(self.noise.residuals.shape[0]),
        }

    def load_extra_config(self, state: dict[str, Any]) -> None:
        self._allocate(int(state["trees"]), int(state["nodes"]))
        self.noise.allocate(int(state["residuals"]))

    # ------------------------------------------------------------------ the mechanism
    def mean(self, context: torch.Tensor) -> torch.Tensor:
        """``μ(pa) = a + B·pa + g(pa)``, shape ``(n, d)``."""
        linear = context @ self.weight.T + self.bias
        if not self.value.shape[1]:
            return linear
        return linear + self._trees(context)

    def _trees(self, context: torch.Tensor) -> torch.Tensor:
        """Sum of the boosted trees per output column: every tree walked in parallel, one level
        per step. Nodes are numbered across trees (``tree · nodes + node``) so that every level
        is a few flat lookups, and a leaf is its own child both ways, so a walk that reached a
        leaf stays there; the walk ends when no row moves (at most ``max_leaf_nodes`` levels)."""
        d, trees, nodes = self.value.shape
        device = context.device
        offsets = torch.arange(trees, device=device)[:, None] * nodes
        own = torch.arange(nodes, device=device).expand(trees, nodes)
        out = []
        for j in range(d):
            leaf = self.leaf[j]
            children = torch.stack(  # [flat node, 0: left (x <= threshold) / 1: right]
                (torch.where(leaf, own, self.left[j]), torch.where(leaf, own, self.right[j])), dim=-1
            ).add_(offsets[..., None]).reshape(-1)
            feature, threshold = self.feature[j].reshape(-1), self.threshold[j].reshape(-1)
            node = offsets.reshape(1, trees).expand(len(context), trees)
            for _ in range(self.hparams["max_leaf_nodes"]):
                goes_right = ~(context.gather(1, feature[node]) <= threshold[node])
                step = children[node * 2 + goes_right]
                if torch.equal(step, node):
                    break
                node = step
            out.append(self.value[j].reshape(-1)[node].sum(dim=1) + self.baseline[j])
        return torch.stack(out, dim=1)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.noise.log_prob(x - self.mean(context))

    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.noise.sample(n, generator)

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

