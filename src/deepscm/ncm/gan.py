r"""GAN-NCM: a neural causal model for continuous or mixed data, trained by WGAN-GP.

The model (Xia, Lee, Kersting & Bareinboim 2021, Def. 7; the GAN-NCM of Xia, Pan &
Bareinboim 2023, "Neural Causal Models for Counterfactual Identification and Estimation")
over a graph ``G`` with bidirected edges is ``M̂ = ⟨Û, V, F̂, P(Û)⟩``:

- one shared latent ``Û_C ~ N(0, I_{u_dim})`` per C²-component ``C`` (a maximal clique of the
  bidirected edges, :func:`deepscm.ncm.c2_components`), independent across components;
- per node an independent noise: ``ε_i ~ N(0, I_{noise_dim})`` for a continuous node, a
  Gumbel vector ``g_i`` for a discrete one;
- per node an MLP with a linear skip path: a continuous node is
  ``v_i = f_i(pa_i, û_{C ∋ i}, ε_i)`` (standardised units), a discrete node with ``K``
  categories is the Gumbel-max draw ``v_i = argmax_k (ℓ_i(pa_i, û_{C ∋ i})_k + g_{ik})``;
  discrete parents enter one-hot. In training the draw is the straight-through
  Gumbel-softmax (Jang et al. 2017): forward one-hot, backward ``softmax((ℓ + g)/τ)``.

**Training** (WGAN-GP, Gulrajani et al. 2017, Alg. 1): a critic ``D`` and the generators are
stepped alternately, ``n_critic`` critic steps (Adam, ``β = (0.5, 0.9)``) per generator step::

    L_D = E[D(fake)] − E[D(real)] + λ·E[(‖∇D(x̃)‖₂ − 1)²],  x̃ = t·real + (1 − t)·fake,  λ = 10
    L_G = −E[D(fake)]

The fitted generators are the exponential moving average of the generator iterates
(Yazıcı et al. 2019, "The unusual effectiveness of averaging in GAN training").

- ``modular=False``: one critic on the joint ``(v_1, …, v_d)``;
- ``modular=True`` (Rahman & Kocaoglu 2024, "Modular learning of deep causal generative
  models"): the nodes are split into *training groups*, each with its own critic on
  ``(group's nodes, their parents outside the group)``; the group's generators are fed the
  *real* outside parents of the same rows, so each group learns ``P(S | pa(S) \ S)`` on its
  own, and a small node is not drowned by a large block in one critic's input. A group is a
  c-component (``G.c_components()``), merged with the components on the directed paths from
  it to any of its outside parents that descends from it: only when no outside parent is a
  descendant of ``S`` does ``P(s | pa_out) = Q[S] = P(s | do(pa_out))`` (rule 2 of
  do-calculus; a descendant parent would be generated independently of the ``S`` values it
  depends on). :attr:`GANNCM.groups` lists them.

**Queries** (``sample(n, do=...)``, :meth:`GANNCM.mean_do`, :meth:`GANNCM.ate`,
:meth:`GANNCM.atd`) draw ``Û`` and the noises once and evaluate the mutilated model, so the two
arms of an ATE share their noise (common random numbers). Like every NCM, the answer is
meaningful only for an identifiable query: the data pin down ``P(V)``, not the latents
(:mod:`deepscm.ncm.continuous_bounds` bounds the rest).

Example:
    >>> from deepscm.datasets.confounded_continuous import load_confounded_continuous
    >>> scm = load_confounded_continuous("bow")
    >>> ncm = GANNCM(scm.graph, seed=0).fit(scm.sample(500, seed=1), steps=20)
    >>> ncm.sample(3, do={"x": 1.0}).shape
    (3, 2)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError, NotFittedError, TrainingError
from ..graph import CausalGraph
from ..mechanisms.base import MAX_GRAD_NORM, SkipMLP, mlp
from .model import c2_components
from .queries import as_graph, check_observed

__all__ = ["GANNCM", "training_groups"]

#: a column with at most this many distinct integer values is taken as discrete when
#: ``discrete`` is not given and its dtype is integer.
MAX_AUTO_CATEGORIES = 10


def training_groups(graph: CausalGraph) -> list[tuple[str, ...]]:
    """The groups of modular training (module docstring): c-components, merged until no
    group has an outside parent that descends from it. Each group in topological order."""
    groups = [set(c) for c in graph.c_components()]
    changed = True
    while changed:
        changed = False
        for s in groups:
            outside = {p for v in s for p in graph.parents(v)} - s
            bad = outside & graph.descendants(s)
            if bad:
                path = (graph.descendants(s) & graph.ancestors(bad)) | s
                merged = set().union(*(g for g in groups if g & path))
                groups = [g for g in groups if not g & path] + [merged]
                changed = True
                break
    order = {n: i for i, n in enumerate(graph.nodes)}
    out = [tuple(sorted(g, key=order.__getitem__)) for g in groups]
    return sorted(out, key=lambda g: order[g[0]])


class GANNCM:
    """A GAN-trained neural causal model for continuous or mixed data (module docstring).

    Args:
        graph: the causal graph (``a <-> b`` for a hidden confounder of ``a`` and ``b``).
        discrete: the discrete nodes; ``None`` takes bool, category, object and integer
            columns with at most :data:`MAX_AUTO_CATEGORIES` values (decided at ``fit``).
        u_dim: width of each shared latent ``Û_C``.
        noise_dim: width of each continuous node's own noise ``ε_i``.
        hidden: widths of each generator's hidden layers.
        critic_hidden: widths of each critic's hidden layers (LeakyReLU).
        modular: one critic per training group (Rahman & Kocaoglu 2024) instead of one on
            the joint.
        seed: seeds the weights, the minibatches and every draw.

    Raises:
        GraphError: a malformed or cyclic graph.
        ConfigError: non-positive sizes.
    """

    def __init__(
        self,
        graph: CausalGraph | str,
        *,
        discrete: Iterable[str] | None = None,
        u_dim: int = 2,
        noise_dim: int = 1,
        hidden: tuple[int, ...] = (64, 64),
        critic_hidden: tuple[int, ...] = (64, 64),
        modular: bool = False,
        seed: int = 0,
    ) -> None:
        self.graph = as_graph(graph)
        for name, value in (("u_dim", u_dim), ("noise_dim", noise_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive int")
        if any(h < 1 for h in hidden) or not critic_hidden or any(h < 1 for h in critic_hidden):
            raise ConfigError(f"hidden={hidden} and critic_hidden={critic_hidden} must be positive widths")
        self.discrete_arg = None if discrete is None else list(discrete)
        if self.discrete_arg is not None:
            self.graph.check_nodes(set(self.discrete_arg), "discrete")
        self.nodes = self.graph.nodes
        self.components = c2_components(self.graph)
        self.u_dim, self.noise_dim = u_dim, noise_dim
        self.hidden, self.critic_hidden = tuple(hidden), tuple(critic_hidden)
        self.modular, self.seed = bool(modular), seed
        self.groups = training_groups(self.graph) if modular else [tuple(self.nodes)]
        self._group_of = {v: k for k, g in enumerate(self.groups) for v in g}
        self._parents = {n: self.graph.parents(n) for n in self.nodes}
        self._comps_of = {n: [k for k, c in enumerate(self.components) if n in c] for n in self.nodes}
        self.fitted = False
        self.history: dict[str, list[float]] = {}
        self.fit_seconds = float("nan")

    def __repr__(self) -> str:
        comps = ", ".join("{" + ",".join(c) + "}" for c in self.components) or "none"
        return (f"GANNCM({str(self.graph)!r}, C²-components: {comps}, modular={self.modular}, "
                f"fitted={self.fitted})")

    # ------------------------------------------------------------------ encoding
    def _setup(self, data: pd.DataFrame) -> None:
        """Node types, scalings and categories from ``data``; builds the networks."""
        _check_frame(self.graph, data)
        self.categories: dict[str, list[Any]] = {}
        self.loc: dict[str, float] = {}
        self.scale: dict[str, float] = {}
        for n in self.nodes:
            col = data[n]
            if self._is_discrete(n, col):
                cats = sorted(pd.unique(col.to_numpy()).tolist(), key=lambda c: (str(type(c)), c))
                if len(cats) < 2:
                    raise DataError(f"discrete column {n!r} has a single value {cats[0]!r}; drop the node")
                self.categories[n] = cats
            else:
                try:
                    vals = col.to_numpy(dtype=float)
                except (TypeError, ValueError) as exc:
                    raise DataError(
                        f"column {n!r} is not numeric; list it in discrete=[...] if it is categorical"
                    ) from exc
                sd = float(vals.std())
                if not np.isfinite(sd) or sd == 0:
                    raise DataError(f"continuous column {n!r} is constant or not finite; drop or fix it")
                self.loc[n], self.scale[n] = float(vals.mean()), sd
        self.width = {n: len(self.categories[n]) if n in self.categories else 1 for n in self.nodes}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            nets = {}
            for n in self.nodes:
                pa = sum(self.width[p] for p in self._parents[n])
                lat = self.u_dim * len(self._comps_of[n])
                own = 0 if n in self.categories else self.noise_dim
                net = SkipMLP(max(1, pa + lat + own), self.width[n], self.hidden)
                if own:  # start at v = ε (spread samples from the first step)
                    with torch.no_grad():
                        net.linear.weight[0, pa + lat] = 1.0
                nets[n] = net
            self.generators = nn.ModuleDict(nets)
            self.critics = nn.ModuleList(
                mlp(sum(self.width[v] for v in self._critic_nodes(g)), 1, self.critic_hidden, nn.LeakyReLU)
                for g in self.groups
            )

    def _is_discrete(self, n: str, col: pd.Series) -> bool:
        if self.discrete_arg is not None:
            return n in self.discrete_arg
        if col.dtype == bool or isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object:
            return True
        return pd.api.types.is_integer_dtype(col.dtype) and col.nunique() <= MAX_AUTO_CATEGORIES

    def _critic_nodes(self, group: tuple[str, ...]) -> list[str]:
        """The group's nodes and their parents outside it, in topological order."""
        keep = set(group) | {p for v in group for p in self._parents[v]}
        return [n for n in self.nodes if n in keep]

    def _encode(self, n: str, values: Any) -> torch.Tensor:
        """User values of node ``n`` -> (rows, width): standardised, or one-hot."""
        arr = np.asarray(values)
        if n in self.categories:
            index = {c: i for i, c in enumerate(self.categories[n])}
            flat = arr.reshape(-1).tolist()
            bad = [v for v in flat if v not in index]
            if bad:
                raise DataError(f"{n}={bad[0]!r} is not a category of {n!r} (seen in fit: {self.categories[n]})")
            idx = torch.tensor([index[v] for v in flat], dtype=torch.long)
            return nn.functional.one_hot(idx, len(index)).float()
        try:
            x = torch.as_tensor(arr.astype(float), dtype=torch.float32).reshape(-1, 1)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{n}={values!r}: give a number for the continuous node {n!r}") from exc
        return (x - self.loc[n]) / self.scale[n]

    def _decode(self, n: str, t: torch.Tensor) -> np.ndarray:
        if n in self.categories:
            cats = np.asarray(self.categories[n], dtype=object)
            out = cats[t.argmax(-1).numpy()]
            return out.astype(type(self.categories[n][0])) if not isinstance(self.categories[n][0], str) else out
        return (t[:, 0] * self.scale[n] + self.loc[n]).detach().numpy().astype(float)

    # ------------------------------------------------------------------ generation
    def _draw(self, n: int, gen: torch.Generator) -> dict[str, Any]:
        """Fresh exogenous noise: ``u`` (one tensor per C²-component), ``eps`` per node."""
        u = [torch.randn(n, self.u_dim, generator=gen) for _ in self.components]
        eps = {}
        for v in self.nodes:
            if v in self.categories:
                r = torch.rand(n, self.width[v], generator=gen).clamp(1e-10, 1 - 1e-7)
                eps[v] = -torch.log(-torch.log(r))
            else:
                eps[v] = torch.randn(n, self.noise_dim, generator=gen)
        return {"u": u, "eps": eps}

    def _forward(
        self,
        noise: Mapping[str, Any],
        fixed: Mapping[str, torch.Tensor] | None = None,
        nodes: Iterable[str] | None = None,
        *,
        tau: float | None = None,
        real: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Encoded values of ``nodes`` (default all) in topological order; ``fixed`` (encoded)
        holds intervened or given nodes. ``tau`` set: straight-through Gumbel-softmax.
        ``real`` set (training): a parent in another training group is read from ``real``."""
        values = dict(fixed or {})
        todo = set(self.nodes if nodes is None else nodes)
        for v in self.nodes:
            if v not in todo or v in values:
                continue
            inputs = [
                real[p] if real is not None and self._group_of[p] != self._group_of[v] else values[p]
                for p in self._parents[v]
            ] + [noise["u"][k] for k in self._comps_of[v]]
            if v not in self.categories:
                inputs.append(noise["eps"][v])
            rows = len(noise["eps"][v])
            x = torch.cat(inputs, dim=-1) if inputs else torch.zeros(rows, 1)
            out = self.generators[v](x)
            if v in self.categories:
                z = out + noise["eps"][v]
                hard = nn.functional.one_hot(z.argmax(-1), self.width[v]).float()
                if tau is not None:
                    soft = torch.softmax(z / tau, dim=-1)
                    hard = hard - soft.detach() + soft
                out = hard
            values[v] = out
        return values

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data: pd.DataFrame,
        *,
        steps: int = 2000,
        batch_size: int = 256,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        lr: float = 1e-3,
        tau: float = 0.5,
        ema: float = 0.99,
        progress: bool = False,
    ) -> GANNCM:
        """Train by WGAN-GP (module docstring): ``steps`` generator steps, each after
        ``n_critic`` critic steps (every training group steps together, on its own critic).
        The fitted generators are the exponential moving average of the iterates with decay
        ``ema`` (Yazıcı et al. 2019: GAN iterates oscillate around the equilibrium and their
        average is closer to it; ``ema=0`` keeps the last iterate).

        Raises:
            DataError: a node missing from the data, NaN, a constant or non-numeric column.
            ConfigError: non-positive steps, batch size, n_critic, lr or tau.
            TrainingError: a loss that became NaN or infinite.
        """
        for name, value in (("steps", steps), ("batch_size", batch_size), ("n_critic", n_critic)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive int")
        if not (lr > 0 and tau > 0 and gp_weight >= 0 and 0 <= ema < 1):
            raise ConfigError(f"lr={lr}, tau={tau} must be > 0, gp_weight={gp_weight} ≥ 0 and ema={ema} in [0, 1)")
        start = time.perf_counter()
        self._setup(data)
        real = {n: self._encode(n, data[n].to_numpy()) for n in self.nodes}
        rows = len(data)
        gen = torch.Generator().manual_seed(self.seed + 1)
        cols = [self._critic_nodes(g) for g in self.groups]
        # the groups' losses are summed: their parameters are disjoint and a group's fakes
        # depend only on its own generators (outside parents are real), so one Adam step on
        # the sum is each group's own step
        g_opt = torch.optim.Adam(self.generators.parameters(), lr=lr, betas=(0.5, 0.9))
        d_opt = torch.optim.Adam(self.critics.parameters(), lr=lr, betas=(0.5, 0.9))
        self.history = {"critic": [], "generator": []}
        average = [p.detach().clone() for p in self.generators.parameters()]
        bar = tqdm(range(steps), disable=not progress, desc="GAN-NCM fit", leave=False)
        b = min(batch_size, rows)

        def batches() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
            idx = torch.randint(rows, (b,), generator=gen)
            batch = {c: real[c][idx] for c in self.nodes}
            fake = self._forward(self._draw(b, gen), tau=tau, real=batch)
            r = [torch.cat([batch[c] for c in cs], -1) for cs in cols]
            f = [torch.cat([fake[c] if c in g else batch[c] for c in cs], -1) for g, cs in zip(self.groups, cols)]
            return r, f

        for t in bar:
            for _ in range(n_critic):
                with torch.no_grad():
                    r, f = batches()
                loss = sum(d(fk).mean() - d(rk).mean() for d, rk, fk in zip(self.critics, r, f))
                if gp_weight > 0:
                    mixes = []
                    for rk, fk in zip(r, f):
                        m = torch.rand(b, 1, generator=gen)
                        mixes.append((m * rk + (1 - m) * fk).requires_grad_(True))
                    scores = sum(d(x).sum() for d, x in zip(self.critics, mixes))
                    grads = torch.autograd.grad(scores, mixes, create_graph=True)
                    loss = loss + gp_weight * sum((g.norm(dim=-1) - 1).square().mean() for g in grads)
                d_opt.zero_grad(set_to_none=True)
                loss.backward()
                for d in self.critics:
                    nn.utils.clip_grad_norm_(d.parameters(), MAX_GRAD_NORM)
                d_opt.step()
            r, f = batches()
            g_loss = -sum(d(fk).mean() for d, fk in zip(self.critics, f))
            if not (torch.isfinite(g_loss) and torch.isfinite(loss)):
                raise TrainingError(f"the GAN-NCM loss became non-finite at step {t}; lower lr={lr}")
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            for v in self.nodes:
                nn.utils.clip_grad_norm_(self.generators[v].parameters(), MAX_GRAD_NORM)
            g_opt.step()
            if ema > 0:
                with torch.no_grad():
                    for a, p in zip(average, self.generators.parameters()):
                        a.lerp_(p, 1 - ema)
            self.critics.zero_grad(set_to_none=True)
            self.history["critic"].append(float(loss.detach()))
            self.history["generator"].append(float(g_loss.detach()))
            if progress and t % 50 == 0:
                bar.set_postfix(critic=f"{self.history['critic'][-1]:.3f}")
        if ema > 0:
            with torch.no_grad():  # the averaged generators are the fitted model
                for a, p in zip(average, self.generators.parameters()):
                    p.copy_(a)
        self.fitted = True
        self.fit_seconds = time.perf_counter() - start
        return self

    # ------------------------------------------------------------------ queries
    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("this GANNCM is not fitted; call fit(data) first")

    def _fixed(self, do: Mapping[str, Any] | None, n: int) -> dict[str, torch.Tensor]:
        if do is None:
            return {}
        if not isinstance(do, Mapping):
            raise ConfigError(f"do must be a dict {{node: value}}, got {type(do).__name__}")
        self.graph.check_nodes(set(do), "do")
        out = {}
        for k, val in do.items():
            arr = np.asarray(val, dtype=object if k in self.categories else None)
            if arr.ndim > 1 or (arr.ndim == 1 and len(arr) != n):
                raise DataError(f"do({k}=...) needs one value or {n} values (one per row), got shape {arr.shape}")
            out[k] = self._encode(k, np.broadcast_to(arr, (n,)))
        return out

    def sample(self, n: int, *, do: Mapping[str, Any] | None = None, seed: int | None = None) -> pd.DataFrame:
        """``n`` rows from the model, observational or under ``do={node: value}`` (a constant
        or one value per row, in user units; a category for a discrete node)."""
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n={n!r}: pass a positive number of rows")
        gen = torch.Generator().manual_seed(self.seed + 2 if seed is None else seed)
        with torch.no_grad():
            values = self._forward(self._draw(n, gen), self._fixed(do, n))
        return pd.DataFrame({v: self._decode(v, values[v]) for v in self.nodes}, columns=self.nodes)

    def _continuous_pair(self, treatment: str, outcome: str) -> None:
        self.graph.check_nodes({treatment, outcome}, "query")
        for role, v in (("treatment", treatment), ("outcome", outcome)):
            if v in self.categories:
                raise ConfigError(f"the {role} {v!r} is discrete; this query needs a continuous node")

    def mean_do(
        self, value: float, treatment: str = "x", outcome: str = "y", *, n: int = 20_000, seed: int | None = None
    ) -> float:
        """``Ê[outcome | do(treatment = value)]``: the mean of ``n`` model draws."""
        self._continuous_pair(treatment, outcome)
        return float(self.sample(n, do={treatment: value}, seed=seed)[outcome].mean())

    def ate(
        self, treatment: str = "x", outcome: str = "y", *, treated: Any = 1.0, control: Any = 0.0,
        n: int = 20_000, seed: int | None = None,
    ) -> float:
        """``Ê[y | do(x = treated)] − Ê[y | do(x = control)]`` with shared noise (``y``
        continuous, or binary 0/1 for which this is the risk difference)."""
        self._check_fitted()
        self.graph.check_nodes({treatment, outcome}, "query")
        if outcome in self.categories and set(self.categories[outcome]) - {0, 1, False, True}:
            raise ConfigError(f"the outcome {outcome!r} has categories {self.categories[outcome]}; need 0/1 or continuous")
        gen = torch.Generator().manual_seed(self.seed + 3 if seed is None else seed)
        with torch.no_grad():
            noise = self._draw(n, gen)
            arms = [self._forward(noise, self._fixed({treatment: a}, n)) for a in (treated, control)]
        means = [float(np.mean(np.asarray(self._decode(outcome, w[outcome]), dtype=float))) for w in arms]
        return means[0] - means[1]

    def _atd_tensor(self, x: torch.Tensor, noise: Mapping[str, Any], treatment: str, outcome: str) -> torch.Tensor:
        """``mean_r ∂ŷ_r/∂a`` at ``a = x_r`` (user units), differentiable in the weights."""
        a = x.detach().clone().requires_grad_(True)
        values = self._forward(noise, {treatment: ((a - self.loc[treatment]) / self.scale[treatment])[:, None]})
        y = values[outcome][:, 0] * self.scale[outcome]
        (grad,) = torch.autograd.grad(y.sum(), a, create_graph=True)
        return grad.mean()

    def atd(
        self, treatment: str = "x", outcome: str = "y", *, x: Any = None, n: int = 20_000, seed: int | None = None,
    ) -> float:
        """Average treatment derivative ``E_{X}[∂/∂a Ê[y | do(x = a)]|_{a = X}]`` by the pathwise
        derivative through the generators; ``X`` from ``x`` (e.g. the data's column) or the
        model's own observational draws."""
        self._check_fitted()
        self._continuous_pair(treatment, outcome)
        gen = torch.Generator().manual_seed(self.seed + 4 if seed is None else seed)
        if x is None:
            with torch.no_grad():
                obs = self._forward(self._draw(n, gen))[treatment][:, 0] * self.scale[treatment] + self.loc[treatment]
        else:
            obs = torch.tensor(np.asarray(x, dtype=float), dtype=torch.float32).reshape(-1)
        return float(self._atd_tensor(obs, self._draw(len(obs), gen), treatment, outcome).detach())


def _check_frame(graph: CausalGraph, data: Any) -> None:
    check_observed(graph, data)
    if len(data) < 2:
        raise DataError("the data needs at least 2 rows")
    bad = [n for n in graph.nodes if data[n].isna().any()]
    if bad:
        raise DataError(f"column(s) {bad} hold missing values; drop or impute them first")
