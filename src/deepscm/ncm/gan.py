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

A group whose critic input is a single continuous scalar (a continuous root alone in its
group: a one-dimensional marginal) gets no critic: its generator minimises the exact
one-dimensional Wasserstein-1 distance of the mini-batch, ``W₁ = (1/b) Σ_k |f_(k) − r_(k)|``
over the sorted fake and real samples (the quantile coupling is optimal in one dimension;
Villani 2003, Thm. 2.18), which the critic would only approximate. The adversarial fit of a
one-dimensional marginal is unstable: with the networks here, a plain 1-D WGAN-GP on
``N(0, 1)`` ends with sample standard deviations from 0.04 to 4.5 over learning rates
1e-4–2e-3 and 2–5 critic steps, and modular roots collapsed towards their mode.

**Queries** (``sample(n, do=...)``, :meth:`GANNCM.mean_do`, :meth:`GANNCM.ate`,
:meth:`GANNCM.atd`) draw ``Û`` and the noises once and evaluate the mutilated model, so the two
arms of an ATE share their noise (common random numbers). Like every NCM, the answer is
meaningful only for an identifiable query: the data pin down ``P(V)``, not the latents
(:mod:`deepscm.ncm.continuous_bounds` bounds the rest).

**Counterfactuals** (:meth:`GANNCM.counterfactual`, continuous nodes only) follow Pearl's three
steps with an amortised posterior: after ``fit``, :meth:`GANNCM.fit_posterior` freezes the
generators and fits ``q_φ(w | v)``, a full-covariance Gaussian over all exogenous variables
``w = (û_C for every C, ε_i for every node)`` (:mod:`deepscm.ncm.posterior`), by the ELBO
with the Gaussian observation model ``v_i ~ N(f_i(pa_i, û_C, ε_i), σ²)`` (standardised
units, factual parents). Abduction draws ``w ~ q_φ(· | v)``; action sets the intervened nodes
(and keeps every non-descendant of them at its observed value, which no intervention
changes); prediction re-runs the generators of the descendants with the abducted draws. Two
approximations: the Gaussian ``q`` and the noise ``σ`` (``|f(pa, ŵ) − v|``, reported in
``posterior_info["abduction_error"]``), and, as for every NCM, the latents that the data do
not pin down: a counterfactual given a full unit is rarely identifiable from ``P(V)``
(Xia, Pan & Bareinboim 2023), so the answer is one model's, not the truth's.

Example:
    >>> from deepscm.datasets.confounded_continuous import load_confounded_continuous
    >>> scm = load_confounded_continuous("bow")
    >>> ncm = GANNCM(scm.graph, seed=0).fit(scm.sample(500, seed=1), steps=20)
    >>> ncm.sample(3, do={"x": 1.0}).shape
    (3, 2)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError, NotFittedError, TrainingError
