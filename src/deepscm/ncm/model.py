r"""Neural causal models (NCM) for binary data with hidden confounders, trained by likelihood.

An NCM (Xia, Lee, Kersting & Bareinboim 2021, Def. 7) over a graph ``G`` with bidirected
edges is ``M̂ = ⟨Û, V, F̂, P(Û)⟩``:

- one *shared* latent ``Û_C`` per C²-component ``C`` of ``G`` (a maximal clique of the
  bidirected edges): ``Û_C`` is the unobserved common cause of the nodes in ``C``, and two
  nodes share a latent iff the graph joins them by ``<->``; latents of different components
  are independent;
- for each node ``V_i`` an MLP giving ``p(v_i = 1 | pa_i, û_i)``, ``û_i = {û_C : V_i ∈ C}``,
  and an independent noise ``ε_i ~ Uniform(0, 1)`` with ``v_i = 1[ε_i < p(v_i = 1 | pa_i, û_i)]``
  (the binary form of the Gumbel-max draw).

Two latent families (``latent=``):

- ``"discrete"`` (default): ``Û_C`` takes ``K_C`` states with learned probabilities
  ``π_C = softmax(a_C)`` and enters the MLPs one-hot. This is ``Û_C ~ Uniform(0, 1)`` cut
  into ``K_C`` intervals of lengths ``π_C`` (a learned step-function first layer), so it is an
  NCM in Xia et al.'s sense. ``K_C`` defaults to the number of joint response-function types
  of ``C``'s nodes, ``Π_{i ∈ C} 2^{2^{|pa_i|}}`` (capped at :data:`MAX_STATES`): every binary
  SCM is equivalent for rung-2 queries to a mixture over response types (Balke & Pearl 1997),
  so on a bidirected-clique component this family represents *every* compatible SCM. The
  likelihood and the queries are then exact sums over the latent states (no Monte-Carlo
  error), which neural identification needs (:mod:`deepscm.ncm.identify`).
- ``"uniform"``: ``Û_C ~ Uniform(0, 1)^d`` as in ``CausalAILab/NeuralCausalModels``, with the
  Monte-Carlo likelihood ``P̂_m(v) = (1/m) Σ_j Π_i p_θ(v_i | pa_i, û^{(j)})``.

**MLE-NCM** (Xia et al. 2021, §4) fits ``θ`` by maximum likelihood on the table of distinct
observed rows with their counts. ``P̂(y = 1 | do(x = a))`` averages over the latent states
(or draws) the exact sum over the values of the other ancestors of ``y`` (truncated
factorisation), so it is differentiable and can be pushed up or down subject to the data fit
(:func:`deepscm.ncm.neural_identify`).

Example:
    >>> from deepscm.datasets.confounded import load_confounded
    >>> scm = load_confounded("frontdoor", seed=0)
    >>> ncm = NeuralCausalModel(scm.graph, seed=0).fit(scm.sample(5000, seed=1), steps=300)
    >>> ate = ncm.query("ate(x, y)")
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError, NotFittedError, TrainingError
from ..graph import CausalGraph
from .queries import BinaryQuery, as_graph, binary_table, parse_binary_query

__all__ = ["MAX_ENUMERATED", "MAX_STATES", "NeuralCausalModel", "c2_components", "deviance", "response_types"]

MAX_ENUMERATED = 16
"""Most nodes a query's exact inner sum enumerates (``2^16`` value combinations)."""

MAX_STATES = 32
"""Cap on the default number of states of a discrete latent ``Û_C``."""

MAX_LATENT_GRID = 4096
"""Most joint states of all discrete latents together (their product is enumerated exactly)."""


def c2_components(graph: CausalGraph) -> list[tuple[str, ...]]:
    """The C²-components: maximal cliques of the bidirected edges (two or more nodes each)."""
    bi = nx.Graph()
    bi.add_edges_from(graph.bidirected_edges)
    order = {n: i for i, n in enumerate(graph.nodes)}
    cliques = [tuple(sorted(c, key=order.__getitem__)) for c in nx.find_cliques(bi) if len(c) > 1]
    return sorted(cliques, key=lambda c: [order[n] for n in c])


def response_types(graph: CausalGraph, component: tuple[str, ...]) -> int:
    """``Π_{i ∈ C} 2^{2^{|pa_i|}}``: joint response-function types of ``component``'s nodes."""
    return math.prod(2 ** (2 ** len(graph.parents(n))) for n in component)


