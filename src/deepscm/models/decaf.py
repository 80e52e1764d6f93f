"""DECAF (van Breugel, Kyono, Berrevoets & van der Schaar, "DECAF: Generating Fair Synthetic
Data Using Causally-Aware Generative Networks", NeurIPS 2021): per-node generators trained
against ONE critic on the joint, de-biased at inference by removing edges.

**Generator** (DECAF §4, the causally-aware generator). For a DAG with nodes in topological
order, each node has its own network, applied parent before child::

    x̂_i = G_i(x̂_{pa_i}, z_i),   z_i ~ N(0, I_k)  independent per node,

so the generated joint factorises along the graph like the data's. Continuous nodes are
standardised and ``G_i`` outputs the value; a binary or categorical node with ``m`` classes
outputs logits ``ℓ_i`` and its value is the one-hot Gumbel-softmax sample (Jang et al. 2017)
``softmax((ℓ_i + g)/τ)``, ``g`` standard Gumbel, made hard by the straight-through estimator
(forward: the Gumbel-max one-hot, an exact draw from ``softmax(ℓ_i)``; backward: the soft
gradient), so children read the same one-hot vectors in training as in generation.

**Critic and objective** (DECAF trains its generators against one unconditional WGAN-GP
critic of the joint; Gulrajani et al. 2017, Algorithm 1). One critic ``D`` scores the whole
row ``x = (x_1, …, x_d)`` (one-hot for categorical nodes)::

    L_D = E[D(x̂)] − E[D(x)] + λ·E[(‖∇D(x̃)‖₂ − 1)²],   x̃ = εx + (1 − ε)x̂,
    L_G = −E[D(x̂)] + ρ·Σ_i ‖W_i^pa‖₁,

``n_critic`` critic steps per generator step, Adam ``β = (0.5, 0.9)``. ``W_i^pa`` are the
first-layer weights of ``G_i`` that read the parents: DECAF's ℓ1 sparsity regulariser
(``ρ``, ``l1_weight``, default 0). DECAF's other regulariser, the NOTEARS acyclicity term
``tr(e^{W∘W}) − d``, only applies when the graph is learned; here it is given, so it is
identically 0 and omitted.

**De-biasing at inference** (DECAF §4: remove the edges, no retraining): for each removed
edge ``p → c`` the generator ``G_c`` reads, in place of ``x̂_p``, an *independent* draw of
``p`` from the model's observational distribution (a second, independent generated sample;
DECAF's reference code permutes the parent column across the batch, which is the same in
distribution). Everything not downstream of a removed edge keeps the unedited sample for the
same seed. Which edges a fairness level removes (FTU, demographic parity, conditional
fairness) is :func:`deepscm.fairness.fairness_edges`; :func:`deepscm.fairness.debiased_data`
accepts a fitted :class:`DECAF` and calls :meth:`DECAF.sample` with them.

**Relation to** :class:`~deepscm.mechanisms.adversarial.Adversarial`: that mechanism is the
same generator ``G_i`` for ONE node inside a :class:`~deepscm.DeepSCM`, trained per
mechanism against a critic on ``(x_i, pa_i)`` with the real parents as input (which the
engine's per-node training needs, and which gives abduction by an encoder). DECAF trains all
generators at once through the generated parents against a critic of the joint: the "one
critic on the joint" CausalGAN/DECAF training. It has no abduction (no counterfactuals of
units), only generation, which is all de-biasing needs.

Measured on the credit SCM (``benchmarks/results/fairness.md``; 10,000 rows, 300 epochs):
logistic regression on DECAF's FTU data has FTU 0.0058, on its DP data DP 0.0129, at an
AUROC cost of 0.027 / 0.090 against real-data training (true SCM, same edges: 0.019 / 0.091).

Example:
    >>> from deepscm.datasets.fairness_scm import load_credit                    # doctest: +SKIP
    >>> real = load_credit(5000, seed=0)                                         # doctest: +SKIP
    >>> model = DECAF(real.attrs["graph"]).fit(real, epochs=50, progress=False)  # doctest: +SKIP
    >>> fair = model.sample(10_000, seed=0, without_edges=[("sex", "credit")])  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
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
from ..mechanisms.base import MAX_GRAD_NORM, mlp, positive_int, positive_ints

__all__ = ["DECAF", "MAX_CATEGORIES"]

#: an integer, boolean or text column with more distinct values than this is refused as a
#: categorical node (give it as float to model it as continuous).
MAX_CATEGORIES = 20


def _number(name: str, value: Any, positive: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (value > 0 if positive else value >= 0)
    if not ok:
        raise ConfigError(f"{name} must be a number {'> 0' if positive else '≥ 0'}, got {value!r}")
    return float(value)


class _Generators(nn.Module):
    """One MLP ``G_i(pa_i, z_i)`` per node (``nodes`` in topological order)."""

    def __init__(self, widths: dict[str, int], parents: dict[str, list[str]], noise_dim: int,
                 hidden: Sequence[int]) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({
            node: mlp(sum(widths[p] for p in parents[node]) + noise_dim, widths[node], hidden)
            for node in widths
        })


class DECAF:
    """DECAF: per-node generators, one joint WGAN-GP critic, edge removal at inference.

    See the module docstring for the model, objective and inference.

    Args:
        graph: the causal DAG over the data's columns (edge string or
            :class:`~deepscm.CausalGraph`; no ``<->``).
        hidden_features: widths of each node's generator MLP.
        critic_features: widths of the joint critic (LeakyReLU MLP).
        noise_dim: ``k``, the width of each node's noise ``z_i``.
        critic_steps: ``n_critic``, critic steps per generator step.
        gp_weight: ``λ`` of the gradient penalty.
        l1_weight: ``ρ``, DECAF's ℓ1 penalty on the generators' parent weights.
        temperature: ``τ`` of the Gumbel-softmax of categorical nodes.
        categorical: columns to treat as categorical whatever their dtype (default: every
            integer, boolean, categorical or text column; floats are continuous).
    """

    def __init__(
        self,
        graph: GraphLike,
        hidden_features: Sequence[int] = (64, 64),
        critic_features: Sequence[int] = (128, 128),
        noise_dim: int = 4,
        critic_steps: int = 5,
        gp_weight: float = 10.0,
        l1_weight: float = 0.0,
        temperature: float = 0.5,
        categorical: Iterable[str] | None = None,
    ) -> None:
        self.graph = graph if isinstance(graph, CausalGraph) else CausalGraph(graph)
        if self.graph.has_latent_confounders:
            raise GraphError("DECAF's generators need a DAG without latent confounders (<->); "
                             "fit a deepscm.ncm model for graphs with bidirected edges")
        self.hparams: dict[str, Any] = {
            "hidden_features": positive_ints("hidden_features", hidden_features),
            "critic_features": positive_ints("critic_features", critic_features, allow_empty=False),
            "noise_dim": positive_int("noise_dim", noise_dim),
            "critic_steps": positive_int("critic_steps", critic_steps),
            "gp_weight": _number("gp_weight", gp_weight),
            "l1_weight": _number("l1_weight", l1_weight),
            "temperature": _number("temperature", temperature, positive=True),
            "categorical": sorted(categorical) if categorical is not None else None,
        }
        if categorical is not None:
            self.graph.check_nodes(set(categorical), "categorical")
        self.nodes = self.graph.topological_order()
        self.parents = {v: sorted(self.graph.parents(v)) for v in self.nodes}
        self.generators: _Generators | None = None
        self.critic: nn.Sequential | None = None
        self.columns: dict[str, dict[str, Any]] = {}
        self.column_order: list[str] = list(self.nodes)
        self.history: list[dict[str, float]] = []
        self.fit_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ data encoding
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has run."""
        return self.generators is not None

    def _describe(self, data: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """Per node: kind, and mean/sd (continuous) or the sorted categories and dtype."""
        forced = set(self.hparams["categorical"] or ())
        columns = {}
        for node in self.nodes:
            col = data[node]
            dtype = col.dtype
            if isinstance(dtype, pd.CategoricalDtype):
                col = col.astype(dtype.categories.dtype)
            if node in forced or not pd.api.types.is_float_dtype(col.dtype):
                values = sorted(pd.unique(col), key=lambda v: (str(type(v)), v))
                if len(values) > MAX_CATEGORIES:
                    raise DataError(
                        f"column {node!r} ({col.dtype}) has {len(values)} distinct values, more than the "
                        f"{MAX_CATEGORIES} a categorical node may have; convert it to float to model it as "
                        f"continuous"
                    )
                if len(values) < 2:
                    raise DataError(f"column {node!r} is constant; a causal model needs variation")
                columns[node] = {"kind": "categorical", "categories": [_plain(v) for v in values],
                                 "dtype": str(col.dtype)}
            else:
                x = col.to_numpy(np.float64)
                sd = float(x.std())
                if not sd > 0:
                    raise DataError(f"column {node!r} is constant; a causal model needs variation")
                columns[node] = {"kind": "continuous", "mean": float(x.mean()), "sd": sd}
        return columns

    def _width(self, node: str) -> int:
        info = self.columns[node]
        return len(info["categories"]) if info["kind"] == "categorical" else 1

    def _check_data(self, data: Any, role: str) -> None:
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"the {role} data must be a pandas DataFrame, got {type(data).__name__}")
        missing = [v for v in self.nodes if v not in data.columns]
        if missing:
            raise DataError(f"the {role} data lack the graph node(s) {missing}; they have {list(data.columns)}")
        unknown = [c for c in data.columns if c not in set(self.nodes)]
        if unknown:
            raise DataError(
                f"the {role} data have column(s) {unknown} that are not nodes of the graph; drop them or "
                f"add them to the graph"
            )
        na = [v for v in self.nodes if data[v].isna().any()]
        if na:
            raise DataError(f"the column(s) {na} contain missing values (NaN); drop or impute those rows first")
        bad = [v for v in self.nodes if pd.api.types.is_float_dtype(data[v].dtype)
               and not np.isfinite(data[v].to_numpy(np.float64)).all()]
        if bad:
            raise DataError(f"the column(s) {bad} contain infinite values; a model needs finite numbers")

    def _encode(self, data: pd.DataFrame) -> torch.Tensor:
        """The rows as one float matrix: standardised continuous columns, one-hot categories
        (node blocks in topological order)."""
        blocks = []
        for node in self.nodes:
            info = self.columns[node]
            col = data[node]
            if isinstance(col.dtype, pd.CategoricalDtype):
                col = col.astype(col.dtype.categories.dtype)
            if info["kind"] == "continuous":
                x = (col.to_numpy(np.float64) - info["mean"]) / info["sd"]
                blocks.append(torch.tensor(x, dtype=torch.float32)[:, None])
            else:
                lookup = {v: i for i, v in enumerate(info["categories"])}
                codes = [lookup.get(_plain(v), -1) for v in col]
                if min(codes) < 0:
                    unseen = sorted({v for v, c in zip(col, codes) if c < 0}, key=str)[:5]
                    raise DataError(f"column {node!r} has value(s) {unseen} not seen in training")
                blocks.append(nn.functional.one_hot(torch.tensor(codes), len(lookup)).float())
        return torch.cat(blocks, dim=1)

    def _decode(self, values: dict[str, torch.Tensor]) -> pd.DataFrame:
        out = {}
        for node in self.nodes:
            info, v = self.columns[node], values[node]
            if info["kind"] == "continuous":
                out[node] = v[:, 0].double().numpy() * info["sd"] + info["mean"]
            else:
                cats = np.asarray(info["categories"], dtype=object)
                col = pd.Series(cats[v.argmax(dim=1).numpy()])
                try:
                    col = col.astype(info["dtype"])
                except (TypeError, ValueError):
                    pass
                out[node] = col.to_numpy()
        return pd.DataFrame(out)[self.column_order]

    # ------------------------------------------------------------------ generation
    def _node(self, node: str, inputs: dict[str, torch.Tensor], z: torch.Tensor, gumbel: torch.Tensor | None
              ) -> torch.Tensor:
        """``x̂_node = G_node(pa, z)``: the value, or the straight-through Gumbel one-hot."""
        net_in = torch.cat([inputs[p] for p in self.parents[node]] + [z], dim=1)
        out = self.generators.nets[node](net_in)
        if self.columns[node]["kind"] == "continuous":
            return out
        soft = torch.softmax((out + gumbel) / self.hparams["temperature"], dim=1)
        hard = nn.functional.one_hot(soft.argmax(dim=1), soft.shape[1]).to(soft.dtype)
        return hard + soft - soft.detach()

    def _noise(self, n: int, generator: torch.Generator) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        noise = {}
        for node in self.nodes:
            z = torch.randn(n, self.hparams["noise_dim"], generator=generator)
            g = None
            if self.columns[node]["kind"] == "categorical":
                u = torch.rand(n, self._width(node), generator=generator).clamp(1e-10, 1 - 1e-7)
                g = -torch.log(-torch.log(u))
            noise[node] = (z, g)
        return noise

    def _generate(self, n: int, generator: torch.Generator, removed: Sequence[tuple[str, str]] = (),
                  reference: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Generate in topological order; a child of a removed edge ``p → c`` reads
        ``reference[p]`` (an independent draw) instead of ``x̂_p``."""
        noise = self._noise(n, generator)
        values: dict[str, torch.Tensor] = {}
        for node in self.nodes:
            cut = {p for p, c in removed if c == node}
            inputs = {p: (reference[p] if p in cut else values[p]) for p in self.parents[node]}
            values[node] = self._node(node, inputs, *noise[node])
        return values

    def _joint(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([values[v] for v in self.nodes], dim=1)

    def sample(self, n: int, seed: int | None = None,
               without_edges: Iterable[tuple[str, str]] | None = None) -> pd.DataFrame:
        """``n`` generated rows (the data's columns and dtypes). ``without_edges``: edges
        ``(parent, child)`` removed at inference, each removed parent drawn independently
        (module docstring); the other columns equal the unedited sample of the same
        ``seed``. ``result.attrs["removed_edges"]`` lists them."""
        self._require_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n must be a positive integer, got {n!r}")
        removed = self._check_edges(without_edges)
        seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)
        with torch.no_grad():
            reference = None
            if removed:
                ref_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
                reference = self._generate(n, torch.Generator().manual_seed(ref_seed))
            values = self._generate(n, torch.Generator().manual_seed(seed), removed, reference)
        frame = self._decode(values)
        frame.attrs["removed_edges"] = removed
        return frame

    def _check_edges(self, edges: Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
        if edges is None:
            return []
        if isinstance(edges, (str, bytes)):
            raise GraphError(f"without_edges takes (parent, child) pairs, e.g. [('a', 'b')], got {edges!r}")
        out = []
        for edge in edges:
            if isinstance(edge, (str, bytes)) or len(tuple(edge)) != 2:
                raise GraphError(f"without_edges takes (parent, child) pairs, got {edge!r}")
            p, c = (str(v) for v in edge)
            unknown = [v for v in (p, c) if v not in self.graph]
            if unknown:
                raise GraphError(f"cannot remove {p} -> {c}: {unknown} not node(s) of the graph {self.nodes}")
            if p not in self.parents[c]:
                raise GraphError(f"cannot remove {p} -> {c}: the graph has no such edge; the parents of {c!r} "
                                 f"are {self.parents[c]}")
            if (p, c) not in out:
                out.append((p, c))
        return out

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data: pd.DataFrame,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = True,
    ) -> DECAF:
        """Train the generators and the joint critic by WGAN-GP for ``epochs`` passes over
        ``data`` (one critic step per batch, a generator step every ``n_critic`` batches).
        Returns ``self``."""
        for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")
        _number("lr", lr, positive=True)
        self._check_data(data, "training")
        if len(data) < 10:
            raise DataError(f"fit needs at least 10 rows, got {len(data)}")
        self.columns = self._describe(data)
        self.column_order = [str(c) for c in data.columns]
        x = self._encode(data)
        started = time.perf_counter()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            widths = {v: self._width(v) for v in self.nodes}
            self.generators = _Generators(widths, self.parents, self.hparams["noise_dim"],
                                          self.hparams["hidden_features"])
            self.critic = mlp(x.shape[1], 1, self.hparams["critic_features"], activation=nn.LeakyReLU)
        gen_opt = torch.optim.Adam(self.generators.parameters(), lr=lr, betas=(0.5, 0.9))
        critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=(0.5, 0.9))
        g = torch.Generator().manual_seed(seed)
        batch_size = min(batch_size, len(x))
        self.history = []
        step = 0
        for epoch in tqdm(range(epochs), desc="fitting DECAF", disable=not progress):
            order = torch.randperm(len(x), generator=g)
            sums = {"critic": 0.0, "generator": 0.0}
            counts = {"critic": 0, "generator": 0}
            for start in range(0, len(x) - batch_size + 1, batch_size):
                real = x[order[start:start + batch_size]]
                critic_opt.zero_grad(set_to_none=True)
                loss = self._critic_loss(real, g)
                if not torch.isfinite(loss):
                    raise TrainingError(f"the DECAF critic loss became non-finite in epoch {epoch}; lower lr (now {lr})")
                loss.backward()
                nn.utils.clip_grad_norm_(self.critic.parameters(), MAX_GRAD_NORM)
                critic_opt.step()
                sums["critic"] += float(loss.detach())
                counts["critic"] += 1
                step += 1
                if step % self.hparams["critic_steps"] == 0:
                    gen_opt.zero_grad(set_to_none=True)
                    gloss = self._generator_loss(len(real), g)
                    gloss.backward()
                    nn.utils.clip_grad_norm_(self.generators.parameters(), MAX_GRAD_NORM)
                    gen_opt.step()
                    sums["generator"] += float(gloss.detach())
                    counts["generator"] += 1
            self.history.append({"epoch": epoch, **{k: sums[k] / max(counts[k], 1) for k in sums}})
        self.generators.eval()
        self.critic.eval()
        self.fit_info = {"rows": len(x), "epochs": epochs, "seed": seed, "lr": lr, "batch_size": batch_size,
                         "seconds": round(time.perf_counter() - started, 2)}
        return self

    def _critic_loss(self, real: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``L_D`` with the gradient penalty (module docstring)."""
        with torch.no_grad():
            fake = self._joint(self._generate(len(real), g))
        loss = self.critic(fake).mean() - self.critic(real).mean()
        if self.hparams["gp_weight"] > 0:
            eps = torch.rand(len(real), 1, generator=g)
            mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.critic(mixed).sum(), mixed, create_graph=True)
            loss = loss + self.hparams["gp_weight"] * (grad.norm(dim=-1) - 1).square().mean()
        return loss

    def _generator_loss(self, n: int, g: torch.Generator) -> torch.Tensor:
        """``L_G = −E[D(x̂)] + ρ Σ_i ‖W_i^pa‖₁`` (module docstring)."""
        loss = -self.critic(self._joint(self._generate(n, g))).mean()
        if self.hparams["l1_weight"] > 0:
            l1 = sum(net[0].weight[:, :net[0].in_features - self.hparams["noise_dim"]].abs().sum()
                     for net in self.generators.nets.values())
            loss = loss + self.hparams["l1_weight"] * l1
        return loss

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the fitted model to directory ``path`` without pickle: generator and critic
        weights as safetensors, configuration and column encodings as checksummed JSON
        (:func:`deepscm.io.write_bundle`)."""
        self._require_fitted()
        tensors = {f"generators/{k}": v for k, v in self.generators.state_dict().items()}
        tensors.update({f"critic/{k}": v for k, v in self.critic.state_dict().items()})
        meta = {
            "model": "DECAF",
            "deepscm_version": __version__,
            "graph": str(self.graph),
            "hparams": self.hparams,
            "columns": self.columns,
            "column_order": self.column_order,
            "history": self.history,
            "fit": self.fit_info,
        }
        return write_bundle(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> DECAF:
        """Load a model written by :meth:`save` (never executes code from the file); a
        missing, edited or inconsistent file raises :class:`~deepscm.errors.ModelFileError`."""
        tensors, meta = read_bundle(path, model="DECAF")
        try:
            model = cls(meta["graph"], **meta["hparams"])
            model.columns = {k: dict(v) for k, v in meta["columns"].items()}
            model.column_order = [str(c) for c in meta["column_order"]]
            if set(model.columns) != set(model.nodes) or sorted(model.column_order) != sorted(model.nodes):
                raise ValueError("the stored columns do not match the graph's nodes")
            with torch.random.fork_rng():
                model.generators = _Generators({v: model._width(v) for v in model.nodes}, model.parents,
                                               model.hparams["noise_dim"], model.hparams["hidden_features"])
                width = sum(model._width(v) for v in model.nodes)
                model.critic = mlp(width, 1, model.hparams["critic_features"], activation=nn.LeakyReLU)
            for name, module in (("generators", model.generators), ("critic", model.critic)):
                prefix = f"{name}/"
                module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)},
                                       strict=True)
                module.eval()
            model.history, model.fit_info = list(meta["history"]), dict(meta["fit"])
        except ModelFileError:
            raise
        except (DeepSCMError, KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ModelFileError(f"{path} is inconsistent: {type(err).__name__}: {err}") from None
        return model

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError("the DECAF model is not fitted; call fit(data) first")

    def __repr__(self) -> str:
        return f"DECAF(graph={str(self.graph)!r}, {'fitted' if self.is_fitted else 'not fitted'})"


def _plain(value: Any) -> Any:
    """A JSON-able Python scalar for a category value (numpy ints/bools → int/bool)."""
    return value.item() if isinstance(value, np.generic) else value