from ..graph import CausalGraph
from ..mechanisms.base import MAX_GRAD_NORM, SkipMLP, mlp
from . import posterior as post
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
        self.encoder: post.GaussianEncoder | None = None
        self.posterior_info: dict[str, Any] = {}

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
        self.encoder, self.posterior_info = None, {}  # a posterior of older generators is stale
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
        # groups of one continuous scalar: exact 1-D W1 of sorted samples, no critic (docstring)
        exact = [sum(self.width[c] for c in cs) == 1 for cs in cols]
        adversarial = [k for k, e in enumerate(exact) if not e]
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

        loss = torch.zeros(())
        for t in bar:
            for _ in range(n_critic if adversarial else 0):
                with torch.no_grad():
                    r, f = batches()
                loss = sum(self.critics[k](f[k]).mean() - self.critics[k](r[k]).mean() for k in adversarial)
                if gp_weight > 0:
                    mixes = []
                    for k in adversarial:
                        m = torch.rand(b, 1, generator=gen)
                        mixes.append((m * r[k] + (1 - m) * f[k]).requires_grad_(True))
                    scores = sum(self.critics[k](x).sum() for k, x in zip(adversarial, mixes))
                    grads = torch.autograd.grad(scores, mixes, create_graph=True)
                    loss = loss + gp_weight * sum((g.norm(dim=-1) - 1).square().mean() for g in grads)
                d_opt.zero_grad(set_to_none=True)
                loss.backward()
                for k in adversarial:
                    nn.utils.clip_grad_norm_(self.critics[k].parameters(), MAX_GRAD_NORM)
                d_opt.step()
            r, f = batches()
            g_loss = sum(
                _sorted_w1(fk, rk) if e else -d(fk).mean() for d, rk, fk, e in zip(self.critics, r, f, exact)
            )
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

    # ------------------------------------------------------------------ abduction
    def _exogenous(self) -> list[tuple[str, int]]:
        """Names and widths of the exogenous blocks, in the order of the flat vector ``w``:
        ``u[<component>]`` per C²-component, then ``eps[<node>]`` per node."""
        return ([(f"u[{','.join(c)}]", self.u_dim) for c in self.components]
                + [(f"eps[{v}]", self.noise_dim) for v in self.nodes])

    def _w_dim(self) -> int:
        """The width ``D`` of the flat exogenous vector ``w``."""
        return sum(w for _, w in self._exogenous())

    def _columns(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoded units ``(rows, nodes)`` → node → its column ``(rows, 1)``."""
        return {v: x[:, j:j + 1] for j, v in enumerate(self.nodes)}

    @contextmanager
    def _frozen_generators(self) -> Iterator[None]:
        """The generators without gradients inside the block (the posterior fits only the
        encoder or the units' own parameters), restored afterwards."""
        for p in self.generators.parameters():
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in self.generators.parameters():
                p.requires_grad_(True)

    def _split(self, w: torch.Tensor) -> dict[str, Any]:
        """A flat exogenous vector ``(rows, D)`` → the noise dict of :meth:`_draw`."""
        k, d = len(self.components), self.u_dim
        u = [w[:, j * d:(j + 1) * d] for j in range(k)]
        off = k * d
        eps = {v: w[:, off + j * self.noise_dim: off + (j + 1) * self.noise_dim] for j, v in enumerate(self.nodes)}
        return {"u": u, "eps": eps}

    def _factual(self, noise: Mapping[str, Any], obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every node's generator output ``f_i(pa_i, û_C, ε_i)`` with its *observed* parents."""
        out = {}
        for v in self.nodes:
            inputs = [obs[p] for p in self._parents[v]] + [noise["u"][k] for k in self._comps_of[v]]
            out[v] = self.generators[v](torch.cat(inputs + [noise["eps"][v]], dim=-1))
        return out

    def _log_lik(self, x: torch.Tensor, sigma: float) -> post.LogLik:
        """``log p_σ(x_rows | w) = −Σ_i (x_i − f_i(pa_i, w))² / 2σ²`` (up to a constant) for the
        encoded units ``x`` (one column per node, in node order)."""

        def log_lik(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            k, b, dim = w.shape
            obs = x[rows].repeat(k, 1)
            cols = self._columns(obs)
            rec = self._factual(self._split(w.reshape(k * b, dim)), cols)
            sq = sum((rec[v] - cols[v]).square().sum(-1) for v in self.nodes)
            return (-0.5 * sq / sigma**2).reshape(k, b)

        return log_lik

    def _units(self, evidence: Any) -> torch.Tensor:
        """Full observed units → encoded ``(rows, nodes)``; a clear error for bad input."""
        if self.categories:
            raise ConfigError(
                f"counterfactuals need every node continuous; {sorted(self.categories)} are discrete "
                "(their Gumbel-max noise has no Gaussian posterior): drop them or use the binary "
                "NeuralCausalModel.counterfactual"
            )
        check_observed(self.graph, evidence)
        if len(evidence) < 1:
            raise DataError("the evidence has no rows; give one row per unit, a column per node")
        bad = [n for n in self.nodes if evidence[n].isna().any()]
        if bad:
            raise DataError(
                f"evidence column(s) {bad} hold missing values; a counterfactual unit needs every node observed"
            )
        x = torch.cat([self._encode(n, evidence[n].to_numpy()) for n in self.nodes], dim=-1)
        if not torch.isfinite(x).all():
            raise DataError("the evidence holds infinite values")
        return x

    def fit_posterior(
        self,
        data: pd.DataFrame,
        *,
        steps: int = 3000,
        batch_size: int = 256,
        lr: float = 3e-3,
        obs_scale: float = 0.05,
        n_mc: int = 4,
        hidden: tuple[int, ...] = (64, 64),
        holdout: float = 0.2,
        patience: int = 10,
        eval_every: int = 50,
        progress: bool = False,
    ) -> GANNCM:
        """Fit the amortised posterior ``q_φ(w | v)`` (module docstring) with the generators
        frozen: ELBO with observation scale ``obs_scale`` (standardised units), ``n_mc``
        reparameterised draws per row, Adam, early stopping on a ``holdout`` fraction
        (:func:`deepscm.ncm.posterior.fit_encoder`). A small ``σ`` ties the posterior to the
        equations (a counterfactual closer to the model's exact one) but makes the ELBO
        sharper and slower to optimise. A later :meth:`fit` drops the posterior.

        ``posterior_info`` then holds ``abduction_error`` (node → mean ``|f_i(pa_i, μ_φ(v)) − v_i|``
        on up to 1,000 held-out rows with the posterior mean, standardised units: the round
        trip of the factual unit), ``val_elbo``, ``steps_run``, ``seconds`` and the settings.

        Raises:
            NotFittedError: the generators are not fitted.
            ConfigError: discrete nodes (not supported), bad sizes.
            DataError: a node missing, NaN or non-numeric values.
        """
        self._check_fitted()
        if not obs_scale > 0:
            raise ConfigError(f"obs_scale={obs_scale} must be > 0")
        start = time.perf_counter()
        x = self._units(data)
        dim = self._w_dim()
        with self._frozen_generators():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed + 6)
                encoder = post.GaussianEncoder(len(self.nodes), dim, tuple(hidden))
            hist = post.fit_encoder(
                encoder, self._log_lik(x, obs_scale), x, steps=steps, batch_size=batch_size, lr=lr, n_mc=n_mc,
                holdout=holdout, patience=patience, eval_every=eval_every, seed=self.seed + 7, progress=progress,
            )
            val = hist["val_rows"][:1000]
            with torch.no_grad():
                mean, _ = post.gaussian(encoder(x[val]), dim)
                cols = self._columns(x[val])
                rec = self._factual(self._split(mean), cols)
        self.encoder = encoder
        self.posterior_info = dict(
            obs_scale=float(obs_scale), abduction_error={v: float((rec[v] - cols[v]).abs().mean()) for v in self.nodes},
            val_elbo=-hist["best_val"], steps_run=hist["steps_run"], rows=len(x), held_out=len(hist["val_rows"]),
            n_mc=n_mc, hidden=list(hidden), seconds=time.perf_counter() - start,
        )
        return self

    def _posterior(
        self, x: torch.Tensor, refine_steps: int, refine_lr: float, gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(w | v)`` of the encoded units ``x``: ``(μ, L)``, refined per unit if asked."""
        if self.encoder is None:
            raise NotFittedError("this GANNCM has no posterior; call fit_posterior(data) after fit(data)")
        if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
            raise ConfigError(f"refine_steps={refine_steps!r} must be a non-negative int")
        dim = self.encoder.w_dim
        with self._frozen_generators():
            with torch.no_grad():
                raw = self.encoder(x)
            if refine_steps:
                raw = post.refine(raw, dim, self._log_lik(x, self.posterior_info["obs_scale"]), steps=refine_steps, lr=refine_lr,
                                  n_mc=self.posterior_info["n_mc"], gen=gen)
        return post.gaussian(raw, dim)

    def abduct(
        self, evidence: pd.DataFrame, *, refine_steps: int = 0, refine_lr: float = 0.05, seed: int | None = None,
    ) -> pd.DataFrame:
        """The posterior ``q(w | v)`` of each unit: the mean and standard deviation of every
        exogenous coordinate (columns ``u[x,y]``, ``eps[x]``…, with a suffix ``_j`` when the
        block is wider than 1, and ``sd(…)``), in the model's own latent units."""
        gen = torch.Generator().manual_seed(self.seed + 5 if seed is None else seed)
        self._check_fitted()
        mean, tril = self._posterior(self._units(evidence), refine_steps, refine_lr, gen)
        sd = tril.square().sum(-1).sqrt()
        names = [f"{b}_{j}" if w > 1 else b for b, w in self._exogenous() for j in range(w)]
        cols = {n: mean[:, i].detach().numpy().astype(float) for i, n in enumerate(names)}
        cols.update({f"sd({n})": sd[:, i].detach().numpy().astype(float) for i, n in enumerate(names)})
        return pd.DataFrame(cols, index=evidence.index)

    def counterfactual(
        self,
        evidence: pd.DataFrame,
        do: Mapping[str, Any],
        n_samples: int = 100,
        *,
        seed: int | None = None,
        refine_steps: int = 0,
        refine_lr: float = 0.05,
        abduction: str = "amortised",
        proposals: int = 100_000,
        obs_scale: float | None = None,
        draws: bool = False,
    ) -> pd.DataFrame:
        """``E[V_{do} | V = v]`` per unit: abduction by the amortised posterior, action, prediction
        (module docstring). Requires :meth:`fit_posterior`.

        Args:
            evidence: one row per unit, a column for every node (continuous values).
            do: ``{node: value}``, a constant or one value per unit (user units).
            n_samples: posterior draws per unit.
            seed: seeds the draws (default: the model's seed).
            refine_steps: semi-amortised refinement (:func:`deepscm.ncm.posterior.refine`):
                Adam steps (rate ``refine_lr``) on each unit's own ELBO before drawing; it
                narrows the amortisation gap at the cost of per-unit optimisation.
            abduction: ``"amortised"`` (``q_φ``), or ``"importance"``: self-normalised importance
                sampling of the same target ``p_σ(w | v) ∝ N(w; 0, I)·Π_i N(v_i; f_i(pa_i, w), σ²)``
                from ``proposals`` prior draws per unit, resampled to ``n_samples`` (consistent
                as ``proposals → ∞``, with no Gaussian restriction; a reference for small
                models: the effective sample size, ``attrs["ess"]``, shrinks like ``σ^d``).
            obs_scale: ``σ`` of ``"importance"`` (default: the posterior's, else 0.05).
            draws: return every draw (columns ``unit``, ``draw`` and the nodes) instead of the
                per-unit mean.

        Returns:
            One row per unit (the evidence's index), the counterfactual mean of every node;
            ``attrs``: ``abduction = "amortised posterior (approximate)"``, ``n_samples``,
            ``refine_steps`` and ``reconstruction_error`` (node → mean ``|f_i(pa_i, w) − v_i|``
            over these units and draws, standardised units: how well the draws explain the units);
            with ``"importance"``, ``ess`` (per-unit effective sample sizes of the weights).

        Raises:
            NotFittedError: no fit or no posterior.
            ConfigError: discrete nodes, bad sizes, ``do`` not a dict.
            GraphError: an unknown node in ``do``.
            DataError: evidence missing a node, NaN or non-numeric, a ``do`` of the wrong length.
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ConfigError(f"n_samples={n_samples!r} must be a positive int")
        gen = torch.Generator().manual_seed(self.seed + 5 if seed is None else seed)
        k = int(n_samples)
        self._check_fitted()
        x = self._units(evidence)
        n = len(x)
        fixed_units = self._fixed(do, n)  # validates do
        extra: dict[str, Any] = {}
        if abduction == "amortised":
            mean, tril = self._posterior(x, refine_steps, refine_lr, gen)
            with torch.no_grad():
                w = post.rsample(mean, tril, k, gen).reshape(k * n, -1)
        elif abduction == "importance":
            if refine_steps:
                raise ConfigError("refine_steps refines the amortised posterior; importance sampling has none")
            sigma = self.posterior_info.get("obs_scale", 0.05) if obs_scale is None else obs_scale
            w, ess = self._importance(x, k, proposals, sigma, gen)
            extra = {"ess": ess.tolist(), "abduction": f"importance sampling ({proposals} prior proposals)"}
        else:
            raise ConfigError(f"abduction={abduction!r}: choose 'amortised' or 'importance'")
        keep = set(self.nodes) - self.graph.descendants(set(fixed_units))
        obs = self._columns(x)
        with torch.no_grad():
            noise = self._split(w)
            rep = {v: t.repeat(k, 1) for v, t in obs.items()}
            fixed = {v: rep[v] for v in keep} | {v: t.repeat(k, 1) for v, t in fixed_units.items()}
            world = self._forward(noise, fixed)
            rec = self._factual(noise, rep)
        values = {v: self._decode(v, world[v]).reshape(k, n) for v in self.nodes}
        if draws:
            out = pd.DataFrame(
                {"unit": np.tile(np.asarray(evidence.index), k), "draw": np.repeat(np.arange(k), n),
                 **{v: values[v].reshape(-1) for v in self.nodes}},
                columns=["unit", "draw", *self.nodes],
            )
        else:
            out = pd.DataFrame({v: values[v].mean(0) for v in self.nodes}, index=evidence.index, columns=self.nodes)
        out.attrs.update(
            abduction="amortised posterior (approximate)", n_samples=k, refine_steps=refine_steps,
            reconstruction_error={v: float((rec[v] - rep[v]).abs().mean()) for v in self.nodes},
        )
        out.attrs.update(extra)
        return out

    def _importance(
        self, x: torch.Tensor, k: int, proposals: int, sigma: float, gen: torch.Generator,
    ) -> tuple[torch.Tensor, np.ndarray]:
        """``k`` draws per unit from the self-normalised importance weights of ``proposals``
        prior draws (shared by the units): ``(w of shape (k·n, D) in the draw-major order of
        :func:`deepscm.ncm.posterior.rsample`, per-unit ESS)``."""
        if isinstance(proposals, bool) or not isinstance(proposals, int) or proposals < 1:
            raise ConfigError(f"proposals={proposals!r} must be a positive int")
        if not sigma > 0:
            raise ConfigError(f"obs_scale={sigma} must be > 0")
        dim = self._w_dim()
        with torch.no_grad():
            prior = torch.randn(1, proposals, dim, generator=gen)
            log_lik = self._log_lik(x, sigma)
            picks, ess = [], []
            for i in range(len(x)):
                lw = log_lik(prior, torch.tensor([i]).expand(proposals))[0]
                p = torch.softmax(lw, 0)
                ess.append(float(1.0 / p.square().sum()))
                picks.append(prior[0, torch.multinomial(p, k, replacement=True, generator=gen)])
        return torch.stack(picks, 1).reshape(k * len(x), dim), np.asarray(ess)

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


def _sorted_w1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The exact 1-D Wasserstein-1 distance of two equal-size samples ``(b, 1)``: the mean
    absolute difference of their order statistics (differentiable through ``sort``)."""
    return (fake.flatten().sort().values - real.flatten().sort().values).abs().mean()


def _check_frame(graph: CausalGraph, data: Any) -> None:
    check_observed(graph, data)
    if len(data) < 2:
        raise DataError("the data needs at least 2 rows")
    bad = [n for n in graph.nodes if data[n].isna().any()]
    if bad:
        raise DataError(f"column(s) {bad} hold missing values; drop or impute them first")