class NeuralCausalModel:
    """An MLE-NCM over binary nodes (module docstring).

    Args:
        graph: the causal graph; ``a <-> b`` for a hidden confounder of ``a`` and ``b``.
        latent: ``"discrete"`` (exact sums over ``K_C`` learned latent states) or
            ``"uniform"`` (``Û_C ~ Uniform(0, 1)^u_dim``, Monte Carlo).
        u_dim: states ``K_C`` of each discrete latent (default
            ``min(response_types(C), MAX_STATES)``, at least 2), or the dimension ``d`` of each
            uniform latent (default 2).
        hidden: widths of each mechanism's hidden layers.
        seed: seeds the initial weights and every Monte-Carlo draw.

    Raises:
        GraphError: a malformed or cyclic graph.
        ConfigError: bad sizes, an unknown latent family, or too many joint latent states.
    """

    def __init__(
        self,
        graph: CausalGraph | str,
        *,
        latent: str = "discrete",
        u_dim: int | None = None,
        hidden: tuple[int, ...] = (32, 32),
        seed: int = 0,
    ) -> None:
        self.graph = as_graph(graph)
        if latent not in ("discrete", "uniform"):
            raise ConfigError(f"latent={latent!r}: use 'discrete' or 'uniform'")
        if (u_dim is not None and u_dim < 1) or any(h < 1 for h in hidden):
            raise ConfigError(f"u_dim={u_dim} and hidden={hidden} must be positive")
        self.nodes = self.graph.nodes
        self.components = c2_components(self.graph)
        self.latent, self.hidden, self.seed = latent, tuple(hidden), seed
        if latent == "discrete":
            self.dims = [u_dim or max(2, min(response_types(self.graph, c), MAX_STATES)) for c in self.components]
            if math.prod(self.dims) > MAX_LATENT_GRID:
                raise ConfigError(
                    f"the discrete latents have {math.prod(self.dims)} joint states (> {MAX_LATENT_GRID}); "
                    "pass a smaller u_dim or latent='uniform'"
                )
        else:
            self.dims = [u_dim or 2 for _ in self.components]
        self._parents = {n: self.graph.parents(n) for n in self.nodes}
        self._comps_of = {n: [k for k, c in enumerate(self.components) if n in c] for n in self.nodes}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.nets = nn.ModuleList(
                _mlp(max(1, len(self._parents[n]) + sum(self.dims[k] for k in self._comps_of[n])), self.hidden)
                for n in self.nodes
            )
            self.logits = nn.ParameterList(nn.Parameter(0.1 * torch.randn(d)) for d in self.dims)
        if latent == "discrete":
            self._state_idx = torch.tensor(list(itertools.product(*[range(d) for d in self.dims])), dtype=torch.long)
            self._state_idx = self._state_idx.reshape(len(self._state_idx), len(self.dims))
            self._inputs, self._shapes = {}, {}
            for n in self.nodes:
                k = len(self._parents[n])
                axes = [range(2 ** k)] + [range(self.dims[c]) for c in self._comps_of[n]]
                cells = torch.tensor(list(itertools.product(*axes)), dtype=torch.long).reshape(-1, len(axes))
                bits = [((cells[:, 0] >> j) & 1).float()[:, None] for j in range(k)]
                onehots = [nn.functional.one_hot(cells[:, a + 1], self.dims[c]).float()
                           for a, c in enumerate(self._comps_of[n])]
                feats = bits + onehots
                self._inputs[n] = torch.cat(feats, dim=1) if feats else torch.zeros(1, 1)
                self._shapes[n] = tuple(len(a) for a in axes)
        self._gen = torch.Generator().manual_seed(seed + 1)
        self.fitted = False
        self.history: dict[str, list[float]] = {}

    def __repr__(self) -> str:
        comps = ", ".join("{" + ",".join(c) + "}" for c in self.components) or "none"
        return (
            f"NeuralCausalModel({str(self.graph)!r}, C²-components: {comps}, latent={self.latent} "
            f"{self.dims}, fitted={self.fitted})"
        )

    def parameters(self) -> list[nn.Parameter]:
        """Every trainable tensor: the mechanisms' weights and the discrete latents' logits."""
        return list(self.nets.parameters()) + (list(self.logits) if self.latent == "discrete" else [])

    # ------------------------------------------------------------------ core estimator
    def _latents(self, m: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Latent states (or draws) ``û^{(j)}`` and their log-weights: ``([(M, d_k)], (M,))``.

        Discrete: every joint state of the latents, one-hot, weighted by ``Π_k π_k``.
        Uniform: ``m`` joint draws, each weighted ``1/m``.
        """
        if self.latent == "uniform":
            return [torch.rand(m, d, generator=self._gen) for d in self.dims], torch.full((m,), -math.log(m))
        if not self.components:
            return [], torch.zeros(1)
        idx = self._state_idx
        u = [nn.functional.one_hot(idx[:, k], d).float() for k, d in enumerate(self.dims)]
        logw = sum(torch.log_softmax(self.logits[k], 0)[idx[:, k]] for k in range(len(self.dims)))
        return u, logw

    def _log_joint(
        self, values: Mapping[str, torch.Tensor], nodes: list[str], u: list[torch.Tensor]
    ) -> torch.Tensor:
        """``Σ_{i ∈ nodes} log p_θ(v_i | pa_i, û^{(j)})`` for each row r and latent j: shape (R, M).

        ``values[n]`` is a float tensor of shape (R,) holding node ``n``'s value in each row.
        A discrete latent evaluates each MLP once on every (parents, latent states) input and
        indexes the result, which is the same number at a fraction of the cost.
        """
        rows = len(next(iter(values.values())))
        m = len(u[0]) if u else 1
        total = torch.zeros(rows, m)
        for n in nodes:
            sign = 2.0 * values[n][:, None] - 1.0
            if self.latent == "discrete":
                pa_idx = sum((values[p].long() << j for j, p in enumerate(self._parents[n])), torch.zeros(rows, dtype=torch.long))
                table = self.nets[self.nodes.index(n)](self._inputs[n]).reshape(self._shapes[n])
                index = [pa_idx[:, None]] + [self._state_idx[None, :, k] for k in self._comps_of[n]]
                logit = table[tuple(index)]  # (R, M) or (R, 1)
            else:
                pa = [values[p][:, None, None] for p in self._parents[n]]
                comps = self._comps_of[n]
                inputs = [t.expand(rows, m, 1) for t in pa] + [u[k][None].expand(rows, m, self.dims[k]) for k in comps]
                x = torch.cat(inputs, dim=-1) if inputs else torch.zeros(rows, 1, 1)
                logit = self.nets[self.nodes.index(n)](x).squeeze(-1)
            total = total + nn.functional.logsigmoid(sign * logit)
        return total

    def _log_p(self, rows: dict[str, torch.Tensor], m: int) -> torch.Tensor:
        """``log P̂(v_r)`` for each row: ``logsumexp_j(log w_j + Σ_i log p(v_i | pa_i, û^{(j)}))``."""
        u, logw = self._latents(m)
        return torch.logsumexp(self._log_joint(rows, self.nodes, u) + logw, dim=1)

    def _nll(self, rows: dict[str, torch.Tensor], weights: torch.Tensor, m: int) -> torch.Tensor:
        """``-(1/n) Σ_k log P̂(v_k)`` on the table of distinct rows (weights sum to 1)."""
        return -(weights * self._log_p(rows, m)).sum()

    def _p_do(self, outcome: str, treatment: str, value: int, u: list[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        """``P̂(outcome = 1 | do(treatment = value))``: per latent state, the exact sum over the
        other ancestors of the outcome in ``G_{\\bar x}``; then the ``w``-weighted sum."""
        anc = self.graph.remove_incoming(treatment).ancestors(outcome) - {treatment}
        enum = [n for n in self.nodes if n in anc]
        grid = _grid(enum)
        values = {n: grid[:, j] for j, n in enumerate(enum)}
        values[treatment] = torch.full((len(grid),), float(value))
        lj = self._log_joint(values, enum, u)
        hit = values[outcome][:, None] if outcome != treatment else torch.ones(len(grid), 1)
        return ((lj.exp() * hit).sum(0) * w).sum()

    def _p_ctf(
        self, outcome: str, treatment: str, observed: int, do: int, u: list[torch.Tensor], w: torch.Tensor
    ) -> torch.Tensor:
        """``P̂(Y_{x=do} = 1 | X = observed)``: the latents and the non-descendants of ``x`` are
        shared by the two worlds; the descendants of ``x`` are re-drawn under ``do(x)``."""
        desc = self.graph.descendants(treatment)
        anc = self.graph.ancestors({treatment, outcome})
        nd = [n for n in self.nodes if n in anc and n not in desc]
        de = [n for n in self.nodes if n in self.graph.ancestors(outcome) and n in desc and n != treatment]
        grid = _grid(nd + de)
        values = {n: grid[:, j] for j, n in enumerate(nd + de)}
        values[treatment] = torch.full((len(grid),), float(observed))
        factual = self._log_joint(values, nd + [treatment], u)
        values[treatment] = torch.full((len(grid),), float(do))
        joint = (factual + self._log_joint(values, de, u)).exp() if de else factual.exp()
        return ((joint * values[outcome][:, None]).sum(0) * w).sum() / (joint.sum(0) * w).sum()

    def _query_tensor(self, q: BinaryQuery, m: int) -> torch.Tensor:
        enum = self.graph.ancestors(q.outcome) | ({q.treatment} if q.kind == "ett" else set())
        if len(enum) > MAX_ENUMERATED:
            raise ConfigError(
                f"the query {q} sums over {len(enum)} ancestor nodes; at most {MAX_ENUMERATED} are supported"
            )
        u, logw = self._latents(m)
        w = logw.exp()
        if q.kind == "p":
            return self._p_do(q.outcome, q.treatment, q.value, u, w)
        if q.kind == "ate":
            return self._p_do(q.outcome, q.treatment, 1, u, w) - self._p_do(q.outcome, q.treatment, 0, u, w)
        return self._p_ctf(q.outcome, q.treatment, 1, 1, u, w) - self._p_ctf(q.outcome, q.treatment, 1, 0, u, w)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data: pd.DataFrame,
        *,
        steps: int = 1000,
        lr: float = 2e-2,
        mc: int = 256,
        weight: str | None = None,
        final_lr: float | None = None,
        progress: bool = False,
    ) -> NeuralCausalModel:
        """Fit by maximum likelihood (Adam, full batch over the distinct rows).

        Args:
            data: binary (0/1) data with a column per graph node (extra columns are ignored).
            steps, lr: Adam steps and learning rate.
            final_lr: decay the learning rate log-linearly from ``lr`` to ``final_lr`` over the
                steps (a precise optimum for neural identification); constant when ``None``.
            mc: Monte-Carlo draws of Û per step (``latent="uniform"`` only; the discrete
                likelihood is exact).
            weight: optional column of row weights (counts of an aggregated table).
            progress: show a tqdm progress bar.

        Raises:
            DataError: a node missing from the data, or a non-binary column.
            TrainingError: a non-finite loss.
        """
        if steps < 1 or mc < 1 or lr <= 0 or (final_lr is not None and final_lr <= 0):
            raise ConfigError(f"steps={steps}, mc={mc}, lr={lr} and final_lr={final_lr} must be positive")
        rows, w = self._tensors(data, weight)
        self._entropy = float(-(w * w.log()).sum())
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        self.history = {"nll": []}
        bar = tqdm(range(steps), disable=not progress, desc="NCM fit", leave=False)
        for t in bar:
            if final_lr is not None:
                for group in opt.param_groups:
                    group["lr"] = lr * (final_lr / lr) ** (t / max(1, steps - 1))
            opt.zero_grad()
            nll = self._nll(rows, w, mc)
            if not torch.isfinite(nll):
                raise TrainingError(f"the NCM loss became {float(nll)} at step {t}; lower lr={lr}")
            nll.backward()
            opt.step()
            self.history["nll"].append(float(nll.detach()))
            if progress and t % 50 == 0:
                bar.set_postfix(nll=f"{float(nll):.4f}")
        self.fitted = True
        return self

    def _tensors(self, data: pd.DataFrame, weight: str | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The distinct rows as float tensors and their normalised weights."""
        table = binary_table(self.graph, data, weight)
        rows = {n: torch.tensor(table[n].to_numpy(), dtype=torch.float32) for n in self.nodes}
        w = torch.tensor(table["__w"].to_numpy() / table["__w"].sum(), dtype=torch.float32)
        return rows, w

    def nll(self, data: pd.DataFrame, *, mc: int = 4096, weight: str | None = None) -> float:
        """Average negative log-likelihood ``-(1/n) Σ log P̂(v_k)`` of ``data`` (nats per row)."""
        self._check_fitted()
        rows, w = self._tensors(data, weight)
        with torch.no_grad():
            return float(self._nll(rows, w, mc))

    def distribution(self, *, mc: int = 10_000) -> pd.DataFrame:
        """The model's observational ``P̂(v)``: one row per configuration of the nodes, column ``p``."""
        self._check_fitted()
        grid = _grid(self.nodes)
        with torch.no_grad():
            p = self._log_p({n: grid[:, j] for j, n in enumerate(self.nodes)}, mc).exp()
        out = pd.DataFrame(grid.numpy().astype(int), columns=self.nodes)
        out["p"] = (p / p.sum()).numpy().astype(float)
        return out

    def tv_distance(self, data: pd.DataFrame, *, weight: str | None = None, mc: int = 10_000) -> float:
        """Total-variation distance ``½ Σ_v |P̂(v) − P_n(v)|`` between the model and the data."""
        model = self.distribution(mc=mc)
        table = binary_table(self.graph, data, weight)
        emp = table.assign(q=table["__w"] / table["__w"].sum()).drop(columns="__w")
        merged = model.merge(emp, on=self.nodes, how="left").fillna({"q": 0.0})
        return 0.5 * float(np.abs(merged["p"] - merged["q"]).sum())

    # ------------------------------------------------------------------ queries
    def query(self, query: str | BinaryQuery, *, mc: int = 10_000) -> float:
        """``P(y=1 | do(x=a))``, ``ate(x, y)`` or ``ett(x, y)`` by the training estimator (exact
        sum over the ancestors' values and the discrete latent states; Monte Carlo over ``mc``
        draws of a uniform Û)."""
        self._check_fitted()
        q = parse_binary_query(query).check(self.graph)
        with torch.no_grad():
            return float(self._query_tensor(q, mc))

    def sample(self, n: int, *, do: Mapping[str, int] | None = None, seed: int | None = None) -> pd.DataFrame:
        """``n`` rows (int 0/1) from the model, observational or under ``do={node: 0/1}``."""
        self._check_fitted()
        do = _check_binary(self.graph, do or {}, "do")
        gen = torch.Generator().manual_seed(self.seed + 2 if seed is None else seed)
        with torch.no_grad():
            world = self._world(n, gen, [do])[0]
        return pd.DataFrame({k: v.numpy().astype(int) for k, v in world.items()}, columns=self.nodes)

    def _world(
        self, n: int, gen: torch.Generator, interventions: list[dict[str, int]]
    ) -> list[dict[str, torch.Tensor]]:
        """Draw ``Û`` and ``ε`` once; evaluate one world per intervention with that noise."""
        if self.latent == "uniform":
            u = [torch.rand(n, d, generator=gen) for d in self.dims]
        else:
            u = [
                nn.functional.one_hot(torch.multinomial(torch.softmax(a.detach(), 0), n, True, generator=gen), d).float()
                for a, d in zip(self.logits, self.dims)
            ]
        eps = {v: torch.rand(n, generator=gen) for v in self.nodes}
        worlds = []
        for do in interventions:
            values: dict[str, torch.Tensor] = {}
            for i, v in enumerate(self.nodes):
                if v in do:
                    values[v] = torch.full((n,), float(do[v]))
                    continue
                inputs = [values[p][:, None] for p in self._parents[v]] + [u[k] for k in self._comps_of[v]]
                x = torch.cat(inputs, dim=-1) if inputs else torch.zeros(n, 1)
                values[v] = (eps[v] < torch.sigmoid(self.nets[i](x).squeeze(-1))).float()
            worlds.append(values)
        return worlds

    def counterfactual(
        self,
        evidence: Mapping[str, Any],
        do: Mapping[str, int],
        n: int = 1000,
        *,
        seed: int | None = None,
        max_draws: int = 2_000_000,
    ) -> pd.DataFrame:
        """``n`` draws of every node in the world ``do`` given the factual ``evidence``.

        Abduction is by rejection sampling (Xia et al. 2022, Alg. "rejection"): draw ``(Û, ε)``,
        keep the draws whose factual world matches ``evidence``, evaluate the counterfactual
        world with the same noise. ``result.attrs`` holds ``acceptance_rate``, ``draws`` and
        ``abduction = "rejection sampling"``.

        Raises:
            DataError: evidence that is not 0/1 (continuous evidence needs an amortised
                posterior over ``Û_C``, which is not implemented), or evidence so rare under the
                model that ``n`` acceptances would need more than ``max_draws`` draws.
        """
        self._check_fitted()
        evidence = _check_binary(self.graph, evidence, "evidence")
        do = _check_binary(self.graph, do, "do")
        gen = torch.Generator().manual_seed(self.seed + 3 if seed is None else seed)
        kept: list[dict[str, torch.Tensor]] = []
        accepted = draws = 0
        chunk = max(10 * n, 20_000)
        while accepted < n:
            with torch.no_grad():
                factual, cf = self._world(chunk, gen, [{}, do])
            mask = torch.ones(chunk, dtype=torch.bool)
            for k, v in evidence.items():
                mask &= factual[k] == float(v)
            draws += chunk
            accepted += int(mask.sum())
            kept.append({k: t[mask] for k, t in cf.items()})
            rate = accepted / draws
            if accepted < n and (rate == 0 or n / rate > max_draws) and draws >= min(max_draws, 5 * chunk):
                raise DataError(
                    f"rejection sampling accepted {accepted} of {draws} draws (rate {rate:.2g}) for "
                    f"evidence {evidence}: {n} counterfactual samples would need about "
                    f"{'infinitely many' if rate == 0 else f'{n / rate:.2g}'} draws (> max_draws={max_draws}); "
                    "ask for fewer samples, raise max_draws, or condition on less evidence"
                )
        out = pd.DataFrame(
            {k: torch.cat([d[k] for d in kept])[:n].numpy().astype(int) for k in self.nodes}, columns=self.nodes
        )
        out.attrs.update(acceptance_rate=accepted / draws, draws=draws, abduction="rejection sampling")
        return out

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("this NeuralCausalModel is not fitted; call fit(data) first")


def _mlp(inputs: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def _grid(nodes: list[str]) -> torch.Tensor:
    """All 0/1 combinations of ``nodes``: shape (2^k, k) (one empty row when k = 0)."""
    combos = list(itertools.product((0.0, 1.0), repeat=len(nodes)))
    return torch.tensor(combos, dtype=torch.float32).reshape(len(combos), len(nodes))


def _check_binary(graph: CausalGraph, values: Mapping[str, Any], role: str) -> dict[str, int]:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{role} must be a dict {{node: 0 or 1}}, got {type(values).__name__}")
    graph.check_nodes(set(values), role)
    out = {}
    for k, v in values.items():
        val = v.item() if isinstance(v, np.generic) else v
        if isinstance(val, bool) or (isinstance(val, (int, float)) and float(val) in (0.0, 1.0)):
            out[k] = int(val)
        elif isinstance(val, (int, float)):
            raise DataError(
                f"{role} {k}={v!r} is not 0/1: rejection sampling needs discrete (binary) values; "
                "continuous evidence needs an amortised posterior over the shared latents Û_C, "
                "which the binary NCM does not have: use deepscm.ncm.gan.GANNCM.counterfactual "
                "(after fit_posterior)"
            )
        else:
            raise DataError(f"{role} {k}={v!r}: give 0 or 1")
    return out


def deviance(ncm: NeuralCausalModel, data: pd.DataFrame, *, weight: str | None = None, mc: int = 4096) -> tuple[float, int]:
    r"""The likelihood-ratio statistic of a fitted NCM against the saturated model of the data.

    ``G² = 2n·(NLL − H_n) = 2n·KL(P_n ‖ P̂)`` with ``P_n`` the empirical distribution and
    ``H_n`` its entropy (Wilks 1938; Agresti 2013, §1.5.5). If the graph is right, the NCM
    family contains the truth, so at the MLE ``G²`` is at most a ``χ²`` with
    ``df ≤ 2^{|V|} − 1`` degrees of freedom (the saturated model's); a far larger ``G²`` means
    the optimiser stopped in a poor local optimum (or the graph is wrong). Returns ``(G², df)``
    with ``df = 2^{|V|} − 1``, the conservative bound.
    """
    table = binary_table(ncm.graph, data, weight)
    n = float(table["__w"].sum())
    q = table["__w"].to_numpy() / n
    entropy = float(-(q * np.log(q)).sum())
    return 2.0 * n * max(0.0, ncm.nll(data, mc=mc, weight=weight) - entropy), 2 ** len(ncm.nodes) - 1
